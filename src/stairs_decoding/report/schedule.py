"""Fixed k against k chosen each round by measured cost (schedule="cost", methods/_cost.py): cost_schedule.

One panel per run and batch size (or requested α of a controlled draft): each speculative method's speed-up vs
greedy at every fixed k (solid) and under schedule="cost" with that k as its cap (dashed), bars: 95 % CIs."""
from __future__ import annotations

from pathlib import Path

from . import style
from .runs import SPEC_METHODS
from .style import METHOD_STYLE

KIND = "schedule"
LINES = {"constant": ("-", "fixed k"), "cost": ("--", "schedule=cost, k ≤ cap")}


def make(group, out) -> list[Path]:
    return plot_cost_schedule(group.summary, out)


def _panels(summary) -> list[tuple]:
    """(run dir, pair, batch size, α requested or None) of every panel, in the runs' order."""
    s = summary.assign(alpha=summary["alpha_requested"] if "alpha_requested" in summary else None)
    s = s[s["method"].isin(SPEC_METHODS)]
    keys = s[["run_dir", "pair", "batch_size", "alpha"]].drop_duplicates()
    return [(r, p, int(b), None if a != a or a is None else float(a)) for r, p, b, a in keys.itertuples(index=False)]


def plot_cost_schedule(summary, out_dir, name: str = "cost_schedule") -> list[Path]:
    """Speed-up vs k, fixed and as schedule=cost's cap, per run and batch size or α (see the module)."""
    panels = _panels(summary)
    runs = list(dict.fromkeys(p[0] for p in panels))
    cols = max(sum(p[0] == r for p in panels) for r in runs)
    fig, axes = style.figure(len(runs), cols, figsize=(4.3 * cols, 4.2 * len(runs)))
    used = []
    for row, run in zip(axes, runs):
        mine = [p for p in panels if p[0] == run]
        for ax in row[len(mine):]:
            ax.remove()
        used += list(row[:len(mine)])
        for ax, (_, pair, batch, alpha) in zip(row, mine):
            s = summary[(summary["run_dir"] == run) & (summary["batch_size"] == batch)]
            if alpha is not None:
                s = s[s["alpha_requested"] == alpha]
            for method in SPEC_METHODS:
                st = METHOD_STYLE[method]
                for schedule, (ls, what) in LINES.items():
                    m = s[(s["method"] == method) & (s["schedule"].fillna("constant") == schedule)].sort_values("k")
                    if len(m):
                        ax.errorbar(m["k"], m["speedup"], yerr=style.err(m, "speedup", "speedup_ci95_low",
                                                                         "speedup_ci95_high"),
                                    ls=ls, marker=st["marker"], color=st["color"], capsize=2, elinewidth=0.9,
                                    label=f"{st['label']}: {what}")
            ax.axhline(1.0, color="black", lw=1, ls=":")
            where = f"α = {alpha:g} (controlled draft)" if alpha is not None else f"batch size {batch}"
            ax.set_title(f"{pair}\n{where}", fontsize=9)
            ax.set_xlabel("k: fixed, or schedule=cost's cap")
            ax.set_ylabel("speed-up vs greedy")
            style.integer_ticks(ax)
            ax.grid(alpha=0.3)
    fig.suptitle("Fixed k vs k chosen each round by measured cost (schedule=cost)", fontsize=11)
    style.legend_under_figure(fig, used, ncol=2)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
