"""The report's tables: time reduction per (pair, method, k) — exact methods only, the methods that are not exact
in a block of their own — throughput per batch size, sampling per temperature, and the α sweep's best k; written as
markdown (+ LaTeX for the time reduction) without a column that is empty in every row."""
from __future__ import annotations

import math
from pathlib import Path

from .runs import (BASELINES, FLOORS, PAPER_REDUCTION_PCT, SPEC_METHODS, best_k, best_k_per_alpha, is_exact,
                   load_alpha_sweep, paper_pair)

KIND = "plain"            # make() below: the time-reduction table of plain runs (see report.FIGURES)
PAPER_COLUMN = "paper's stairs %"
NOT_EXACT_HEADING = ("Not exact — the output differs from the target's greedy output, so it has no time reduction "
                     "beside the exact methods':")


def _ci(r, low, high, fmt="{:.2f}") -> str:
    """A row's interval as "[lo, hi]" ("" where it is unknown), for the tables."""
    lo, hi = r.get(low), r.get(high)
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return ""
    return f"[{fmt.format(lo)}, {fmt.format(hi)}]"


def _blank(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def drop_empty_columns(table):
    """The table without the columns that are empty (None, NaN or "") in every row."""
    return table[[c for c in table.columns if not table[c].map(_blank).all()]]


def reduction_table(summary):
    """Per (pair, method, k) of the exact methods: mean time per example, speed-up vs greedy (total greedy time over
    total method time on the same examples, i.e. the ratio of the mean times) with its bootstrap 95 % CI, the same as
    a time reduction (%, positive = faster), α and the ideal bound; the paper's value in a column of its own, only
    beside its stairs method on a pair of the paper's checkpoints (runs.paper_pair). transformers' own greedy loop
    (hf_greedy) is a row of its own; methods that are not exact are in `not_exact_table`."""
    import pandas as pd

    rows = []
    for _, r in summary[(summary["method"] != "greedy") & summary["method"].map(is_exact)].iterrows():
        paper = paper_pair(r["model"], r["draft"])
        rows.append({
            "pair": r["pair"], "method": r["method"],
            "k": int(r["k"]) if r["method"] in SPEC_METHODS else "–",
            "mean s/ex": r["mean_s"], "speed-up": r["speedup"],
            "speed-up 95% CI": _ci(r, "speedup_ci95_low", "speedup_ci95_high"),
            "time reduction %": r["time_reduction_pct"],
            "time reduction 95% CI": _ci(r, "time_reduction_ci95_low", "time_reduction_ci95_high", "{:.1f}"),
            "α": r.get("alpha"), "bound": r.get("bound_speedup"),
            PAPER_COLUMN: PAPER_REDUCTION_PCT[paper] if paper and r["method"] == "stairs" else None,
        })
    return pd.DataFrame(rows)


def not_exact_table(summary):
    """The methods that are not exact (the draft alone): mean time per example and how far their output is from
    the target's greedy output — no speed-up or time reduction, which would compare different outputs."""
    import pandas as pd

    rows = []
    for _, r in summary[~summary["method"].map(is_exact)].iterrows():
        rows.append({"pair": r["pair"], "method": r["method"], "mean s/ex": r["mean_s"],
                     "exact-match rate": r.get("exact_match_rate"), "BLEU vs greedy": r.get("bleu_vs_greedy"),
                     "BLEU vs ref": r.get("bleu_vs_ref")})
    return pd.DataFrame(rows)


def _formatted(table):
    def num(digits):
        return lambda v: "" if _blank(v) else f"{v:.{digits}f}"

    fmt = table.copy()
    for col, digits in (("mean s/ex", 4), ("time reduction %", 2), (PAPER_COLUMN, 2), ("speed-up", 2), ("α", 2),
                        ("bound", 2), ("exact-match rate", 2), ("BLEU vs greedy", 1), ("BLEU vs ref", 1)):
        if col in fmt:
            fmt[col] = fmt[col].map(num(digits))
    return drop_empty_columns(fmt)


def _tex(table) -> str:
    return table.to_latex(index=False).replace("α", r"$\alpha$").replace("←", r"$\leftarrow$").replace("%", r"\%")


def write_table(table, out_dir, name: str = "time_reduction", not_exact=None) -> list[Path]:
    """`name`.md and `name`.tex: the exact methods' table, then (when given and not empty) the methods that are not
    exact under a heading of their own; columns empty in every row are left out."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = _formatted(table)
    md_text, tex_text = main.to_markdown(index=False) + "\n", _tex(main)
    if not_exact is not None and len(not_exact):
        extra = _formatted(not_exact)
        md_text += f"\n{NOT_EXACT_HEADING}\n\n" + extra.to_markdown(index=False) + "\n"
        tex_text += f"\n\\medskip\\noindent {_tex_escape(NOT_EXACT_HEADING)}\n\n" + _tex(extra)
    md, tex = out / f"{name}.md", out / f"{name}.tex"
    md.write_text(md_text, encoding="utf-8")
    tex.write_text(tex_text, encoding="utf-8")
    return [md, tex]


def _tex_escape(text: str) -> str:
    return text.replace("—", "---").replace("%", r"\%")


def write_markdown(table, out_dir, name: str) -> Path:
    """`name`.md of a table, its all-empty columns left out."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.write_text(drop_empty_columns(table).to_markdown(index=False) + "\n", encoding="utf-8")
    return path


def make(group, out) -> list[Path]:
    """The time-reduction table of plain runs: time_reduction.md/.tex."""
    return write_table(reduction_table(group.summary), out, not_exact=not_exact_table(group.summary))


# -- batches ------------------------------------------------------------------------------------------------------
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


# -- sampling -----------------------------------------------------------------------------------------------------
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
    temperature with its CI (not for a method that is not exact: it samples from another distribution — the draft
    alone, marked so), α with its CI, and chrF/BLEU against the references."""
    import pandas as pd

    rows = []
    for _, r in sampling_rows(summary).iterrows():
        spec, exact = r["method"] in SPEC_METHODS, is_exact(r["method"])
        rows.append({"pair": r["pair"], "temperature": "greedy" if not r["temperature"] else f"{r['temperature']:g}",
                     "method": r["method"] + ("" if exact else " (not exact)"), "k": int(r["k"]) if spec else "–",
                     "mean s/ex": f"{r['mean_s']:.4f}",
                     "speed-up vs target alone": "" if r["method"] == "greedy" or not exact else
                     f"{r['speedup']:.2f} " + _ci(r, "speedup_ci95_low", "speedup_ci95_high", "{:.2f}"),
                     "α": "" if not spec or pd.isna(r.get("alpha")) else
                     f"{r['alpha']:.3f} " + _ci(r, "alpha_ci95_low", "alpha_ci95_high", "{:.3f}"),
                     "drafts kept / round": "" if not spec else f"{r['mean_accepted']:.2f}",
                     "chrF vs ref": "" if pd.isna(r.get("chrf_vs_ref")) else f"{r['chrf_vs_ref']:.1f}",
                     "BLEU vs ref": "" if pd.isna(r.get("bleu_vs_ref")) else f"{r['bleu_vs_ref']:.1f}"})
    return pd.DataFrame(rows)


# -- the α sweep --------------------------------------------------------------------------------------------------
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
