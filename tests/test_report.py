"""paper_figures/ is regenerated, file for file, from the committed results by scripts/make_figures.py; the figures
show what they claim; the committed notebooks show their outputs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_figures_regenerates_every_file_in_paper_figures(tmp_path):
    figures = ROOT / "paper_figures"
    committed = sorted(str(p.relative_to(figures)) for p in figures.rglob("*") if p.is_file())
    if not committed:
        pytest.skip("no committed figures yet")
    out = subprocess.run([sys.executable, "scripts/make_figures.py", "results", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == committed


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
    for m in spec:                                    # each method's line holds its means (the shaded CI's centre)
        line = next(ln for ln in ax.get_lines() if ln.get_label() == report.METHOD_STYLE[m]["label"])
        rows = summary[summary.method == m].sort_values("k")
        assert list(line.get_xdata()) == list(rows.k) and list(line.get_ydata()) == pytest.approx(list(rows.mean_s))
    caption = _texts(figs["time_vs_k"])
    env = json.loads((ROOT / "results" / "tiny_cpu" / "env.json").read_text())
    assert env["transformers"] in caption and env["torch"] in caption and "tiny_target" in caption
    assert "not the paper's T5 result" in caption

    bars = figs["inference_time"].axes[0]
    best = report.best_k(summary)
    labels = [t.get_text() for t in bars.texts]
    for _, r in best.iterrows():                      # the table's best k, its reduction and CI on its bar
        assert any(f"k={int(r['k'])}" in t and f"{r['time_reduction_pct']:+.1f} %" in t
                   and f"[{r['time_reduction_ci95_low']:+.0f}, {r['time_reduction_ci95_high']:+.0f}]" in t
                   for t in labels), (r["method"], labels)
    table = report.reduction_table(summary)
    for _, r in best.iterrows():
        row = table[(table.method == r["method"]) & (table.k == int(r["k"]))].iloc[0]
        assert row["speed-up"] == pytest.approx(r["speedup"]) and row["speed-up 95% CI"]
        assert row["speed-up"] == table[table.method == r["method"]]["speed-up"].max()

    alpha_fig = _texts(figs["paper_scale_alpha"])
    assert "paper, t5-large: 17.24 %" in alpha_fig and "architecture only" in alpha_fig
    sweep = pd.read_csv(ROOT / "results" / "paper_scale_t5_large_cpu" / "summary.csv")
    assert sweep.alpha_requested.notna().any()
    alpha_ax = figs["paper_scale_alpha"].axes[0]
    assert "acceptance rate" in alpha_ax.get_xlabel() and "time reduction" in alpha_ax.get_ylabel()


def test_alpha_sweep_points_carry_their_ci_and_the_tables_best_k(monkeypatch, tmp_path):
    """Every plotted point of the paper-scale figure has an error bar spanning its bootstrap CI, is annotated with
    the k the summary's best_k picks, and the bound has a band (c's CI); the legend sits outside the axes."""
    import numpy as np
    import pandas as pd

    from stairs_decoding import report

    figs = _captured_figures(monkeypatch, [ROOT / "results"], tmp_path)
    sweep = pd.concat([pd.read_csv(p) for p in sorted((ROOT / "results").glob("paper_scale_*/summary.csv"))])
    best = report.best_k_per_alpha(sweep)
    fig = figs["paper_scale_alpha"]
    assert len(fig.axes) == sweep.model.nunique()
    for ax in fig.axes:
        title = ax.get_title()
        model = next(m for m in best.model.unique() if report._arch_key(m) + " target" in title)
        sub = best[best.model == model]
        assert "k swept:" in title and "95 % CI" in title
        notes = [t.get_text() for t in ax.texts]
        for _, r in sub.iterrows():
            assert any(t.endswith(f"k={int(r['k'])})") or t == f"k={int(r['k'])}" for t in notes)
        # error bars: vertical segments from each point's CI low to high
        segs = [s for c in ax.collections if hasattr(c, "get_segments") for s in c.get_segments()]
        shown = sub[sub.time_reduction_pct > ax.get_ylim()[0] + 4]
        for _, r in shown.iterrows():
            assert any(np.allclose(seg[:, 0], r.alpha_requested) and
                       np.allclose(sorted(seg[:, 1]), [r.time_reduction_ci95_low, r.time_reduction_ci95_high])
                       for seg in segs if len(seg) == 2), (model, r.method, r.alpha_requested)
        assert any(type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection") for c in ax.collections)
        legend = ax.get_legend()
        assert legend is not None and legend.get_bbox_to_anchor().y0 < ax.get_window_extent().y0


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
