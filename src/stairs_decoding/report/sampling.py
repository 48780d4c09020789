"""Speculative sampling against temperature: speed-up, acceptance and quality (sampling) and its table
sampling.md."""
from __future__ import annotations

from pathlib import Path

from ..methods import METHODS
from . import style
from .runs import FLOORS, SPEC_METHODS
from .tables import sampling_rows, sampling_table, write_markdown

KIND = "sampling"


def make(group, out) -> list[Path]:
    return plot_sampling(group.summary, out) + [write_markdown(sampling_table(group.summary), out, "sampling")]


def _sampling_series(row, m, method: str) -> None:
    color, marker = ("#444444", "D") if method == "greedy" else (METHODS[method].color, METHODS[method].marker)
    label = ("target alone" if method == "greedy" else style.label(method)) + \
        (" (best k: " + ", ".join(str(int(k)) for k in m["k"]) + ")" if method in SPEC_METHODS else "")
    if method in SPEC_METHODS:
        row[0].errorbar(m["temperature"], m["speedup"], marker=marker, color=color, label=label, capsize=2,
                        yerr=style.err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"), elinewidth=0.9)
        row[1].errorbar(m["temperature"], m["alpha"], marker=marker, color=color, label=label, capsize=2,
                        yerr=style.err(m, "alpha", "alpha_ci95_low", "alpha_ci95_high"), elinewidth=0.9)
    row[2].plot(m["temperature"], m["chrf_vs_ref"], marker=marker, color=color, label=label)


def plot_sampling(summary, out_dir, name: str = "sampling") -> list[Path]:
    """Per pair, against temperature (0 = greedy): the speed-up of every speculative method at its best k over the
    target alone sampling at the same temperature, its acceptance α, and chrF against the references (the target
    alone, the speculative methods and the draft alone, marked not exact); bars: bootstrap 95 % CIs."""
    rows = sampling_rows(summary)
    pairs = list(rows["pair"].unique())
    fig, axes = style.figure(len(pairs), 3, figsize=(14, 4.6 * len(pairs)))
    for row, pair in zip(axes, pairs):
        p = rows[rows["pair"] == pair]
        for method in ("greedy",) + SPEC_METHODS + FLOORS:
            m = p[p["method"] == method].sort_values("temperature")
            if len(m):
                _sampling_series(row, m, method)
        row[0].axhline(1.0, color="black", lw=1, ls=":")
        titles = (f"{pair}\nspeed-up vs the target alone at the same temperature", "acceptance α per token",
                  "chrF vs references")
        for ax, ylabel, title in zip(row, ("speed-up (bars: 95 % CI)", "acceptance α (bars: 95 % CI)", "chrF"),
                                     titles):
            ax.set_xticks(sorted(p["temperature"].unique()))
            ax.set_xlabel("temperature (0 = greedy)")
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
        row[1].set_ylim(0, 1.02)
        row[0].legend(fontsize=7)
        row[2].legend(fontsize=7)
    fig.suptitle("Speculative sampling: speed-up, acceptance and quality vs temperature (each method at its best k)",
                 fontsize=11)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
