"""What every figure shares: the methods' styles (from the registry), the figure and its caption, error bars,
legends, and saving as PDF + PNG.

Figures use matplotlib's constrained layout (labels and legends below the axes get their room), their caption is
written under the laid-out figure, and they are saved with a tight bounding box: nothing is clipped or drawn over
another."""
from __future__ import annotations

import re
from pathlib import Path

from ..methods import METHODS
from .runs import environment_caption, is_exact, paper_pair, read_env

# Speculative methods and their figure style: from the method registry.
METHOD_STYLE = {m.name: {"color": m.color, "marker": m.marker, "label": m.label} for m in METHODS.values()
                if m.speculative}
PNG_DPI = 150     # the notebooks lower it (report.style.PNG_DPI), so that their committed outputs stay small
NOT_EXACT = "not exact: output differs from the target's greedy output"


def label(method: str) -> str:
    """A method's legend label, marked when the method is not exact (the draft alone)."""
    text = METHODS[method].label if method in METHODS else method
    return text if is_exact(method) else f"{text} ({NOT_EXACT.split(':')[0]})"


def figure(nrows: int = 1, ncols: int = 1, *, figsize):
    """A figure with constrained layout and its axes as a 2-D array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08, wspace=0.06)
    return fig, axes


def caption(fig, text: str) -> None:
    """The caption under everything else, left-aligned. Call it last: it freezes the laid-out figure (labels,
    legends under the axes or the figure) and places itself below it."""
    freeze_layout(fig)
    fig.draw_without_rendering()
    bottom = fig.get_tightbbox().y0                         # inches from the figure's bottom edge (may be < 0)
    fig.text(0.01, (bottom - 0.12) / fig.get_figheight(), text, ha="left", va="top", fontsize=7.5,
             color="#444444", linespacing=1.4)


def save_figure(fig, out_dir, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", dpi=PNG_DPI)
    return paths


def save_and_close(fig, out_dir, name: str) -> list[Path]:
    """save_figure (looked up at call time, so that a test can watch it), then close the figure."""
    import sys

    import matplotlib.pyplot as plt

    paths = sys.modules[__name__].save_figure(fig, out_dir, name)
    plt.close(fig)
    return paths


def legend_below(ax, ncol: int = 3) -> None:
    """The legend under the axes, where it cannot cover data (constrained layout makes room for it)."""
    if not ax.get_legend_handles_labels()[0]:     # nothing labelled (e.g. no stairs_cached cell): no legend
        return
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, frameon=False)


def integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def err(df, point: str, low: str, high: str):
    """Asymmetric error bars (2 × n) for `point` from its interval columns; 0 where an interval is missing (n < 2,
    or a summary written before the intervals existed)."""
    import numpy as np

    y = np.asarray(df[point], dtype=float)
    lo = np.asarray(df[low], dtype=float) if low in df.columns else np.full_like(y, np.nan)
    hi = np.asarray(df[high], dtype=float) if high in df.columns else np.full_like(y, np.nan)
    return np.vstack([np.nan_to_num(np.clip(y - lo, 0, None)), np.nan_to_num(np.clip(hi - y, 0, None))])


def swept_ks(df) -> str:
    """The ks most methods swept, and each other method's own."""
    per = {m: tuple(sorted(int(k) for k in df[df.method == m].k.unique())) for m in METHOD_STYLE
           if (df.method == m).any()}
    common = max(set(per.values()), key=lambda v: sum(1 for x in per.values() if x == v)) if per else ()
    text = ", ".join(map(str, common))
    others = [f"{m}: {', '.join(map(str, v))}" for m, v in per.items() if v != common]
    return text + (f"; {'; '.join(others)}" if others else "")


def runs_caption(summary) -> str:
    """Pairs, task, device, versions and date of the runs behind a figure; every pair that is not the paper's
    checkpoints (google-t5/t5-small drafting for google-t5/t5-large or t5-3b) is flagged as not the paper's result."""
    envs = [read_env(d) for d in summary["run_dir"].unique()]
    pairs = ", ".join(summary["pair"].unique())
    tasks = ", ".join(str(t) for t in summary["task"].dropna().unique())
    text = f"pair: {pairs}; task: {tasks}"
    options = summary["options"].dropna() if "options" in summary else []
    forwards = sorted({f for o in options for f in re.findall(r"draft_forward=(\w+)", str(o))})
    if forwards:        # how the draft-model methods ran their draft (methods/_lean.py)
        text += f"; draft steps: {'/'.join(forwards)}"
    text += f"\n{environment_caption(envs)}"
    others = [p for p, m, d in zip(*[summary.drop_duplicates("pair")[c] for c in ("pair", "model", "draft")])
              if paper_pair(m, d) is None]
    if others:
        text += f"\n{', '.join(others)}: not the paper's T5 checkpoints, so not the paper's T5 result"
    return text


def label_points_apart(ax, points: list[tuple], gap_pt: float = 9.0) -> int:
    """Write (x, y, text, colour) labels just right of their points, leaving out a label that would come within
    `gap_pt` points of one already written (largest x first: the end of each series is kept); returns how many
    were left out. Call it once the axes' limits are set."""
    fig = ax.figure
    fig.draw_without_rendering()                            # the final layout, for display coordinates
    scale = 72.0 / fig.dpi
    placed, skipped = [], 0
    for x, y, text, color in sorted(points, key=lambda p: -p[0]):
        px, py = ax.transData.transform((x, y)) * scale
        if any(abs(px - qx) < gap_pt * 1.6 and abs(py - qy) < gap_pt for qx, qy in placed):
            skipped += 1
            continue
        placed.append((px, py))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, 2), fontsize=6.5, color=color)
    return skipped


def freeze_layout(fig) -> None:
    """Lay the figure out now and keep it so (saving with a tight bbox must not lay it out again)."""
    if fig.get_layout_engine() is not None and type(fig.get_layout_engine()).__name__ != "PlaceHolderLayoutEngine":
        fig.draw_without_rendering()
        fig.set_layout_engine("none")


def legend_under_figure(fig, axes, ncol: int = 4) -> None:
    """One legend for the whole figure, centred under its panels: every series of `axes`, each label once. It is
    added once the panels are laid out (so that it does not widen one column) and anchored to the bottom-left
    panel, so that it stays where it is put."""
    seen = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(text, handle)
    freeze_layout(fig)
    anchor = fig.axes[0] if not len(axes) else list(axes)[-1]
    box = anchor.get_position()
    bottom = min(ax.get_tightbbox().y0 for ax in fig.axes) / fig.dpi / fig.get_figheight()   # figure fraction
    anchor.legend(list(seen.values()), list(seen), loc="upper center", ncol=ncol, fontsize=7.5, frameon=False,
                  bbox_to_anchor=((0.5 - box.x0) / box.width, (bottom - 0.01 - box.y0) / box.height))
