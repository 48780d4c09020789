"""The one summary: records (records.Record) → one row per cell (method, k, requested α), the console table.

The one definition of a speed-up, used by every table, figure, notebook and the README: total seconds of greedy
over total seconds of the method on the same examples (an example with several greedy runs uses their mean), with a
95 % percentile-bootstrap interval over examples (`speedup_ci95_low/high`; examples resampled with replacement,
paired, a fixed seed). Time reduction is the same number as a percentage, 100·(1 − 1/speed-up): positive = less
time than greedy. The best k of a method is the k with the largest speed-up (`best_k`). α is pooled per cell
(metrics.acceptance_rate) with its bootstrap interval over the same resamples; the bound is Leviathan et al.'s at
the run's measured cost ratio c, its interval spans the α interval and c's own (`bound_ci95_low/high`).
`above_bound` marks a cell whose whole speed-up interval lies above the bound's: that cannot be real, and a
check reports it. Every runner's summary.csv comes from `summary_rows`.
"""
from __future__ import annotations

import math
import statistics

from . import metrics, timing
from ._bootstrap import paired_ratio_ci
from .methods import METHODS
from .records import Record


def _greedy_reference(records: list[Record]) -> dict:
    """Per (example, batch size, temperature): the mean of its greedy (target-alone) runs' seconds."""
    runs: dict[tuple, list[float]] = {}
    for r in records:
        if r.method == "greedy":
            runs.setdefault(r.ref, []).append(r.seconds)
    return {ex: statistics.fmean(v) for ex, v in runs.items()}


def _units(recs: list[Record], greedy_s: dict, spec: bool) -> dict:
    """The bootstrap's units: one per generate() call (an example at batch size 1, a whole batch otherwise — its
    rows share one time), with greedy's and the method's seconds, tokens, accepted drafts and rejections summed."""
    units: dict[str, list[float]] = {}
    for r in recs:
        if r.ref not in greedy_s:
            continue
        u = units.setdefault(r.batch_id or r.example_id, [0.0, 0.0, 0.0, 0.0, 0.0])
        u[0] += greedy_s[r.ref]
        u[1] += r.seconds
        u[2] += r.new_tokens
        u[3] += sum(r.accepted) if spec else 0
        u[4] += r.rejections if spec else 0
    return dict(zip(("greedy", "method", "tokens", "accepted", "rejections"), map(list, zip(*units.values())))) \
        if units else {}


def _quality(recs: list[Record], greedy_out: dict) -> dict:
    """BLEU/chrF against the references; against greedy's output and its exact-match rate only for greedy cells (a
    sample is not meant to equal another sample)."""
    hyps = [r.output for r in recs if r.output is not None]
    refs = [r.reference or "" for r in recs if r.output is not None]
    sampled = bool(recs[0].temperature)
    paired = [r for r in recs if r.output is not None and greedy_out.get(r.example_id) is not None and not sampled]
    return {
        "bleu_vs_greedy": (metrics.bleu([r.output for r in paired], [greedy_out[r.example_id] for r in paired])
                           if paired else math.nan),
        "bleu_vs_ref": metrics.bleu(hyps, refs) if hyps and any(refs) else math.nan,
        "chrf_vs_ref": metrics.chrf(hyps, refs) if hyps and any(refs) else math.nan,
        "exact_match_rate": math.nan if sampled else sum(1 for r in recs if r.matches_greedy) / len(recs),
        "mismatches": sum(1 for r in recs if r.matches_greedy is False),
    }


def time_reduction(speedup: float) -> float:
    """Time reduction in % (positive = less time than greedy) from a speed-up (greedy time / method time)."""
    return 100.0 * (1.0 - 1.0 / speedup) if speedup and not math.isnan(speedup) else math.nan


def _verify_bound(method: str, k: int, recs: list[Record], alpha: float, c: float, verify: dict | None) -> dict:
    """The bound with the measured cost of verification, (1 − α^(k+1)) / ((1 − α)(k·c + v(k+1))), for cells that
    verify one cached row of k+1 tokens at batch size 1 (where v was measured); NaN elsewhere."""
    m = METHODS.get(method)
    v = (verify or {}).get(k + 1, math.nan) if m is not None and m.verify_row and recs[0].batch_size == 1 \
        else math.nan
    return {"verify_cost_v": v, "bound_speedup_verify": metrics.speedup_bound(alpha, c, k, v)}


