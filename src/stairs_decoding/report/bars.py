"""Inference time at each method's best k, labelled with its time reduction (the paper's "…-inf" analogue):
inference_time. Exact methods only: a time reduction compares equal outputs."""
from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from . import style
from .runs import BASELINES, SPEC_METHODS, best_k, is_exact

KIND = "plain"


def make(group, out) -> list[Path]:
    return plot_inference_bars(group.summary, out)


def _bar_label(method: str, r) -> str:
    if method == "greedy":
        return "baseline"
    label = f"{float(r['time_reduction_pct']):+.1f} %"
    lo, hi = r.get("time_reduction_ci95_low"), r.get("time_reduction_ci95_high")
    if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
        label += f"\n[{float(lo):+.0f}, {float(hi):+.0f}]"
    if method in SPEC_METHODS:
        label += f"\nk={int(r['k'])}"
    return label


def plot_inference_bars(summary, out_dir, name: str = "inference_time") -> list[Path]:
    """Greedy, transformers' greedy, and every exact speculative method at its best k (largest speed-up): mean time
    per example with the 95 % CI of the mean, labelled with the time reduction vs greedy (positive = faster) and its
    bootstrap 95 % CI. One panel per pair."""
    import pandas as pd

    pairs = list(summary["pair"].unique())
    best = best_k(summary)
    order = tuple(m for m in BASELINES + SPEC_METHODS if is_exact(m))
    fig, axes = style.figure(1, len(pairs), figsize=((1.0 + 0.95 * len(order)) * len(pairs), 5.0))
    for ax, pair in zip(axes[0], pairs):
        s = summary[summary["pair"] == pair]
        bars = []
        for method in order:
            row = s[s["method"] == method] if method in BASELINES else \
                best[(best["pair"] == pair) & (best["method"] == method)]
            if len(row):
                bars.append((method, row.iloc[0]))
        x = list(range(len(bars)))
        heights = [float(r["mean_s"]) for _, r in bars]
        yerr = style.err(pd.DataFrame([r for _, r in bars]), "mean_s", "ci95_low", "ci95_high")
        ax.bar(x, heights, color=[METHODS[m].color if m != "greedy" else "#444444" for m, _ in bars], width=0.65,
               yerr=yerr, capsize=3, ecolor="black", error_kw={"elinewidth": 0.9})
        for i, (method, r) in enumerate(bars):
            ax.text(i, heights[i] + yerr[1][i], _bar_label(method, r), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(["greedy" if m == "greedy" else METHODS[m].label.replace(" (", "\n(").replace(", ", ",\n")
                            for m, _ in bars], fontsize=7, rotation=0)
        ax.set_ylabel("mean time per example (s)")
        ax.set_ylim(0, max(h + e for h, e in zip(heights, yerr[1])) * 1.35)
        ax.set_title(pair, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Inference time at each method's best k (labels: time reduction vs greedy, positive = faster, "
                 "with its 95 % CI)", fontsize=10)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
