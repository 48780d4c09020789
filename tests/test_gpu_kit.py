"""scripts/gpu_check.sh: its experiments cover what the kit promises, and its rehearsal (SMOKE=1, on the CPU) runs
end to end: three result folders and the figures."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from stairs_decoding.checks import plan_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["gpu_tiny", "gpu_t5_large", "gpu_t5_3b"])
def test_gpu_experiments_sweep_what_the_kit_promises(name):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"experiment={name}"])
    assert cfg.device == "cuda" and cfg.dtype == "bfloat16"
    cells = plan_cells(cfg)
    methods = {c.method for c in cells}
    assert {"greedy", "hf_greedy", "stairs", "stairs_cached", "hf_assisted", "hf_assisted_default"} <= methods
    for m in ("stairs", "stairs_cached", "hf_assisted"):
        assert {c.k for c in cells if c.method == m} == {1, 2, 4, 8}
        if name != "gpu_tiny":
            assert {c.alpha for c in cells if c.method == m} == {0.5, 0.7, 0.9}


def test_gpu_kit_rehearsal_runs_end_to_end(tmp_path):
    """In float32 (DTYPE): the kit's bfloat16 is emulated on a CPU without bfloat16 matrix units, which made this one
    test five minutes; the kit's dtype is checked by the config test above."""
    env = dict(os.environ, SMOKE="1", DEVICE="cpu", DTYPE="float32", PYTHON=sys.executable,
               RESULTS=str(tmp_path / "results"),
               FIGURES=str(tmp_path / "figures"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    for run in ("tiny_gpu", "paper_scale_t5_large_gpu", "paper_scale_t5_3b_gpu"):
        summary = pd.read_csv(tmp_path / "results" / run / "summary.csv")
        assert {"greedy", "stairs", "stairs_cached", "hf_assisted"} <= set(summary.method)
        assert summary[summary.method == "stairs_cached"].mismatches.fillna(0).sum() == 0
        assert (tmp_path / "results" / run / "env.json").exists()
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"paper_scale_alpha.png", "inference_time.png", "time_reduction.md"} <= figures


def test_gpu_kit_without_cuda_is_one_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    env = dict(os.environ, PYTHON=sys.executable, RESULTS=str(tmp_path / "r"), FIGURES=str(tmp_path / "f"))
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and out.stderr.strip().startswith("error: DEVICE=cuda but torch sees no CUDA")
    assert out.stderr.strip().count("\n") == 0 and not (tmp_path / "r").exists()
