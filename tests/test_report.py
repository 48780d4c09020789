"""paper_figures/ is regenerated, file for file, from the committed results by scripts/make_figures.py."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_figures_regenerates_every_file_in_paper_figures(tmp_path):
    committed = sorted(p.name for p in (ROOT / "paper_figures").iterdir() if p.is_file())
    if not committed:
        pytest.skip("no committed figures yet")
    out = subprocess.run([sys.executable, "scripts/make_figures.py", "results", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == committed


def test_make_figures_without_runs_is_one_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "scripts/make_figures.py", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: no run directories") and out.stderr.count("\n") == 1