def _cell_row(method: str, k: int, alpha_req, recs: list[Record], greedy_s: dict, greedy_out: dict,
              c: float, c_ci: tuple, verify: dict | None = None) -> dict:
    spec = METHODS[method].speculative if method in METHODS else False
    drafted_by_model = method in METHODS and METHODS[method].needs_draft
    # The bound's cost ratio: the measured c, or 0 for proposals without a draft model (lookup: no draft time).
    c_b, c_ci_b = (c, c_ci) if drafted_by_model else (0.0, (0.0, 0.0))
    units = _units(recs, greedy_s, spec)
    t_m, t_g = sum(units.get("method", [])), sum(units.get("greedy", []))
    total = sum(r.seconds for r in recs)
    accepted = [a for r in recs for a in r.accepted]
    alpha = metrics.acceptance_rate(accepted, sum(r.rejections for r in recs)) if spec else math.nan
    bound = metrics.speedup_bound(alpha, c_b, k) if spec else (1.0 if method == "greedy" else math.nan)
    speedup = t_g / t_m if units and t_m > 0 else math.nan
    ci = paired_ratio_ci(units.get("greedy", []), units.get("method", []),
                         accepted=units.get("accepted") if spec else None,
                         rejections=units.get("rejections") if spec else None,
                         bound=(lambda a, cc: metrics.speedup_bound(a, cc, k)) if spec else None,
                         c=c_b, c_ci=c_ci_b)
    tok_ci = paired_ratio_ci(units.get("tokens", []), units.get("method", []))["ratio"]
    first = recs[0]
    raggeds = [r.ragged for r in recs if r.ragged is not None and spec]
    calls = {}                                             # one generate() call's target calls, once per call
    for r in recs:
        calls[r.batch_id or r.example_id] = r.target_calls
    drafted = [d for r in recs for d in r.drafted] if spec else []
    return {
        "method": method, "k": k, **timing.summarize([r.seconds for r in recs]),
        "tokens_per_s": sum(r.new_tokens for r in recs) / total if total > 0 else math.nan,
        "tokens_per_s_ci95_low": tok_ci[0], "tokens_per_s_ci95_high": tok_ci[1],
        "batch_size": first.batch_size, "schedule": first.schedule or "constant",
        "temperature": float(first.temperature or 0.0),
        "fallback_share": (sum(r.fallback_round is not None for r in recs) / len(recs)
                           if first.schedule == "auto" else math.nan),   # calls that fell back to greedy
        "ragged": (sum(raggeds) / len(raggeds)) if raggeds else math.nan,      # share of calls with per-row acceptance
        "time_reduction_pct": time_reduction(speedup),
        "speedup": speedup,
        "mean_accepted": statistics.fmean(accepted) if accepted else math.nan,
        "mean_drafted": statistics.fmean(drafted) if drafted else math.nan,     # proposed per round (schedules)
        "tokens_per_target_call": (sum(r.new_tokens for r in recs) / sum(calls.values())
                                   if sum(calls.values()) else math.nan),
        "options": ",".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                            for name, value in sorted((first.options or {}).items())) or None,
        "alpha": alpha,
        "cost_ratio_c": c if drafted_by_model else math.nan,     # the run's draft; lookup's bound uses 0
        "bound_speedup": bound,
        "achieved_over_bound": speedup / bound if bound and not math.isnan(bound) else math.nan,
        **(vb := _verify_bound(method, k, recs, alpha, c_b, verify)),
        "achieved_over_verify_bound": speedup / vb["bound_speedup_verify"]
        if not math.isnan(vb["bound_speedup_verify"]) else math.nan,
        **_quality(recs, greedy_out),
        "model": first.model, "draft": first.draft,          # the run's pair, on every row (greedy's too)
        "task": first.task, "device": first.device,
        "alpha_requested": alpha_req,
        "bound_speedup_requested_alpha": (metrics.speedup_bound(alpha_req, c_b, k) if spec and alpha_req is not None
                                          else math.nan),
        "target_s_per_ex": statistics.fmean(r.target_seconds for r in recs),
        "draft_s_per_ex": statistics.fmean(r.draft_seconds for r in recs),
        "overhead_s_per_ex": statistics.fmean(r.overhead_seconds for r in recs),
        "target_calls": statistics.fmean(r.target_calls for r in recs),
        "draft_calls": statistics.fmean(r.draft_calls for r in recs),
        "speedup_ci95_low": ci["ratio"][0], "speedup_ci95_high": ci["ratio"][1],
        "time_reduction_ci95_low": time_reduction(ci["ratio"][0]),
        "time_reduction_ci95_high": time_reduction(ci["ratio"][1]),
        "alpha_ci95_low": ci["alpha"][0], "alpha_ci95_high": ci["alpha"][1],
        "bound_ci95_low": ci["bound"][0], "bound_ci95_high": ci["bound"][1],
        "cost_ratio_ci95_low": c_ci[0] if drafted_by_model and spec else math.nan,
        "cost_ratio_ci95_high": c_ci[1] if drafted_by_model and spec else math.nan,
        "above_bound": bool(spec and ci["ratio"][0] > ci["bound"][1]),
    }


