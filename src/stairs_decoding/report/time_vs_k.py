"""Mean time per example vs k, per pair (the paper's "t5-large-batch"/"t5-3b-batch" analogue): time_vs_k."""
from __future__ import annotations

from pathlib import Path

from . import style
from .runs import BASELINES, FLOORS, SPEC_METHODS
from .style import METHOD_STYLE

KIND = "plain"


def make(group, out) -> list[Path]:
    return plot_time_vs_k(group.summary, out)


def _line_style(method: str) -> dict:
    """Horizontal lines: greedy (the reference) dashed black, transformers' greedy dash-dot, the draft alone dotted
    grey (and marked not exact)."""
    from ..methods import METHODS

    if method == "greedy":
        return dict(color="black", lw=1.5, ls="--", label="greedy (target alone)")
    if method in FLOORS:
        return dict(color="grey", lw=1, ls=":", label=style.label(method))
    return dict(color=METHODS[method].color, lw=1.0, ls="-.", label=style.label(method))


def plot_time_vs_k(summary, out_dir, name: str = "time_vs_k") -> list[Path]:
    """Mean time per example vs the assistant batch size k, per method, shaded with the 95 % CI of the mean; greedy
    (and transformers' greedy, the draft alone) as horizontal lines. One panel per pair. Times only: the draft
    alone (not exact) is a line of its own, labelled so."""
    pairs = list(summary["pair"].unique())
    fig, axes = style.figure(1, len(pairs), figsize=(5.6 * len(pairs), 5.6))
    for ax, pair in zip(axes[0], pairs):
        s = summary[summary["pair"] == pair]
        for method in BASELINES + FLOORS:
            g = s[s["method"] == method]
            if not len(g):
                continue
            st = _line_style(method)
            ax.axhline(float(g["mean_s"].iloc[0]), **st)
            if g["ci95_low"].notna().all():
                ax.axhspan(float(g["ci95_low"].iloc[0]), float(g["ci95_high"].iloc[0]), color=st["color"],
                           alpha=0.08, lw=0)
        for method in SPEC_METHODS:
            m = s[s["method"] == method].sort_values("k")
            if not len(m):
                continue
            st = METHOD_STYLE[method]
            ax.plot(m["k"], m["mean_s"], marker=st["marker"], color=st["color"], label=st["label"])
            if {"ci95_low", "ci95_high"} <= set(m.columns) and m["ci95_low"].notna().all():
                ax.fill_between(m["k"], m["ci95_low"], m["ci95_high"], color=st["color"], alpha=0.12, lw=0)
        ax.set_xlabel("assistant batch size k (draft tokens per round)")
        style.integer_ticks(ax)
        ax.set_ylabel("mean time per example (s)")
        ax.set_title(pair, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        style.legend_below(ax, ncol=2)
    fig.suptitle("Time per example vs k (shaded: 95 % CI of the mean over examples)", fontsize=11)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
