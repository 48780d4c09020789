"""The float32 verification-path measurement (issue 30 point 4): every path computes the same logits as one-token
steps, the split paths feed their chunks through the cache, oneDNN's linear is restored, and the command's errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_t5

from stairs_decoding.kernel_search import PATHS, CachedForward, measure_paths, onednn_linear

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_measures_a_curve_and_matches_one_token_steps():
    torch.manual_seed(0)
    model = tiny_t5(0)
    cell = measure_paths(model, batch=3, max_tokens=4, rounds=2, steps=4)
    assert set(cell["paths"]) == set(PATHS)
    for path, c in cell["paths"].items():
        assert c["m"] == [1, 2, 3, 4] and all(v > 0 for v in c["v"]), path
        assert all(0 < lo <= hi for lo, hi in zip(c["ci95_low"], c["ci95_high"])), path
        assert max(c["max_rel_dlogit"]) < 1e-5 and all(c["argmax_agrees"]), path


def test_split_path_feeds_chunks_through_the_cache_and_crops_back():
    model = tiny_t5(0)
    fwd = CachedForward(model, batch=2, context=8)
    tokens = fwd.tokens(5)
    with torch.inference_mode():
        whole = fwd.forward(tokens)
        split = fwd.forward(tokens, chunk=2)
    assert fwd.cache.get_seq_length() == fwd.length
    assert split.shape == whole.shape and float((split - whole).abs().max() / whole.abs().max()) < 1e-5


def test_onednn_linear_is_used_inside_and_restored_after():
    original = F.linear
    x, w, b = torch.randn(3, 5, 16), torch.randn(8, 16), torch.randn(8)
    with onednn_linear():
        assert F.linear is not original
        y = F.linear(x, w, b)
    assert F.linear is original
    assert y.shape == (3, 5, 8) and torch.allclose(y, original(x, w, b), atol=1e-5)


@pytest.mark.parametrize("args", [["--paths", "fastest"], ["--batch", "0"], ["--model", "t5-huge"]])
def test_command_refuses_bad_arguments_with_one_line(args, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_kernels.py"), "--out", str(tmp_path), *args],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr


def test_command_writes_json_table_and_figure(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_kernels.py"), "--model", "tiny", "--batch", "2",
                        "--max-tokens", "2", "--paths", "default", "sdpa_math", "--rounds", "2", "--steps", "4",
                        "--threads", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads((tmp_path / "verify_kernels.json").read_text())
    assert data["env"]["kernels"]["blas"] is not None or "cpu_flags" in data["env"]["kernels"]
    assert [c["batch"] for c in data["cells"]] == [2] and set(data["cells"][0]["paths"]) == {"default", "sdpa_math"}
    assert "| sdpa_math |" in (tmp_path / "verify_kernels.md").read_text()
    assert (tmp_path / "verify_kernels.png").stat().st_size > 1000
