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
    real = report.style.save_figure

    def keep(fig, out_dir, name):
        figs[name] = fig
        return real(fig, out_dir, name)

    monkeypatch.setattr(report.style, "save_figure", keep)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    monkeypatch.setitem(plt.rcParams, "figure.max_open_warning", 0)      # kept open on purpose, all of them
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
    sweep = pd.concat([pd.read_csv(p) for p in sorted((ROOT / "results").glob("paper_scale_*/summary.csv"))
                       if report.run_kind(p.parent) == "alpha"])      # not a schedule=cost run (its own figure)
    best = report.best_k_per_alpha(sweep)
    fig = figs["paper_scale_alpha"]
    assert len(fig.axes) == sweep.model.nunique()
    for ax in fig.axes:
        title = ax.get_title()
        model = next(m for m in best.model.unique() if report.arch_key(m) + " target" in title)
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


def _summary(**pair):
    """A one-pair summary frame: greedy, stairs k=2 and the draft alone, with the given model/draft labels."""
    import pandas as pd

    from stairs_decoding.report import pair_label

    rows = [dict(method=m, k=k, mean_s=s, speedup=sp, time_reduction_pct=100 * (1 - 1 / sp), alpha=a,
                 bound_speedup=b, exact_match_rate=e, bleu_vs_greedy=100.0 * e, bleu_vs_ref=30.0, **pair)
            for m, k, s, sp, a, b, e in (("greedy", 0, 1.0, 1.0, None, 1.0, 1.0), ("stairs", 2, 0.8, 1.25, 0.7, 1.5, 1.0),
                                         ("draft_greedy", 0, 0.2, 5.0, None, None, 0.1))]
    df = pd.DataFrame(rows)
    df["pair"] = [pair_label(m, d) for m, d in zip(df.model, df.draft)]
    return df


@pytest.mark.parametrize("model, draft, paper", [
    ("google-t5/t5-large", "google-t5/t5-small", 17.24), ("t5-3b@abc123", "t5-small", 9.58),
    ("google-t5/t5-3b", "google-t5/t5-small@main", 9.58), ("models/tiny-t5/target", "models/tiny-t5/draft", None),
    ("tiny_target", "tiny_draft", None), ("t5_large", "t5_small", None), ("t5_large_arch", "t5_small_arch", None),
    ("google-t5/t5-large", "models/tiny-t5/draft", None)])
def test_paper_column_only_beside_the_papers_checkpoints(tmp_path, model, draft, paper):
    """The paper's value sits in its own column, on its stairs method's rows, only for a pair of the paper's
    checkpoints (hub ids, a revision allowed); otherwise the column is not in the written table at all, and the
    figure caption says the pair is not the paper's result."""
    from stairs_decoding import report

    summary = _summary(model=model, draft=draft, task="t", run_dir=str(tmp_path))
    assert report.paper_pair(model, draft) == ({17.24: "t5-large", 9.58: "t5-3b"}.get(paper))
    table = report.reduction_table(summary)
    column = table[report.tables.PAPER_COLUMN]
    assert (list(column[table.method == "stairs"]) == [paper]) if paper else column.isna().all()
    md = report.write_table(table, tmp_path, not_exact=report.not_exact_table(summary))[0].read_text()
    assert (report.tables.PAPER_COLUMN in md) == bool(paper) and (f"{paper:.2f}" in md if paper else True)
    caption = report.runs_caption(summary)
    assert ("not the paper's T5 result" in caption) == (paper is None)


def test_methods_that_are_not_exact_are_kept_apart_from_time_reductions(tmp_path):
    """The draft alone (registry: exact=False) is not a row of the time-reduction table nor a bar of the figure; it
    is in a block of its own under a heading that says it is not exact, without a speed-up or time reduction."""
    from stairs_decoding import report
    from stairs_decoding.methods import METHODS

    not_exact = {m for m, d in METHODS.items() if not d.exact}
    assert not_exact
    summary = _summary(model="tiny_target", draft="tiny_draft", task="t", run_dir=str(tmp_path))
    assert not set(report.reduction_table(summary).method) & not_exact
    apart = report.not_exact_table(summary)
    assert set(apart.method) == not_exact & set(summary.method)
    assert not {"speed-up", "time reduction %"} & set(apart.columns)
    md, tex = report.write_table(report.reduction_table(summary), tmp_path, not_exact=apart)
    main, _, rest = md.read_text().partition(report.tables.NOT_EXACT_HEADING)
    assert rest and all(m not in main for m in not_exact) and all(m.replace("_", "\\_") in tex.read_text() or m in
                                                                  tex.read_text() for m in not_exact)
    assert "time reduction" not in rest.split("\n\n", 1)[1]