def summary_rows(records: list[Record], *, cost_ratio_c: float, cost_ratio_ci=None, lean=None,
                 verify: dict | None = None) -> list[dict]:
    """One row per (method, k, requested α, batch size, schedule, temperature) of `records`, in first-seen order
    (each against greedy — the target alone — at its batch size and temperature; NaN where a
    value does not apply). At batch size > 1 the bootstrap resamples whole batches (one generate() call, one time).
    `cost_ratio_ci`: c's 95 % interval (timing.measure_cost_ratio), NaN when not given. `lean`: (c, its interval)
    with the draft's lean step, for the cells that ran it (options draft_forward=lean); the others use c.
    `verify`: {m: v(m)}, the measured cost of verifying m tokens in one-token steps (cost_ratio.json's verify_cost),
    for the verify-aware bound."""
    def interval(ci):
        return tuple(float(x) if x is not None else math.nan for x in (ci or (math.nan, math.nan)))

    costs = {"transformers": (cost_ratio_c, interval(cost_ratio_ci))}
    costs["lean"] = (float(lean[0]), interval(lean[1])) if lean is not None else (math.nan, interval(None))
    by_cell: dict[tuple, list[Record]] = {}
    for r in records:
        by_cell.setdefault((r.method, int(r.k), r.alpha_requested, r.batch_size, r.schedule or "constant",
                            float(r.temperature or 0.0)), []).append(r)
    greedy_s = _greedy_reference(records)
    greedy_out = {r.example_id: r.output for r in records if r.method == "greedy" and not r.temperature}
    return [_cell_row(m, k, a, recs, greedy_s, greedy_out,
                      *costs["lean" if (recs[0].options or {}).get("draft_forward") == "lean" else "transformers"],
                      verify=verify)
            for (m, k, a, *_), recs in by_cell.items()]


def verify_costs(cost: dict) -> dict | None:
    """{m: v(m)} from a run's cost_ratio.json (None when it has no verify-cost curve)."""
    curve = cost.get("verify_cost")
    return dict(zip((int(m) for m in curve["m"]), (float(v) for v in curve["v"]))) if curve else None


def best_k(rows):
    """Per (pair, method, requested α, batch size, schedule, temperature): the row of the k with the largest speed-up (the one definition; greedy
    and methods without k are kept as they are). `rows`: a DataFrame of summary rows; returns one."""
    df = rows.reset_index(drop=True)          # idxmax returns labels: they must name one row each
    df["_group_alpha"] = df["alpha_requested"].fillna(-1.0) if "alpha_requested" in df else -1.0
    if "batch_size" not in df:
        df["batch_size"] = 1
    df["batch_size"] = df["batch_size"].fillna(1)
    if "schedule" not in df:
        df["schedule"] = "constant"
    df["schedule"] = df["schedule"].fillna("constant")
    df["temperature"] = df["temperature"].fillna(0.0) if "temperature" in df else 0.0
    keys = ["model", "draft", "method", "_group_alpha", "batch_size", "schedule", "temperature"]
    uses_k = df["method"].map(lambda m: METHODS[m].uses_k if m in METHODS else True)
    spec = df[uses_k & df["speedup"].notna()]
    best = spec.loc[spec.groupby(keys, dropna=False)["speedup"].idxmax()] if len(spec) else spec
    return best.drop(columns="_group_alpha")


