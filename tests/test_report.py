"""paper_figures/ is regenerated, file for file, from the committed results by scripts/make_figures.py; the figures
show what they claim; the committed notebooks show their outputs."""
import json
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


def _captured_figures(monkeypatch, runs, tmp_path):
    """report.make_all on `runs`, keeping each figure object (name -> Figure) before it is closed."""
    import matplotlib.pyplot as plt

    from stairs_decoding import report

    figs = {}
    real = report.save_figure

    def keep(fig, out_dir, name):
        figs[name] = fig
        return real(fig, out_dir, name)

    monkeypatch.setattr(report, "save_figure", keep)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    report.make_all(runs, tmp_path)
    return figs


def _texts(fig) -> str:
    return " | ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")) if t.get_text())


def test_figures_show_what_their_captions_say(monkeypatch, tmp_path):
    """Content, not file names: axes labels, one series per method, the caption naming pair, device and versions,
    the tiny pair flagged as not the paper's result, and the paper's line on the paper-scale figure."""
    import pandas as pd

    from stairs_decoding import report

    runs = [ROOT / "results"]
    figs = _captured_figures(monkeypatch, runs, tmp_path)
    assert {"time_vs_k", "inference_time", "acceptance", "k_sweep", "paper_scale_alpha"} <= set(figs)
    summary = report.load_summaries(runs)
    spec = [m for m in report.SPEC_METHODS if (summary.method == m).any()]

    ax = figs["time_vs_k"].axes[0]
    assert "k" in ax.get_xlabel() and "time per example" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(report.METHOD_STYLE[m]["label"] in legend for m in spec) and any("greedy" in t for t in legend)
    for m in spec:                                    # each method's line holds its medians, k by k
        line = next(ln for ln in ax.get_lines() if ln.get_label() == report.METHOD_STYLE[m]["label"])
        rows = summary[summary.method == m].sort_values("k")
        assert list(line.get_xdata()) == list(rows.k) and list(line.get_ydata()) == pytest.approx(list(rows.median_s))
    caption = _texts(figs["time_vs_k"])
    env = json.loads((ROOT / "results" / "tiny_cpu" / "env.json").read_text())
    assert env["transformers"] in caption and env["torch"] in caption and "tiny_target" in caption
    assert "not the paper's T5 result" in caption

    bars = figs["inference_time"].axes[0]
    best = report.best_k(summary)
    labels = [t.get_text() for t in bars.texts]
    for _, r in best.iterrows():
        assert f"k={int(r['k'])}" in " ".join(labels)

    alpha_fig = _texts(figs["paper_scale_alpha"])
    assert "paper, t5-large: 17.24 %" in alpha_fig and "architecture only" in alpha_fig
    sweep = pd.read_csv(ROOT / "results" / "paper_scale_t5_large_cpu" / "summary.csv")
    assert sweep.alpha_requested.notna().any()
    alpha_ax = figs["paper_scale_alpha"].axes[0]
    assert "acceptance rate" in alpha_ax.get_xlabel() and "time reduction" in alpha_ax.get_ylabel()


@pytest.mark.parametrize("name", ["01_reproduce_paper", "02_step_size_sweep"])
def test_committed_notebooks_show_their_outputs(name):
    """Executed against the committed results/ (CI executes them again, into a temp directory): every code cell has
    run, in order, without an error, and figures and tables are in the file; no machine's paths are."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1
    assert any("text/html" in o.get("data", {}) for o in outputs)          # the tables
    text = json.dumps(nb)
    assert str(ROOT) not in text and "results/tiny_cpu" in text
    assert (ROOT / "notebooks" / f"{name}.ipynb").stat().st_size < 400_000   # small enough to diff
