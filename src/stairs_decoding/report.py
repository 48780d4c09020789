"""Runs → tidy DataFrame → tables and figures.

Each plotting function is self-contained (reads run directories or a DataFrame, writes PDF + PNG); shared bits
(caption text, saving) are small helpers at the top.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .errors import NoRunsError
from .methods import METHODS

PAPER_REDUCTION_PCT = {"t5-large": 17.24, "t5-3b": 9.58}      # the paper's abstract (T5-small assistant)
# Speculative methods and their figure style: from the method registry.
METHOD_STYLE = {m.name: {"color": m.color, "marker": m.marker, "label": m.label} for m in METHODS.values()
                if m.speculative}
SPEC_METHODS = tuple(METHOD_STYLE)
# The target alone: our greedy (the reference of every speed-up) and transformers' own greedy loop.
BASELINES = tuple(m.name for m in METHODS.values() if not m.speculative and m.uses_target)
# The draft alone: the quality/speed floor.
FLOORS = tuple(m.name for m in METHODS.values() if not m.uses_target)


# -- shared helpers ---------------------------------------------------------------------------------------------
def read_env(run_dir) -> dict:
    p = Path(run_dir) / "env.json"
    return json.loads(p.read_text()) if p.exists() else {}


def environment_caption(envs: list[dict]) -> str:
    """'device; torch X, transformers Y; dtype; date' from the env.json of the runs (distinct values joined)."""
    def distinct(key):
        vals = []
        for e in envs:
            v = e.get(key)
            if v is not None and str(v) not in vals:
                vals.append(str(v))
        return "/".join(vals) if vals else "?"

    device = distinct("device_name") if any(e.get("device_name") for e in envs) else distinct("device")
    threads = distinct("torch_threads")
    dates = sorted({str(e.get("date", ""))[:10] for e in envs if e.get("date")})
    return (f"{device} ({distinct('device')}, {threads} threads), {distinct('dtype')}; torch {distinct('torch')}, "
            f"transformers {distinct('transformers')}; {', '.join(dates) or '?'}")


PNG_DPI = 150     # the notebooks lower it, so that their committed outputs stay small


def save_figure(fig, out_dir, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", dpi=PNG_DPI)
    return paths


def _arch_key(model: str) -> str:
    m = str(model).lower().replace("_", "-")
    return m[:-5] if m.endswith("-arch") else m


def _swept_ks(df) -> str:
    per = {m: tuple(sorted(int(k) for k in df[df.method == m].k.unique())) for m in METHOD_STYLE
           if (df.method == m).any()}
    common = max(set(per.values()), key=lambda v: sum(1 for x in per.values() if x == v)) if per else ()
    text = ", ".join(map(str, common))
    others = [f"{m}: {', '.join(map(str, v))}" for m, v in per.items() if v != common]
    return text + (f"; {'; '.join(others)}" if others else "")


def _model_size(model: str) -> float:
    from .paper_scale import T5_ARCHITECTURES

    shape = T5_ARCHITECTURES.get(_arch_key(model))
    return float(shape.params or 0) if shape is not None else math.inf


def _err(df, point: str, low: str, high: str):
    """Asymmetric error bars (2 × n) for `point` from its interval columns; 0 where an interval is missing (n < 2,
    or a summary written before the intervals existed)."""
    import numpy as np

    y = np.asarray(df[point], dtype=float)
    lo = np.asarray(df[low], dtype=float) if low in df.columns else np.full_like(y, np.nan)
    hi = np.asarray(df[high], dtype=float) if high in df.columns else np.full_like(y, np.nan)
    return np.vstack([np.nan_to_num(np.clip(y - lo, 0, None)), np.nan_to_num(np.clip(hi - y, 0, None))])


# -- paper-scale α sweep ----------------------------------------------------------------------------------------
def load_alpha_sweep(runs) -> tuple:
    """A summary DataFrame (the summary.csv rows of controlled-draft runs, e.g. experiment=paper_scale_t5_large) and
    the runs' env.json dicts.
    `runs`: a DataFrame, one run directory, or a list of run directories."""
    import pandas as pd

    if isinstance(runs, pd.DataFrame):
        return runs.copy(), []
    if isinstance(runs, (str, Path)):
        runs = [runs]
    frames, envs = [], []
    for d in runs:
        frames.append(pd.read_csv(Path(d) / "summary.csv"))
        envs.append(read_env(d))
    return pd.concat(frames, ignore_index=True), envs


def best_k_per_alpha(df):
    """For each (target model, method, α): the row of the k with the largest speed-up (summary.best_k)."""
    from .summary import best_k as _best

    spec = df[(df.method != "greedy") & df.alpha_requested.notna()]
    return _best(spec).sort_values(["model", "method", "alpha_requested"])


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
    from .metrics import speedup_bound
    from .summary import time_reduction

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


def _draw_alpha_methods(ax, sub, alphas: list[float], low: float) -> None:
    """Each speculative method's best-k points with their CI bars and k labels; a method below `low` + 4 is drawn
    at the bottom edge with its value written in; a method swept at fewer α than the panel gets no line."""
    for method, style in METHOD_STYLE.items():
        m = sub[sub.method == method]
        if m.empty:
            continue
        ys = [max(y, low + 4.0) for y in m.time_reduction_pct]
        clipped = any(y < low + 4.0 for y in m.time_reduction_pct)
        gaps = len(m) < len(alphas)
        ax.plot(m.alpha_requested, ys, marker="v" if clipped else style["marker"], color=style["color"],
                label=style["label"] + (": off scale below, value written in" if clipped else ""),
                lw=1.8, ms=7, ls="none" if clipped or gaps else "-")
        if not clipped:
            ax.errorbar(m.alpha_requested, m.time_reduction_pct,
                        yerr=_err(m, "time_reduction_pct", "time_reduction_ci95_low", "time_reduction_ci95_high"),
                        fmt="none", ecolor=style["color"], elinewidth=1.1, capsize=3)
        for a, y, yd, k in zip(m.alpha_requested, m.time_reduction_pct, ys, m.k):
            text = f"{y:.0f} % (k={int(k)})" if y < low + 4.0 else f"k={int(k)}"
            ax.annotate(text, (a, yd), textcoords="offset points", xytext=(6, -11 if method == "hf_assisted" else 5),
                        fontsize=7, color=style["color"])


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


def plot_alpha_sweep(runs, out_dir="paper_figures", *, name: str = "paper_scale_alpha",
                     floor_pct: float = -60.0) -> list[Path]:
    """Time reduction vs greedy against the draft's acceptance rate α, each method at its best k for each α
    (annotated), with its bootstrap 95 % CI over examples; one panel per target, each naming the ks it swept.
    Dotted: the ideal bound (Leviathan et al.) at the run's measured cost ratio c and the best swept k, the band
    spanning c's 95 % CI; dashed: the paper's reported reduction for that target. Saved as `name`.pdf/.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df, envs = load_alpha_sweep(runs)
    best = best_k_per_alpha(df)
    models = sorted(dict.fromkeys(best.model), key=_model_size)
    fig, axes = plt.subplots(1, len(models), figsize=(7.0 * len(models), 5.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub, key = best[best.model == model], _arch_key(model)
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
        _draw_alpha_methods(ax, sub, alphas, low)
        ax.set_ylim(low, max(tops) + 12.0)
        if key in PAPER_REDUCTION_PCT:
            y = PAPER_REDUCTION_PCT[key]
            ax.axhline(y, ls="--", color="k", lw=1.1, label=f"paper, {key}: {y} %")
        ax.axhline(0, color="0.75", lw=0.8)
        _draw_hf_greedy(ax, df[df.model == model])
        ax.set_title(f"{key} target ← {_arch_key(draft)} draft (architecture only)\nc = {c_text}; "
                     f"{int(sub.n.max())} examples per point\nk swept: {_swept_ks(df[df.model == model])}",
                     fontsize=9)
        ax.set_xlabel("draft acceptance rate α (controlled)")
        ax.set_ylabel("time reduction vs greedy (%, positive = faster)")
        ax.grid(alpha=0.3)
        span = (max(alphas) - min(alphas)) or 0.2
        ax.set_xlim(min(alphas) - 0.06 * span, max(alphas) + 0.12 * span)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    caption = ("Architecture-true T5 shapes with seeded random weights (not the checkpoints); draft acceptance α "
               "set by a controlled draft; each method at its best k per α (largest speed-up; error bars: paired "
               "bootstrap 95 % CI over examples); random prompts, fixed-length output (EOS ignored); "
               "c = draft/target decoder-step time, measured in the same run.\n"
               + (environment_caption(envs) if envs else ""))
    fig.tight_layout(w_pad=3.0)
    fig.text(0.01, -0.1, caption, ha="left", va="top", fontsize=7.5, wrap=True)
    paths = save_figure(fig, out_dir, name)
    plt.close(fig)
    return paths


def alpha_sweep_table(runs):
    """Time reduction (%, positive = faster) at the best k, rows α, columns method, with its 95 % CI in square
    brackets and the k in round ones (strings)."""
    df, _ = load_alpha_sweep(runs)
    best = best_k_per_alpha(df)
    out = {}
    for model, sub in best.groupby("model"):
        red = sub.pivot(index="alpha_requested", columns="method", values="time_reduction_pct")
        ks = sub.pivot(index="alpha_requested", columns="method", values="k")
        cell = red.round(1).astype(str) + " (k=" + ks.astype("Int64").astype(str) + ")"
        if "time_reduction_ci95_low" in sub.columns and sub.time_reduction_ci95_low.notna().any():
            lo = sub.pivot(index="alpha_requested", columns="method", values="time_reduction_ci95_low")
            hi = sub.pivot(index="alpha_requested", columns="method", values="time_reduction_ci95_high")
            with_ci = (red.round(1).astype(str) + " [" + lo.round(1).astype(str) + ", " + hi.round(1).astype(str)
                       + "] (k=" + ks.astype("Int64").astype(str) + ")")
            cell = with_ci.where(lo.notna(), cell)
        out[model] = cell.where(red.notna(), "-")
    return out


def crossing_alpha(runs, method: str, level_pct: float, model: str | None = None) -> float | None:
    """The α at which `method`'s best-k time reduction first reaches `level_pct` (linear interpolation between
    swept α values); None when it never does in the swept range."""
    df, _ = load_alpha_sweep(runs)
    best = best_k_per_alpha(df)
    sub = best[best.method == method]
    if model is not None:
        sub = sub[sub.model == model]
    pts = sorted(zip(sub.alpha_requested, sub.time_reduction_pct))
    if pts and pts[0][1] >= level_pct:
        return float(pts[0][0])
    for (a0, y0), (a1, y1) in zip(pts, pts[1:]):
        if y0 < level_pct <= y1:
            return float(a0 + (a1 - a0) * (level_pct - y0) / (y1 - y0))
    return None


# -- experiment runs (scripts/run.py): tidy frames ---------------------------------------------------------------


def run_dirs(runs) -> list[Path]:
    if isinstance(runs, (str, Path)):
        runs = [runs]
    dirs = []
    for r in runs:
        r = Path(r)
        if (r / "results.jsonl").exists() or (r / "summary.csv").exists():
            dirs.append(r)
        else:                                   # a folder of runs (multirun, results/): every run below it
            dirs.extend(sorted(p.parent for p in r.rglob("summary.csv")))
    if not dirs:
        raise NoRunsError(f"no run directories (with summary.csv or results.jsonl) under {list(map(str, runs))}")
    return dirs


def is_alpha_sweep(run_dir) -> bool:
    """A run with a controlled draft (its summary rows have a requested α), e.g. experiment=paper_scale_t5_large."""
    import pandas as pd

    p = Path(run_dir) / "summary.csv"
    if not p.exists():
        return False
    df = pd.read_csv(p)
    return "alpha_requested" in df.columns and bool(df["alpha_requested"].notna().any())


def pair_label(model: str, draft: str) -> str:
    return f"{model} ← {draft}"


def run_kind(run_dir) -> str:
    """"sampling" (cells at a temperature > 0), "batched" (batch size > 1), or "plain": each kind has its figures."""
    return "sampling" if is_sampling_sweep(run_dir) else "batched" if is_batch_sweep(run_dir) else "plain"


def _load_runs(runs, filename: str, read, *, batched: bool = False, sampling: bool = False):
    """`read(path)` of `filename` in every scripts/run.py run, tagged with its pair, run dir and device: greedy runs
    at batch size 1 only, or (`batched`) only greedy runs with batches (task.batch_size > 1), or (`sampling`) only
    runs that sample (decoding.do_sample); α sweeps never."""
    import pandas as pd

    want = "sampling" if sampling else "batched" if batched else "plain"
    frames = []
    for d in run_dirs(runs):
        if is_alpha_sweep(d) or not (d / filename).exists() or run_kind(d) != want:
            continue
        df = read(d / filename)
        df["run_dir"] = str(d)
        df["device_name"] = read_env(d).get("device_name")
        df["pair"] = [pair_label(m, dr) for m, dr in zip(df["model"], df["draft"])]
        frames.append(df)
    if not frames:
        kind = {"sampling": "that samples", "batched": "with batches",
                "plain": "without a controlled draft, batches or sampling"}[want]
        raise NoRunsError(f"no {filename} of a run {kind} in the given runs")
    return pd.concat(frames, ignore_index=True)


def load_results(runs):
    """One tidy row per example × cell × model pair: every run's results.jsonl read as `records.Record`s (records
    of an older schema get the fields they lack at their defaults)."""
    import pandas as pd

    from .run_files import read_records

    return _load_runs(runs, "results.jsonl", lambda p: pd.DataFrame([r.to_dict() for r in read_records(p)]))


def load_summaries(runs, *, batched: bool = False, sampling: bool = False):
    """Every run's summary.csv (one row per method × k × model pair), runs with a controlled draft left out; runs
    with batches (task.batch_size > 1) only with `batched` (then only they), runs that sample only with `sampling`
    (then only they)."""
    import pandas as pd

    return _load_runs(runs, "summary.csv", pd.read_csv, batched=batched, sampling=sampling)


def best_k(summary):
    """Per pair and speculative method, the k with the largest speed-up (summary.best_k: the one definition the
    table, every figure and the README use)."""
    from .summary import best_k as _best

    return _best(summary[summary["method"].isin(SPEC_METHODS)])


def _is_paper_pair(model: str, draft: str) -> str | None:
    m, d = _arch_key(model), _arch_key(draft)
    if str(model).endswith("_arch"):
        return None                                    # random weights: not the paper's setting
    if d in ("t5-small",) and m in ("t5-large", "t5-3b"):
        return m
    return None


def _ci(r, low, high, fmt="{:.2f}") -> str:
    """A row's interval as "[lo, hi]" ("" where it is unknown), for the tables."""
    lo, hi = r.get(low), r.get(high)
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return ""
    return f"[{fmt.format(lo)}, {fmt.format(hi)}]"


def reduction_table(summary):
    """Per (pair, method, k): mean time per example, speed-up vs greedy (total greedy time over total method time on
    the same examples) with its bootstrap 95 % CI, the same as a time reduction (%, positive = faster), α and the
    ideal bound; the paper's value beside ours where the pair matches (the paper reports one number per pair, for
    its stairs method). transformers' own greedy loop (hf_greedy) is a row of its own."""
    import pandas as pd

    rows = []
    for _, r in summary[summary["method"] != "greedy"].iterrows():
        paper = _is_paper_pair(r["model"], r["draft"])
        rows.append({
            "pair": r["pair"], "method": r["method"],
            "k": int(r["k"]) if r["method"] in SPEC_METHODS else "–",
            "mean s/ex": r["mean_s"], "speed-up": r["speedup"],
            "speed-up 95% CI": _ci(r, "speedup_ci95_low", "speedup_ci95_high"),
            "time reduction %": r["time_reduction_pct"],
            "time reduction 95% CI": _ci(r, "time_reduction_ci95_low", "time_reduction_ci95_high", "{:.1f}"),
            "α": r.get("alpha"), "bound": r.get("bound_speedup"),
            "paper %": PAPER_REDUCTION_PCT[paper] if paper and r["method"] == "stairs" else None,
        })
    return pd.DataFrame(rows)


def write_table(table, out_dir, name: str = "time_reduction") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fmt = table.copy()

    def num(digits):
        return lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    fmt["mean s/ex"] = fmt["mean s/ex"].map(num(4))
    for col in ("time reduction %", "paper %"):
        fmt[col] = fmt[col].map(num(2))
    for col in ("speed-up", "α", "bound"):
        fmt[col] = fmt[col].map(num(2))
    md, tex = out / f"{name}.md", out / f"{name}.tex"
    md.write_text(fmt.to_markdown(index=False) + "\n", encoding="utf-8")
    tex.write_text(fmt.to_latex(index=False).replace("α", r"$\alpha$").replace("←", r"$\leftarrow$").replace("%", r"\%"),
                   encoding="utf-8")
    return [md, tex]


def runs_caption(summary) -> str:
    """Pairs, task, device, versions and date of the runs behind a figure; flags the tiny CPU pair."""
    envs = [read_env(d) for d in summary["run_dir"].unique()]
    pairs = ", ".join(summary["pair"].unique())
    tasks = ", ".join(str(t) for t in summary["task"].dropna().unique())
    text = f"pair: {pairs}; task: {tasks}"
    options = summary["options"].dropna() if "options" in summary else []
    forwards = sorted({f for o in options for f in re.findall(r"draft_forward=(\w+)", str(o))})
    if forwards:        # how the draft-model methods ran their draft (methods/_lean.py)
        text += f"; draft steps: {'/'.join(forwards)}"
    text += f"\n{environment_caption(envs)}"
    if any(str(m).startswith("tiny") for m in summary["model"].unique()):
        text += "\nshipped tiny CPU pair: not the paper's T5 result"
    return text


def _panels(n: int, width: float = 5.2, height: float = 3.8):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def _caption(fig, text: str, y: float = -0.02) -> None:
    fig.text(0.01, y, text, ha="left", va="top", fontsize=7.5, color="#444444")


def _legend_below(ax, ncol: int = 3) -> None:
    """The legend under the axes, where it cannot cover data."""
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False)


def plot_time_vs_k(summary, out_dir, name: str = "time_vs_k") -> list[Path]:
    """Mean time per example vs the assistant batch size k, per method, shaded with the 95 % CI of the mean; greedy
    (and transformers' greedy, the draft alone) as horizontal lines (the paper's "t5-large-batch"/"t5-3b-batch"
    analogue). One panel per pair."""
    pairs = list(summary["pair"].unique())
    fig, axes = _panels(len(pairs), height=4.4)
    for ax, pair in zip(axes, pairs):
        s = summary[summary["pair"] == pair]
        for method, style in (("greedy", dict(color="black", lw=1.5, ls="--")),
                              ("hf_greedy", dict(color=METHODS["hf_greedy"].color, lw=1.0, ls="-.")),
                              ("draft_greedy", dict(color="grey", lw=1, ls=":"))):
            g = s[s["method"] == method]
            if not len(g):
                continue
            label = {"greedy": "greedy (target alone)", "draft_greedy": "draft alone"}.get(method,
                                                                                             METHODS[method].label)
            ax.axhline(float(g["mean_s"].iloc[0]), label=label, **style)
            if g["ci95_low"].notna().all():
                ax.axhspan(float(g["ci95_low"].iloc[0]), float(g["ci95_high"].iloc[0]), color=style["color"],
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
        _integer_ticks(ax)
        ax.set_ylabel("mean time per example (s)")
        ax.set_title(pair, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        _legend_below(ax)
    fig.suptitle("Time per example vs k (shaded: 95 % CI of the mean over examples)", fontsize=11)
    fig.tight_layout()
    _caption(fig, runs_caption(summary), y=-0.08)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


def plot_inference_bars(summary, out_dir, name: str = "inference_time") -> list[Path]:
    """Greedy, transformers' greedy, and every speculative method at its best k (largest speed-up): mean time per
    example with the 95 % CI of the mean, labelled with the time reduction vs greedy (positive = faster) and its
    bootstrap 95 % CI (the paper's "…-inf" analogue). One panel per pair."""
    pairs = list(summary["pair"].unique())
    best = best_k(summary)
    order = BASELINES + SPEC_METHODS
    fig, axes = _panels(len(pairs), width=1.0 + 0.95 * len(order), height=4.2)
    for ax, pair in zip(axes, pairs):
        s = summary[summary["pair"] == pair]
        bars = []
        for method in order:
            row = s[s["method"] == method] if method in BASELINES else \
                best[(best["pair"] == pair) & (best["method"] == method)]
            if len(row):
                bars.append((method, row.iloc[0]))
        x = list(range(len(bars)))
        heights = [float(r["mean_s"]) for _, r in bars]
        import pandas as pd

        frame = pd.DataFrame([r for _, r in bars])
        yerr = _err(frame, "mean_s", "ci95_low", "ci95_high")
        ax.bar(x, heights, color=[METHODS[m].color if m != "greedy" else "#444444" for m, _ in bars], width=0.65,
               yerr=yerr, capsize=3, ecolor="black", error_kw={"elinewidth": 0.9})
        for i, (method, r) in enumerate(bars):
            if method == "greedy":
                label = "baseline"
            else:
                label = f"{float(r['time_reduction_pct']):+.1f} %"
                lo, hi = r.get("time_reduction_ci95_low"), r.get("time_reduction_ci95_high")
                if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
                    label += f"\n[{float(lo):+.0f}, {float(hi):+.0f}]"
                if method != "hf_greedy":
                    label += f"\nk={int(r['k'])}"
            ax.text(i, heights[i] + yerr[1][i], label, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(["greedy" if m == "greedy" else METHODS[m].label.replace(" (", "\n(").replace(", ", ",\n")
                            for m, _ in bars], fontsize=7, rotation=0)
        ax.set_ylabel("mean time per example (s)")
        ax.set_ylim(0, max(h + e for h, e in zip(heights, yerr[1])) * 1.35)
        ax.set_title(pair, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Inference time at each method's best k (labels: time reduction vs greedy, positive = faster, "
                 "with its 95 % CI)", fontsize=10)
    fig.tight_layout()
    _caption(fig, runs_caption(summary), y=-0.04)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


def plot_acceptance(results, summary, out_dir, name: str = "acceptance") -> list[Path]:
    """Left: histogram of draft tokens accepted per round (stairs_cached, a few k). Right: achieved speed-up vs
    the ideal bound (1−α^(k+1))/((1−α)(k·c+1)) for every speculative (method, k)."""
    import numpy as np

    fig, (ax1, ax2) = _panels(2)
    spec = results[results["method"] == "stairs_cached"]
    ks = sorted(int(k) for k in spec["k"].unique())
    show = sorted({ks[0], ks[len(ks) // 2], ks[-1]}) if ks else []
    for j, k in enumerate(show):
        acc = [a for row in spec[spec["k"] == k]["accepted"] for a in row]
        if not acc:
            continue
        bins = np.arange(-0.5, k + 1.5, 1.0)
        ax1.hist(acc, bins=bins, density=True, histtype="step", lw=2, label=f"k={k} (mean {np.mean(acc):.2f})")
    ax1.set_xlabel("draft tokens accepted in a round")
    ax1.set_ylabel("share of rounds")
    ax1.set_title("Accepted per round (stairs_cached)", fontsize=10)
    _legend_below(ax1, ncol=2)
    ax1.grid(alpha=0.3)

    s = summary[summary["method"].isin(SPEC_METHODS)].dropna(subset=["bound_speedup", "speedup"])
    hi = 1.0
    for method in SPEC_METHODS:
        m = s[s["method"] == method]
        if not len(m):
            continue
        st = METHOD_STYLE[method]
        ax2.errorbar(m["bound_speedup"], m["speedup"], yerr=_err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                     xerr=_err(m, "bound_speedup", "bound_ci95_low", "bound_ci95_high"), fmt=st["marker"],
                     color=st["color"], label=st["label"], elinewidth=0.8, capsize=2, ms=5)
        for _, r in m.iterrows():
            ax2.annotate(f"{int(r['k'])}", (r["bound_speedup"], r["speedup"]), fontsize=6.5,
                         xytext=(3, 2), textcoords="offset points", color=st["color"])
        hi = max([hi, float(m["bound_speedup"].max()), float(m["speedup"].max())]
                 + [float(m[c].max()) for c in ("speedup_ci95_high", "bound_ci95_high")
                    if c in m.columns and m[c].notna().any()])
    ax2.plot([0, hi * 1.05], [0, hi * 1.05], color="black", lw=1, ls="--", label="achieved = bound")
    ax2.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax2.set_xlim(0, hi * 1.05)
    ax2.set_ylim(0, hi * 1.05)
    ax2.set_xlabel("ideal speed-up bound from measured α and c")
    ax2.set_ylabel("achieved speed-up vs greedy")
    ax2.set_title("Achieved vs ideal (numbers: k; bars: 95 % CIs)", fontsize=10)
    _legend_below(ax2, ncol=2)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    _caption(fig, runs_caption(summary), y=-0.1)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_k_sweep(summary, out_dir, name: str = "k_sweep") -> list[Path]:
    """Step-size sweep per pair: speed-up vs k (solid) beside its ideal bound (dashed), acceptance α vs k, and
    mean accepted tokens per round vs k."""
    pairs = list(summary["pair"].unique())
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 3, figsize=(14, 3.6 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        s = summary[(summary["pair"] == pair) & summary["method"].isin(SPEC_METHODS)]
        for method in SPEC_METHODS:
            m = s[s["method"] == method].sort_values("k")
            if not len(m):
                continue
            st = METHOD_STYLE[method]
            row[0].errorbar(m["k"], m["speedup"], yerr=_err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                            marker=st["marker"], color=st["color"], label=st["label"], capsize=2, elinewidth=0.9)
            row[0].plot(m["k"], m["bound_speedup"], ls="--", color=st["color"], alpha=0.6)
            row[1].plot(m["k"], m["alpha"], marker=st["marker"], color=st["color"], label=st["label"])
            row[2].plot(m["k"], m["mean_accepted"], marker=st["marker"], color=st["color"], label=st["label"])
        row[0].axhline(1.0, color="black", lw=1, ls=":")
        for ax, ylabel in zip(row, ("speed-up vs greedy (bars: 95 % CI;\ndashed: ideal bound)", "acceptance α per token",
                                    "accepted draft tokens per round")):
            ax.set_xlabel("k (draft tokens per round)")
            _integer_ticks(ax)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        row[1].set_ylim(0, 1.02)
        row[0].set_title(pair, fontsize=10, loc="left")
        _legend_below(row[1], ncol=5)
    fig.suptitle("Step-size sweep", fontsize=11)
    fig.tight_layout()
    _caption(fig, runs_caption(summary), y=-0.1)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


def _any_above(run_dir, column: str, value: float) -> bool:
    """Whether a row of the run's summary.csv has `column` above `value` (a missing file, column or cell: no)."""
    import pandas as pd

    p = Path(run_dir) / "summary.csv"
    if not p.exists():
        return False
    df = pd.read_csv(p)
    return column in df.columns and bool((df[column].fillna(value) > value).any())


def is_batch_sweep(run_dir) -> bool:
    """A run with cells at batch size > 1 (task.batch_size, e.g. experiment=tiny_batch_cpu): it gets the
    throughput figure and table, not the batch-size-1 figures (its batch-1 cells would repeat a pair's run)."""
    return _any_above(run_dir, "batch_size", 1)


def batch_rows(summary):
    """Per pair and batch size: greedy, transformers' greedy and every speculative method at its best k (at that
    batch size), with throughput, time per example and speed-up (and their CIs)."""
    import pandas as pd

    s = summary.copy()
    s["batch_size"] = s["batch_size"].fillna(1).astype(int)
    base = s[s["method"].isin(BASELINES)]
    return pd.concat([base, best_k(s)], ignore_index=True).sort_values(["pair", "batch_size"], kind="stable")


def batch_table(summary):
    """The throughput-vs-batch-size table: one row per (pair, batch size, method at its best k)."""
    import pandas as pd

    rows = []
    for _, r in batch_rows(summary).iterrows():
        rows.append({"pair": r["pair"], "batch": int(r["batch_size"]), "method": r["method"],
                     "schedule": r.get("schedule") if r["method"] in SPEC_METHODS else "",
                     "k": int(r["k"]) if r["method"] in SPEC_METHODS else "–",
                     "tokens/s": f"{r['tokens_per_s']:.1f}",
                     "tokens/s 95% CI": _ci(r, "tokens_per_s_ci95_low", "tokens_per_s_ci95_high", "{:.1f}"),
                     "mean s/ex": f"{r['mean_s']:.4f}",
                     "speed-up": "" if r["method"] == "greedy" else f"{r['speedup']:.2f}",
                     "speed-up 95% CI": "" if r["method"] == "greedy" else
                     _ci(r, "speedup_ci95_low", "speedup_ci95_high", "{:.2f}"),
                     "α": "" if pd.isna(r.get("alpha")) else f"{r['alpha']:.2f}",
                     "per-row acceptance": "" if pd.isna(r.get("ragged")) else f"{r['ragged']:.0%}",
                     "fell back to greedy": "" if pd.isna(r.get("fallback_share")) else f"{r['fallback_share']:.0%}"})
    return pd.DataFrame(rows)


def plot_throughput_vs_batch(summary, out_dir, name: str = "throughput_vs_batch") -> list[Path]:
    """Left: throughput (new tokens per second) vs batch size for greedy, transformers' greedy and every speculative
    method at its best k at each size (each schedule a line of its own, dashed when not constant), with bootstrap
    95 % CIs over batches. Right: the same as a speed-up vs greedy at that batch size (1 = greedy)."""
    rows = batch_rows(summary)
    pairs = list(rows["pair"].unique())
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 2, figsize=(11, 3.9 * len(pairs)), squeeze=False)
    for (left, right), pair in zip(axes, pairs):
        p = rows[rows["pair"] == pair]
        schedules = list(dict.fromkeys(p["schedule"].fillna("constant")))
        for method, schedule in [(m, sc) for m in BASELINES + SPEC_METHODS for sc in schedules]:
            m = p[(p["method"] == method) & (p["schedule"].fillna("constant") == schedule)].sort_values("batch_size")
            if not len(m):
                continue
            st = {"color": METHODS[method].color, "marker": METHODS[method].marker, "label": METHODS[method].label}
            color = "#444444" if method == "greedy" else st["color"]
            label = st["label"] + ("" if schedule == "constant" else f", schedule={schedule}") + \
                ("" if method in BASELINES else " (best k: " + ", ".join(str(int(k)) for k in m["k"]) + ")")
            if schedule != "constant":
                st = {**st, "marker": "*"}
            ls = "--" if schedule != "constant" else "-"
            left.errorbar(m["batch_size"], m["tokens_per_s"],
                          yerr=_err(m, "tokens_per_s", "tokens_per_s_ci95_low", "tokens_per_s_ci95_high"),
                          marker=st["marker"], color=color, label=label, capsize=2, elinewidth=0.9, ls=ls)
            if method != "greedy":
                right.errorbar(m["batch_size"], m["speedup"],
                               yerr=_err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"),
                               marker=st["marker"], color=color, label=label, capsize=2, elinewidth=0.9, ls=ls)
        right.axhline(1.0, color="black", lw=1, ls=":")
        for ax, ylabel in ((left, "throughput (new tokens / s)\nbars: 95 % CI over batches"),
                           (right, "speed-up vs greedy, same batch size\nbars: 95 % CI")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(p["batch_size"].unique()))
            ax.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
            ax.set_xlabel("batch size (examples per generate() call)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        left.set_title(pair, fontsize=10, loc="left")
        _legend_below(left, ncol=2)
    fig.suptitle("Throughput vs batch size (each method at its best k at that size)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    _caption(fig, runs_caption(summary), y=-0.06)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


# -- sampling (decoding.do_sample) ---------------------------------------------------------------------------------
def is_sampling_sweep(run_dir) -> bool:
    """A run with cells that sample (temperature > 0, e.g. experiment=tiny_sampling_cpu): it gets the sampling figure
    and table, not the greedy ones."""
    return _any_above(run_dir, "temperature", 0)


def sampling_rows(summary):
    """Per pair and temperature (0 = greedy): the target alone, transformers' greedy, every speculative method at
    its best k at that temperature, and the draft alone."""
    import pandas as pd

    s = summary.copy()
    s["temperature"] = s["temperature"].fillna(0.0)
    keep = s[s["method"].isin(BASELINES + FLOORS)]
    rows = pd.concat([keep, best_k(s[s["method"].isin(SPEC_METHODS)])], ignore_index=True)
    return rows.sort_values(["pair", "temperature"], kind="stable")


def sampling_table(summary):
    """One row per (pair, temperature, method at its best k): time per example, speed-up vs the target alone at that
    temperature with its CI, α with its CI, and chrF/BLEU against the references."""
    import pandas as pd

    rows = []
    for _, r in sampling_rows(summary).iterrows():
        spec = r["method"] in SPEC_METHODS
        rows.append({"pair": r["pair"], "temperature": "greedy" if not r["temperature"] else f"{r['temperature']:g}",
                     "method": r["method"], "k": int(r["k"]) if spec else "–",
                     "mean s/ex": f"{r['mean_s']:.4f}",
                     "speed-up vs target alone": "" if r["method"] == "greedy" else
                     f"{r['speedup']:.2f} " + _ci(r, "speedup_ci95_low", "speedup_ci95_high", "{:.2f}"),
                     "α": "" if not spec or pd.isna(r.get("alpha")) else
                     f"{r['alpha']:.3f} " + _ci(r, "alpha_ci95_low", "alpha_ci95_high", "{:.3f}"),
                     "drafts kept / round": "" if not spec else f"{r['mean_accepted']:.2f}",
                     "chrF vs ref": "" if pd.isna(r.get("chrf_vs_ref")) else f"{r['chrf_vs_ref']:.1f}",
                     "BLEU vs ref": "" if pd.isna(r.get("bleu_vs_ref")) else f"{r['bleu_vs_ref']:.1f}"})
    return pd.DataFrame(rows)


def plot_sampling(summary, out_dir, name: str = "sampling") -> list[Path]:
    """Per pair, against temperature (0 = greedy): the speed-up of every speculative method at its best k over the
    target alone sampling at the same temperature, its acceptance α, and chrF against the references (the target
    alone, the speculative methods and the draft alone); bars: bootstrap 95 % CIs."""
    rows = sampling_rows(summary)
    pairs = list(rows["pair"].unique())
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 3, figsize=(14, 3.9 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        p = rows[rows["pair"] == pair]
        for method in ("greedy",) + SPEC_METHODS + FLOORS:
            m = p[p["method"] == method].sort_values("temperature")
            if not len(m):
                continue
            color, marker = ("#444444", "D") if method == "greedy" else (METHODS[method].color, METHODS[method].marker)
            label = ("target alone" if method == "greedy" else METHODS[method].label) + \
                (" (best k: " + ", ".join(str(int(k)) for k in m["k"]) + ")" if method in SPEC_METHODS else "")
            if method in SPEC_METHODS:
                row[0].errorbar(m["temperature"], m["speedup"], marker=marker, color=color, label=label, capsize=2,
                                yerr=_err(m, "speedup", "speedup_ci95_low", "speedup_ci95_high"), elinewidth=0.9)
                row[1].errorbar(m["temperature"], m["alpha"], marker=marker, color=color, label=label, capsize=2,
                                yerr=_err(m, "alpha", "alpha_ci95_low", "alpha_ci95_high"), elinewidth=0.9)
            row[2].plot(m["temperature"], m["chrf_vs_ref"], marker=marker, color=color, label=label)
        row[0].axhline(1.0, color="black", lw=1, ls=":")
        for ax, ylabel in zip(row, ("speed-up vs the target alone at the same\ntemperature (bars: 95 % CI)",
                                    "acceptance α per token (bars: 95 % CI)", "chrF vs references")):
            ax.set_xticks(sorted(p["temperature"].unique()))
            ax.set_xlabel("temperature (0 = greedy)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        row[1].set_ylim(0, 1.02)
        row[0].set_title(pair, fontsize=10, loc="left")
        row[0].legend(fontsize=7)
        row[2].legend(fontsize=7)
    fig.suptitle("Speculative sampling: speed-up, acceptance and quality vs temperature (each method at its best k)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    _caption(fig, runs_caption(summary), y=-0.08)
    paths = save_figure(fig, out_dir, name)
    _close(fig)
    return paths


def pull_wandb(project: str, out_dir) -> list[Path]:
    """Download the `results` artifact (results.jsonl, summary.csv, env.json, config) of every run of a W&B
    project into out_dir/<run id>/, for the notebooks; local files stay the source of truth."""
    import wandb

    dirs = []
    for run in wandb.Api().runs(project):
        for art in run.logged_artifacts():
            if art.type == "results":
                dirs.append(Path(art.download(root=str(Path(out_dir) / run.id))))
    if not dirs:
        raise NoRunsError(f"no 'results' artifacts in W&B project {project!r}")
    return dirs


def run_device(run_dir) -> str:
    """The device type a run measured on ("cpu", "cuda", ...), from its env.json."""
    return str(read_env(run_dir).get("device") or "cpu").split(":")[0]


def make_all(runs, out_dir) -> list[Path]:
    """Every figure and table of paper_figures/ from the given run directories (what scripts/make_figures.py
    and the notebooks call). Experiment runs give time_vs_k, inference_time, acceptance, k_sweep and the
    time-reduction table; runs with batches (task.batch_size > 1) give throughput_vs_batch and its table
    batch_throughput.md; runs that sample (decoding.do_sample) give sampling and its table sampling.md;
    paper-scale α sweeps give paper_scale_alpha. CPU runs write into `out_dir`; runs on
    another device (scripts/gpu_check.sh: results/*_gpu) into `out_dir`/<device>/, so that no figure mixes
    timings from two kinds of hardware."""
    dirs = run_dirs(runs)
    written = []
    for device in sorted({run_device(d) for d in dirs}, key=lambda d: (d != "cpu", d)):
        group = [d for d in dirs if run_device(d) == device]
        out = Path(out_dir) if device == "cpu" else Path(out_dir) / device
        plain = [d for d in group if not is_alpha_sweep(d) and run_kind(d) == "plain"]
        sweeps = [d for d in group if is_alpha_sweep(d)]
        for kind, plot, table, md_name in (("sampling", plot_sampling, sampling_table, "sampling.md"),
                                           ("batched", plot_throughput_vs_batch, batch_table, "batch_throughput.md")):
            these = [d for d in group if not is_alpha_sweep(d) and run_kind(d) == kind]
            if these:
                summary = load_summaries(these, batched=kind == "batched", sampling=kind == "sampling")
                written += plot(summary, out)
                out.mkdir(parents=True, exist_ok=True)
                md = out / md_name
                md.write_text(table(summary).to_markdown(index=False) + "\n", encoding="utf-8")
                written.append(md)
        if plain:
            summary = load_summaries(plain)
            results = load_results(plain)
            written += plot_time_vs_k(summary, out)
            written += plot_inference_bars(summary, out)
            written += plot_acceptance(results, summary, out)
            written += plot_k_sweep(summary, out)
            written += write_table(reduction_table(summary), out)
        if sweeps:
            written += plot_alpha_sweep(sweeps, out)
    return written