def clean(rows: list[dict]) -> list[dict]:
    """NaN → None (for CSV/W&B/JSON)."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


TABLE_COLUMNS = {"method": "method", "k": "k", "alpha_requested": "alpha req.", "n": "n", "mean_s": "mean s/ex",
                 "tokens_per_s": "tok/s", "time_reduction_pct": "time red. %", "speedup": "speed-up",
                 "speedup_ci": "speed-up 95% CI",
                 "mean_accepted": "acc/round", "tokens_per_target_call": "tok/call", "alpha": "alpha",
                 "cost_ratio_c": "c", "bound_speedup": "bound", "achieved_over_bound": "ach/bound",
                 "verify_cost_v": "v(k+1)", "achieved_over_verify_bound": "ach/bound(v)",
                 "bleu_vs_greedy": "BLEU vs greedy", "bleu_vs_ref": "BLEU vs ref", "exact_match_rate": "exact"}
_FORMATS = {"alpha req.": "{:.2f}", "mean s/ex": "{:.4f}", "tok/s": "{:.1f}", "time red. %": "{:+.1f}",
            "speed-up": "{:.3f}", "acc/round": "{:.2f}", "tok/call": "{:.2f}", "alpha": "{:.3f}", "c": "{:.3f}",
            "bound": "{:.3f}", "ach/bound": "{:.3f}", "v(k+1)": "{:.2f}", "ach/bound(v)": "{:.3f}", "BLEU vs greedy": "{:.1f}", "BLEU vs ref": "{:.1f}",
            "exact": "{:.2f}", "chrF vs ref": "{:.1f}"}
# What a method that is not exact (registry: Method.exact) does not get: a speed-up or time reduction would compare
# its output's time with that of a different output.
_SPEED_COLUMNS = ("time_reduction_pct", "speedup", "speedup_ci", "bound_speedup", "achieved_over_bound", "cost_ratio_c")
NOT_EXACT_HEADING = "not exact (output differs from the target's greedy output; no speed-up or time reduction):"
TABLE_NOTE = ("mean s/ex: mean seconds per example; speed-up = greedy's total seconds / the method's on the same "
              "examples (the ratio of their mean s/ex); time red. % = 100·(1 − 1/speed-up), positive = faster\n"
              "acc/round: draft tokens kept per round; tok/call: new tokens per target call; alpha: per-token "
              "acceptance; c: draft step / target step (the lean draft step's c where the cell ran it); bound: "
              "ideal speed-up at alpha and c; v(k+1): cost of verifying k+1 tokens in target steps; ach/bound, "
              "ach/bound(v): speed-up / bound without and with v; exact: share of outputs equal to greedy's; every "
              "column: docs/summary_columns.md")


def _interval(lo, hi) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)) or (isinstance(hi, float) and math.isnan(hi)):
        return "-"
    return f"{lo:.2f}–{hi:.2f}"


def _table_columns(rows: list[dict]) -> dict:
    """TABLE_COLUMNS with the columns these rows call for (α requested, batch, temperature, schedule)."""
    cols = dict(TABLE_COLUMNS)
    if all(r.get("alpha_requested") is None for r in rows):
        cols.pop("alpha_requested")
    if any((r.get("batch_size") or 1) != 1 for r in rows):
        cols = {"batch_size": "batch", **cols}
    if any(r.get("temperature") for r in rows):      # sampling: quality against the references, not greedy
        cols = {"temperature": "T", **cols, "chrf_vs_ref": "chrF vs ref"}
    if any((r.get("schedule") or "constant") != "constant" for r in rows):
        cols = {**{c: cols[c] for c in list(cols)[:list(cols).index("k") + 1]}, "schedule": "schedule",
                **{c: v for c, v in list(cols.items())[list(cols).index("k") + 1:]}}
    return cols


def _block(rows: list[dict], cols: dict) -> str:
    """Rows as a text table of `cols`, formatted, without a column that is empty ("-") in every row."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["speedup_ci"] = [_interval(r.get("speedup_ci95_low"), r.get("speedup_ci95_high")) for r in rows]
    for c in cols:
        if c not in df:
            df[c] = None
    df = df[list(cols)].rename(columns=cols)
    for col in df.columns:
        f = _FORMATS.get(col, "{}")
        df[col] = df[col].map(lambda v, f=f: "-" if v is None or (isinstance(v, float) and math.isnan(v))
                              else f.format(v))
    return df[[c for c in df.columns if not (df[c] == "-").all()]].to_string(index=False)


def format_table(rows: list[dict]) -> str:
    """The console table of a run: the exact methods with mean seconds per example and the speed-up and time
    reduction computed from the same totals; below them, apart and headed so, the methods that are not exact (the
    draft alone) without a speed-up or time reduction. Columns empty in every row are left out; the α column
    appears only when a controlled draft set one."""
    if not rows:
        return "(no results)"
    cols = _table_columns(rows)
    is_exact = [r["method"] not in METHODS or METHODS[r["method"]].exact for r in rows]
    exact = [r for r, e in zip(rows, is_exact) if e]
    other = [r for r, e in zip(rows, is_exact) if not e]
    parts = [_block(exact, cols)] if exact else []
    if other:
        parts.append(NOT_EXACT_HEADING + "\n" + _block(other, {c: v for c, v in cols.items()
                                                              if c not in _SPEED_COLUMNS}))
    return "\n\n".join(parts) + "\n" + TABLE_NOTE
