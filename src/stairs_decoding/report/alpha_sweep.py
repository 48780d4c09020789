"""The paper-scale figure: time reduction vs the controlled draft's acceptance α, each method at its best k per α,
one panel per target architecture (paper_scale_alpha), and the α at which a method reaches a level."""
from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from . import style
from .runs import PAPER_REDUCTION_PCT, SPEC_METHODS, arch_key, best_k_per_alpha, environment_caption, \
    load_alpha_sweep, model_size
from .style import METHOD_STYLE

KIND = "alpha"
LABEL_GAP_PT = 9.0          # the least vertical distance between two k labels at one α


def make(group, out) -> list[Path]:
    return plot_alpha_sweep(group.dirs, out)


def _cost_ratio_of(sub) -> tuple[float, float, float, str]:
    """c (median over the runs), the ends of its 95 % CI over the runs, and its label for a panel title."""
    cs = sorted(set(round(float(x), 3) for x in sub.cost_ratio_c.dropna()))
    c = float(sub.cost_ratio_c.dropna().median()) if cs else math.nan
    lo = hi = math.nan
    if "cost_ratio_ci95_low" in sub and sub.cost_ratio_ci95_low.notna().any():
        lo, hi = float(sub.cost_ratio_ci95_low.dropna().min()), float(sub.cost_ratio_ci95_high.dropna().max())
    text = "?" if not cs else f"{cs[0]:.3f}" if len(cs) == 1 else f"{cs[0]:.3f}–{cs[-1]:.3f} (runs)"
    if not math.isnan(lo):
        text += f" (95 % CI {lo:.3f}–{hi:.3f})"
    return c, lo, hi, text


def _draw_bound(ax, c: float, c_lo: float, c_hi: float, ks: list[int], alphas: list[float]) -> list[float]:
    """The ideal bound's time reduction at the measured c and the best of `ks`, on a fine α grid, with a band over
    c's 95 % CI; returns every value drawn (for the y-range)."""
    from ..metrics import speedup_bound
    from ..summary import time_reduction

    if math.isnan(c) or not ks:
        return []
    grid = [min(alphas) + (max(alphas) - min(alphas)) * i / 100 for i in range(101)] if len(alphas) > 1 else alphas

    def ideal(cc):
        return [time_reduction(max(speedup_bound(a, cc, k) for k in ks)) for a in grid]

    bound = ideal(c)
    band = not math.isnan(c_lo)
    ax.plot(grid, bound, ":" if len(grid) > 1 else "x", color="0.45", lw=1.5, ms=8,
            label="ideal bound (measured c, best k" + ("; band: c's 95 % CI)" if band else ")"))
    if not band:
        return bound
    band_lo, band_hi = ideal(c_hi), ideal(c_lo)
    if len(grid) > 1:
        ax.fill_between(grid, band_lo, band_hi, color="0.6", alpha=0.18, lw=0)
    else:
        ax.errorbar(grid, bound, yerr=[[bound[0] - band_lo[0]], [band_hi[0] - bound[0]]], fmt="none", ecolor="0.45",
                    capsize=4)
    return bound + band_hi


def _draw_alpha_methods(ax, sub, alphas: list[float], low: float) -> list[tuple]:
    """Each speculative method's best-k points with their CI bars; a method below `low` + 4 is drawn at the bottom
    edge; a method swept at fewer α than the panel gets no line. Returns the k labels to write: (α, y drawn, text,
    colour)."""
    notes = []
    for method, st in METHOD_STYLE.items():
        m = sub[sub.method == method]
        if m.empty:
            continue
        ys = [max(y, low + 4.0) for y in m.time_reduction_pct]
        clipped = any(y < low + 4.0 for y in m.time_reduction_pct)
        gaps = len(m) < len(alphas)
        ax.plot(m.alpha_requested, ys, marker="v" if clipped else st["marker"], color=st["color"],
                label=st["label"] + (": off scale below, value written in" if clipped else ""),
                lw=1.8, ms=7, ls="none" if clipped or gaps else "-")
        if not clipped:
            ax.errorbar(m.alpha_requested, m.time_reduction_pct,
                        yerr=style.err(m, "time_reduction_pct", "time_reduction_ci95_low", "time_reduction_ci95_high"),
                        fmt="none", ecolor=st["color"], elinewidth=1.1, capsize=3)
        for a, y, yd, k in zip(m.alpha_requested, m.time_reduction_pct, ys, m.k):
            notes.append((float(a), yd, f"{y:.0f} % (k={int(k)})" if y < low + 4.0 else f"k={int(k)}", st["color"]))
    return notes


def _write_k_labels(ax, notes: list[tuple]) -> None:
    """The k labels right of their points, stacked at each α so that no two overlap (at least LABEL_GAP_PT apart)."""
    fig = ax.figure
    fig.draw_without_rendering()                            # the axes' final size, for points per y unit
    y0, y1 = ax.get_ylim()
    per_unit = ax.get_window_extent().height * 72.0 / fig.dpi / (y1 - y0)
    for a in sorted({n[0] for n in notes}):
        placed = None
        for _, y, text, color in sorted((n for n in notes if n[0] == a), key=lambda n: n[1]):
            want = (y - y0) * per_unit
            at = want if placed is None else max(want, placed + LABEL_GAP_PT)
            ax.annotate(text, (a, y), textcoords="offset points", xytext=(7, at - want), va="center", fontsize=7,
                        color=color)
            placed = at


