"""The step-size sweep per pair: speed-up vs k beside its ideal bound, acceptance α vs k, accepted tokens per round
vs k: k_sweep."""
from __future__ import annotations

from pathlib import Path

from . import style
from .runs import SPEC_METHODS
from .style import METHOD_STYLE

KIND = "plain"


def make(group, out) -> list[Path]:
    return plot_k_sweep(group.summary, out)


def plot_k_sweep(summary, out_dir, name: str = "k_sweep") -> list[Path]:
    """Step-size sweep per pair: speed-up vs k (solid, bars: 95 % CI) beside its ideal bound (dashed), acceptance
    α vs k, and mean accepted tokens per round vs k. Speculative methods only (all exact)."""
    pairs = list(summary["pair"].unique())
    fig, axes = style.figure(len(pairs), 3, figsize=(14, 4.6 * len(pairs)))
    for row, pair in zip(axes, pairs):
        s = summary[(summary["pair"] == pair) & summary["method"].isin(SPEC_METHODS)]
        for method in SPEC_METHODS:
            m = s[s["method"] == method].sort_values("k")
            if not len(m):
                continue
            st = METHOD_STYLE[method]
            row[0].errorbar(m["k"], m["speedup"],
                            yerr=style.err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                            marker=st["marker"], color=st["color"], label=st["label"], capsize=2, elinewidth=0.9)
            row[0].plot(m["k"], m["bound_speedup"], ls="--", color=st["color"], alpha=0.6)
            row[1].plot(m["k"], m["alpha"], marker=st["marker"], color=st["color"], label=st["label"])
            row[2].plot(m["k"], m["mean_accepted"], marker=st["marker"], color=st["color"], label=st["label"])
        row[0].axhline(1.0, color="black", lw=1, ls=":")
        titles = (("" if len(pairs) == 1 else f"{pair}\n") + "speed-up vs greedy (bars: 95 % CI; dashed: ideal bound)",
                  "acceptance α per token",
                  "accepted draft tokens per round")
        for ax, ylabel, title in zip(row, ("speed-up vs greedy", "acceptance α", "accepted per round"), titles):
            ax.set_xlabel("k (draft tokens per round)")
            style.integer_ticks(ax)
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
        row[1].set_ylim(0, 1.02)
    fig.suptitle("Step-size sweep: " + ", ".join(pairs), fontsize=11)
    style.legend_under_figure(fig, axes[:, 0], ncol=5)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
