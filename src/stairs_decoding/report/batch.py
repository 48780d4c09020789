"""Throughput vs batch size, each method at its best k at each size: throughput_vs_batch and its table
batch_throughput.md."""
from __future__ import annotations

from pathlib import Path

from ..methods import METHODS
from . import style
from .runs import BASELINES, SPEC_METHODS
from .tables import batch_rows, batch_table, write_markdown

KIND = "batched"


def make(group, out) -> list[Path]:
    return plot_throughput_vs_batch(group.summary, out) + [write_markdown(batch_table(group.summary), out,
                                                                          "batch_throughput")]


def _series(p):
    """(method, schedule, its rows by batch size) for every line of a pair's panel."""
    schedules = list(dict.fromkeys(p["schedule"].fillna("constant")))
    for method, schedule in [(m, sc) for m in BASELINES + SPEC_METHODS for sc in schedules]:
        m = p[(p["method"] == method) & (p["schedule"].fillna("constant") == schedule)].sort_values("batch_size")
        if len(m):
            yield method, schedule, m


def plot_throughput_vs_batch(summary, out_dir, name: str = "throughput_vs_batch") -> list[Path]:
    """Left: throughput (new tokens per second) vs batch size for greedy, transformers' greedy and every speculative
    method at its best k at each size (each schedule a line of its own, dashed when not constant), with bootstrap
    95 % CIs over batches. Right: the same as a speed-up vs greedy at that batch size (1 = greedy)."""
    from matplotlib.ticker import ScalarFormatter

    rows = batch_rows(summary)
    pairs = list(rows["pair"].unique())
    fig, axes = style.figure(len(pairs), 2, figsize=(11, 5.4 * len(pairs)))
    for (left, right), pair in zip(axes, pairs):
        p = rows[rows["pair"] == pair]
        for method, schedule, m in _series(p):
            color = "#444444" if method == "greedy" else METHODS[method].color
            marker = "*" if schedule != "constant" else METHODS[method].marker
            label = METHODS[method].label + ("" if schedule == "constant" else f", schedule={schedule}") + \
                ("" if method in BASELINES else " (best k: " + ", ".join(str(int(k)) for k in m["k"]) + ")")
            ls = "--" if schedule != "constant" else "-"
            left.errorbar(m["batch_size"], m["tokens_per_s"],
                          yerr=style.err(m, "tokens_per_s", "tokens_per_s_ci95_low", "tokens_per_s_ci95_high"),
                          marker=marker, color=color, label=label, capsize=2, elinewidth=0.9, ls=ls)
            if method != "greedy":
                right.errorbar(m["batch_size"], m["speedup"],
                               yerr=style.err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                               marker=marker, color=color, label=label, capsize=2, elinewidth=0.9, ls=ls)
        right.axhline(1.0, color="black", lw=1, ls=":")
        for ax, ylabel, title in ((left, "throughput (new tokens / s)", f"{pair}: throughput (bars: 95 % CI over "
                                   "batches)"), (right, "speed-up vs greedy", "speed-up vs greedy at the same batch "
                                                 "size (bars: 95 % CI)")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(p["batch_size"].unique()))
            ax.get_xaxis().set_major_formatter(ScalarFormatter())
            ax.set_xlabel("batch size (examples per generate() call)")
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
    fig.suptitle("Throughput vs batch size (each method at its best k at that size)", fontsize=11)
    style.legend_under_figure(fig, axes[:, 0], ncol=3)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