def test_committed_tables_have_no_empty_column_and_no_not_exact_time_reduction():
    """Every markdown table in paper_figures/ has a value in each of its columns; time_reduction.md holds the
    methods that are not exact only below their heading."""
    from stairs_decoding import report
    from stairs_decoding.methods import METHODS

    for path in sorted((ROOT / "paper_figures").rglob("*.md")):
        for block in path.read_text().split("\n\n"):
            lines = [ln for ln in block.splitlines() if ln.startswith("|")]
            if not lines:
                continue
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
            for j, name in enumerate(c.strip() for c in lines[0].strip("|").split("|")):
                assert any(row[j] for row in cells), (path.name, name)
    main = (ROOT / "paper_figures" / "time_reduction.md").read_text().partition(report.tables.NOT_EXACT_HEADING)[0]
    assert not [m for m, d in METHODS.items() if not d.exact and f"| {m} " in main]


def test_per_task_table_and_figure_show_every_method_on_both_tasks(monkeypatch, tmp_path):
    """results/per_task_cpu (experiment=per_task_cpu, config `report: per_task`) gives per_task.md and the figure
    only: a column per task naming its pair, a cell per method with speed-up, CI, τ and k, a bar per method and task,
    and a caption that says these are not the paper's T5 result."""
    from stairs_decoding import report

    runs = ROOT / "results" / "per_task_cpu"
    assert {report.run_kind(d) for d in report.run_dirs(runs)} == {"per_task"}
    figs = _captured_figures(monkeypatch, [runs], tmp_path)
    assert set(figs) == {"per_task"}
    summary = report.load_summaries(runs, kind="per_task")
    tasks = set(summary["task"])
    assert tasks == {"tiny_heldout", "gettext_en_de"}
    ax = figs["per_task"].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 2 and all(any(t in entry for entry in legend) for t in tasks)
    methods = [t.get_text() for t in ax.get_yticklabels()]
    assert {"stairs_cached", "lookup", "hf_assisted"} <= {m for m in report.SPEC_METHODS
                                                          if report.METHOD_STYLE[m]["label"] in methods}
    assert len(ax.patches) == 2 * len(methods)
    assert "not the paper's T5 result" in _texts(figs["per_task"])
    table = (tmp_path / "per_task.md").read_text()
    header = table.splitlines()[0]
    assert all(f"{t} (" in header for t in tasks) and "models/tiny-t5-de/target" in header   # what was loaded
    body = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert "reach max_new_tokens" in table                  # the notes under it: how many outputs hit the limit
    assert len(body) == len(methods) and all(line.count("×") == 2 for line in body)
    assert all(line.count("τ") == 2 for line in body if "greedy" not in line)


def test_a_new_figure_is_one_module_in_the_registry():
    """make_all draws what report.FIGURES lists: each entry names its run kind and has make()."""
    from stairs_decoding import report

    kinds = {"plain", "batched", "sampling", "alpha", "schedule", "per_task"}
    assert all(m.KIND in kinds and callable(m.make) for m in report.FIGURES)
    assert {m.KIND for m in report.FIGURES} == kinds


def test_an_interrupted_run_is_named_incomplete_before_its_figures(tmp_path, capsys):
    """make_all warns (stderr) when a run's cells hold fewer examples than its task.num_examples; the committed
    runs are complete."""
    import shutil

    from stairs_decoding import report

    root = Path(__file__).resolve().parents[1] / "results"
    for run in sorted(p.parent for p in root.rglob("summary.csv")):
        assert report.incomplete(run) is None, run
    run = tmp_path / "run"
    shutil.copytree(root / "tiny_cpu", run)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("num_examples: 30", "num_examples: 300"))
    why = report.incomplete(run)
    assert why is not None and "30 of 300 examples" in why and f"resume={run}" in why
    report.make_all([run], tmp_path / "figs")
    assert f"warning: {why}" in capsys.readouterr().err


def test_committed_figures_are_readable_no_overlapping_labels(monkeypatch, tmp_path):
    """Every figure made from the committed runs, at its committed size: no two annotations of one panel overlap
    (the T5-3B panel's k labels did), and no axis label runs into another panel (k_sweep's y label did)."""
    figs = _captured_figures(monkeypatch, [ROOT / "results"], tmp_path)
    assert len(figs) >= 6
    for name, fig in figs.items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        panels = [ax for ax in fig.axes if ax.get_visible()]
        for ax in panels:
            boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible() and t.get_text().strip()]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
                    overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
                    assert overlap_w <= 1 or overlap_h <= 1, (name, ax.get_title(), a, b)
            for label in (ax.yaxis.label, ax.xaxis.label):
                if not label.get_text():
                    continue
                box = label.get_window_extent(renderer)
                for other in panels:
                    if other is not ax:
                        assert not box.overlaps(other.get_window_extent(renderer)), (name, label.get_text())