def _draw_hf_greedy(ax, runs_df) -> None:
    """transformers' own greedy loop (the baseline users know) as a horizontal line with its CI in the label."""
    hf = runs_df[runs_df.method == "hf_greedy"]
    if not len(hf):
        return
    r = hf.iloc[0]
    ci = ""
    if "time_reduction_ci95_low" in r and not math.isnan(float(r.time_reduction_ci95_low)):
        ci = f" [{float(r.time_reduction_ci95_low):+.1f}, {float(r.time_reduction_ci95_high):+.1f}]"
    ax.axhline(float(r.time_reduction_pct), color=METHODS["hf_greedy"].color, lw=1.0, ls="-.",
               label=f"{METHODS['hf_greedy'].label}: {float(r.time_reduction_pct):+.1f} %{ci}")


def _alpha_panel(ax, df, best, model, floor_pct: float) -> list[tuple]:
    """One target's panel; returns its k labels, written once the layout is final."""
    sub, key = best[best.model == model], arch_key(model)
    draft = next((d for d in sub.draft.dropna().unique()), "?")
    c, c_lo, c_hi, c_text = _cost_ratio_of(sub)
    ks = sorted(int(k) for k in df[(df.model == model) & df.method.isin(SPEC_METHODS)].k.unique() if k >= 1)
    alphas = sorted(sub.alpha_requested.unique())
    bound = _draw_bound(ax, c, c_lo, c_hi, ks, alphas)
    # The y-range follows the methods that come near the bound; a method far below (the uncached stairs on a
    # CPU) is drawn at the bottom edge with its values written in, rather than squashing the others.
    tops = [float(sub.time_reduction_pct.max()), PAPER_REDUCTION_PCT.get(key, 0.0)] + bound
    if "time_reduction_ci95_high" in sub and sub.time_reduction_ci95_high.notna().any():
        tops.append(float(sub.time_reduction_ci95_high.max()))
    near = sub[sub.time_reduction_pct >= floor_pct].time_reduction_pct
    low = min([float(near.min()) if len(near) else 0.0, 0.0]) - 12.0
    notes = _draw_alpha_methods(ax, sub, alphas, low)
    ax.set_ylim(low, max(tops) + 12.0)
    if key in PAPER_REDUCTION_PCT:
        y = PAPER_REDUCTION_PCT[key]
        ax.axhline(y, ls="--", color="k", lw=1.1, label=f"paper, {key}: {y} % (its checkpoints, its GPU)")
    ax.axhline(0, color="0.75", lw=0.8)
    _draw_hf_greedy(ax, df[df.model == model])
    ax.set_title(f"{key} target ← {arch_key(draft)} draft (architecture only, random weights)\nc = {c_text}; "
                 f"{int(sub.n.max())} examples per point\nk swept: {style.swept_ks(df[df.model == model])}",
                 fontsize=9)
    ax.set_xlabel("draft acceptance rate α (controlled)")
    ax.set_ylabel("time reduction vs greedy (%, positive = faster)")
    ax.grid(alpha=0.3)
    span = (max(alphas) - min(alphas)) or 0.2
    ax.set_xlim(min(alphas) - 0.06 * span, max(alphas) + 0.16 * span)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    return notes


def plot_alpha_sweep(runs, out_dir="paper_figures", *, name: str = "paper_scale_alpha",
                     floor_pct: float = -60.0) -> list[Path]:
    """Time reduction vs greedy against the draft's acceptance rate α, each method at its best k for each α
    (annotated), with its bootstrap 95 % CI over examples; one panel per target, each naming the ks it swept.
    Dotted: the ideal bound (Leviathan et al.) at the run's measured cost ratio c and the best swept k, the band
    spanning c's 95 % CI; dashed: the paper's reported reduction for that target (its checkpoints). Saved as
    `name`.pdf/.png. Every method drawn is exact (speculative), so each time reduction compares equal outputs."""
    df, envs = load_alpha_sweep(runs)
    best = best_k_per_alpha(df)
    models = sorted(dict.fromkeys(best.model), key=model_size)
    fig, axes = style.figure(1, len(models), figsize=(7.0 * len(models), 6.4))
    notes = [_alpha_panel(ax, df, best, model, floor_pct) for ax, model in zip(axes[0], models)]
    for ax, these in zip(axes[0], notes):
        _write_k_labels(ax, these)
    style.caption(fig, "Architecture-true T5 shapes with seeded random weights (not the checkpoints); draft "
                  "acceptance α set by a controlled draft; each method at its best k per α (largest speed-up;\n"
                  "error bars: paired bootstrap 95 % CI over examples); random prompts, fixed-length output (EOS "
                  "ignored); c = draft/target decoder-step time, measured in the same run.\n"
                  + (environment_caption(envs) if envs else ""))
    return style.save_and_close(fig, out_dir, name)


def crossing_alpha(runs, method: str, level_pct: float, model: str | None = None) -> float | None:
    """The α at which `method`'s best-k time reduction first reaches `level_pct` (linear interpolation between
    swept α values); None when it never does in the swept range."""
    df, _ = load_alpha_sweep(runs)
    best = best_k_per_alpha(df)
    sub = best[best.model == model] if model is not None else best
    sub = sub[sub.method == method]
    pts = sorted(zip(sub.alpha_requested, sub.time_reduction_pct))
    if pts and pts[0][1] >= level_pct:
        return float(pts[0][0])
    for (a0, y0), (a1, y1) in zip(pts, pts[1:]):
        if y0 < level_pct <= y1:
            return float(a0 + (a1 - a0) * (level_pct - y0) / (y1 - y0))
    return None
