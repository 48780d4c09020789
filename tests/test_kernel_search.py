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


# -- verify_attention="math": the option that adopts the math SDPA backend for verifications ----------------------
import archs  # noqa: E402
from test_architectures import _batch, _mid_eos, hf_reference  # noqa: E402

from stairs_decoding import generate  # noqa: E402
from stairs_decoding.errors import GenerationInputError  # noqa: E402
from stairs_decoding.methods import METHODS  # noqa: E402

TAKERS = tuple(m.name for m in METHODS.values() if "verify_attention" in m.options)


@pytest.mark.parametrize("name", list(archs.ARCHS))
def test_math_verification_equals_transformers_generate(name):
    """Every method that takes the option, k ∈ {1, 4}, a perturbed draft, a padded batch of 3 and a single prompt,
    30 new tokens with an EOS the target emits mid-generation: the output is model.generate's (default kernels)."""
    target = archs.build(name)
    draft = archs.perturbed(target)
    ids, mask = _batch(name)
    eos = _mid_eos(name, target, ids, mask)
    single = ids[1:2, mask[1].bool()]
    refs, refs_single = hf_reference(target, ids, mask, 30, eos), hf_reference(target, single, None, 30, eos)
    problems = []
    for method in TAKERS:
        d = draft if METHODS[method].needs_draft else None
        for k in (1, 4):
            for what, kw, expected in (("batch3", dict(input_ids=ids, attention_mask=mask), refs),
                                       ("single", dict(input_ids=single), refs_single)):
                got = generate(target, draft=d, method=method, num_draft_tokens=k, max_new_tokens=30,
                               eos_token_id=eos, verify_attention="math", **kw).tokens
                if got != expected:
                    problems.append(f"{method} k={k} {what}: {got} != {expected}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_math_kernel_runs_the_verifications_and_only_them():
    """With verify_attention="math" every target forward of several tokens runs without the fused kernel and every
    one-token forward with it; by default all run with it."""
    target = archs.build("t5")
    draft = archs.perturbed(target)
    ids, mask = _batch("t5")
    seen = []
    hook = target.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((kwargs["input_ids"].shape[1] if kwargs.get("input_ids") is not None
                                                  else kwargs["inputs_embeds"].shape[1],
                                                  torch.backends.cuda.flash_sdp_enabled())), with_kwargs=True)
    try:
        for option, expect_multi in (("math", False), ("default", True)):
            seen.clear()
            generate(target, ids, attention_mask=mask, draft=draft, method="stairs_cached", num_draft_tokens=4,
                     max_new_tokens=20, verify_attention=option)
            multi = {flash for n, flash in seen if n > 1}
            assert multi == {expect_multi} and {flash for n, flash in seen if n == 1} <= {True}, (option, seen)
    finally:
        hook.remove()
    assert torch.backends.cuda.flash_sdp_enabled()          # restored


def test_verify_attention_is_validated_and_refused_where_it_does_not_apply():
    target = archs.build("t5")
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(GenerationInputError, match="verify_attention must be one of 'default', 'math'"):
        generate(target, ids, method="lookup", verify_attention="flash")
    with pytest.raises(GenerationInputError, match="verify_attention='math' does not apply to method 'greedy'"):
        generate(target, ids, method="greedy", verify_attention="math")
