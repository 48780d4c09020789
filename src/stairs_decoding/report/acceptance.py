"""How many drafts a round keeps, and the achieved speed-up against the ideal bound: acceptance."""
from __future__ import annotations

from pathlib import Path

from . import style
from .runs import SPEC_METHODS
from .style import METHOD_STYLE

KIND = "plain"


def make(group, out) -> list[Path]:
    return plot_acceptance(group.results, group.summary, out)


def _histogram(ax, results) -> None:
    import numpy as np

    spec = results[results["method"] == "stairs_cached"]
    ks = sorted(int(k) for k in spec["k"].unique())
    for k in sorted({ks[0], ks[len(ks) // 2], ks[-1]}) if ks else []:
        acc = [a for row in spec[spec["k"] == k]["accepted"] for a in row]
        if acc:
            ax.hist(acc, bins=np.arange(-0.5, k + 1.5, 1.0), density=True, histtype="step", lw=2,
                    label=f"k={k} (mean {np.mean(acc):.2f})")
    ax.set_xlabel("draft tokens accepted in a round")
    ax.set_ylabel("share of rounds")
    ax.set_title("Accepted per round (stairs_cached)", fontsize=10)
    style.legend_below(ax, ncol=2)
    ax.grid(alpha=0.3)


def plot_acceptance(results, summary, out_dir, name: str = "acceptance") -> list[Path]:
    """Left: histogram of draft tokens accepted per round (stairs_cached, a few k). Right: achieved speed-up vs
    the ideal bound (1−α^(k+1))/((1−α)(k·c+1)) for every speculative (method, k), each point labelled with its k
    where the label does not run into another."""
    fig, axes = style.figure(1, 2, figsize=(10.4, 4.9))
    ax1, ax2 = axes[0]
    _histogram(ax1, results)
    s = summary[summary["method"].isin(SPEC_METHODS)].dropna(subset=["bound_speedup", "speedup"])
    hi, points = 1.0, []
    for method in SPEC_METHODS:
        m = s[s["method"] == method]
        if not len(m):
            continue
        st = METHOD_STYLE[method]
        ax2.errorbar(m["bound_speedup"], m["speedup"],
                     yerr=style.err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                     xerr=style.err(m, "bound_speedup", "bound_ci95_low", "bound_ci95_high"), fmt=st["marker"],
                     color=st["color"], label=st["label"], elinewidth=0.8, capsize=2, ms=5)
        points += [(r["bound_speedup"], r["speedup"], f"{int(r['k'])}", st["color"]) for _, r in m.iterrows()]
        hi = max([hi, float(m["bound_speedup"].max()), float(m["speedup"].max())]
                 + [float(m[c].max()) for c in ("speedup_ci95_high", "bound_ci95_high")
                    if c in m.columns and m[c].notna().any()])
    ax2.plot([0, hi * 1.05], [0, hi * 1.05], color="black", lw=1, ls="--", label="achieved = bound")
    ax2.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax2.set_xlim(0, hi * 1.05)
    ax2.set_ylim(0, hi * 1.05)
    ax2.set_xlabel("ideal speed-up bound from measured α and c")
    ax2.set_ylabel("achieved speed-up vs greedy")
    style.legend_below(ax2, ncol=2)
    ax2.grid(alpha=0.3)
    skipped = style.label_points_apart(ax2, points)
    ax2.set_title("Achieved vs ideal (numbers: k" + (", some left out where they would overlap" if skipped else "")
                  + "; bars: 95 % CIs)", fontsize=9 if skipped else 10)
    style.caption(fig, style.runs_caption(summary))
    return style.save_and_close(fig, out_dir, name)
