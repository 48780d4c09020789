#!/usr/bin/env python
"""Paper-scale timing without checkpoints: architecture-true random-weight T5 pair, controlled acceptance α.

    python scripts/bench_paper_scale.py --target t5_large_arch --draft t5_small_arch \
        --alphas 0.3,0.5,0.7,0.8,0.9 --ks 1,2,4,6,8,10 --methods greedy,stairs,stairs_cached,hf_assisted \
        --examples 3 --max-new-tokens 64 --prompt-len 64 --dtype float32 --device auto \
        --out results/paper_scale_t5_large/
    # GPU host: --device cuda --dtype bfloat16

Both models are built from the published T5 configurations with seeded random weights (`stairs_decoding.
paper_scale`): each forward pass costs what the real checkpoint's costs, the outputs are meaningless. The draft's
proposals are steered by `ControlledDraft` so that each is the target's own greedy token with probability α.
Every generation runs exactly --max-new-tokens tokens (EOS ignored), so every method does the same work.

Per example: random prompt (seeded; it only sets the encoder cost) → target greedy reference (untimed) → the
greedy baseline timed twice (first and last) and every (method, α, k) cell timed once, in an order rotated per
example. Every output is checked against the reference. Writes results.jsonl (one line per example × method ×
α × k, appended as it exists), summary.csv, cost_ratio.json, env.json (peak RSS, run time) in --out, and the
α-sweep figure (report.plot_alpha_sweep) unless --no-figure.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"t5-large": 17.24, "t5-3b": 9.58}


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _per_method(items: list[str], parse) -> dict:
    out = {}
    for item in items:
        method, _, values = item.partition("=")
        if not values:
            sys.exit(f"error: expected METHOD=V,V,... got {item!r}")
        out[method.strip()] = parse(values)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="t5_large_arch", help="architecture name (paper_scale.T5_ARCHITECTURES)")
    p.add_argument("--draft", default="t5_small_arch")
    p.add_argument("--alphas", type=_floats, default=_floats("0.3,0.5,0.7,0.8,0.9"))
    p.add_argument("--ks", type=_ints, default=_ints("1,2,4,6,8,10"))
    p.add_argument("--methods", default="greedy,stairs,stairs_cached,hf_assisted")
    p.add_argument("--method-ks", action="append", default=[], metavar="METHOD=K,K",
                   help="k values for one method instead of --ks (repeatable), e.g. stairs=2,4: the uncached "
                        "stairs verification costs O(k·length) per round and dominates a CPU sweep")
    p.add_argument("--method-alphas", action="append", default=[], metavar="METHOD=A,A",
                   help="α values for one method instead of --alphas (repeatable)")
    p.add_argument("--examples", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=1, help="warm-up passes of every method (untimed, short)")
    p.add_argument("--cost-steps", type=int, default=16, help="decoder steps per cost-ratio measurement")
    p.add_argument("--out", default=None, help="run directory (default results/paper_scale_<target>_<device>)")
    p.add_argument("--figure-dir", default=None, help="where the figure goes (default: --out)")
    p.add_argument("--no-figure", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers.utils import logging as hf_logging

    from stairs_decoding import generate
    from stairs_decoding.methods import SPECULATIVE
    from stairs_decoding.paper_scale import ControlledDraft, build_architecture, canonical_name, ideal_speedup
    from stairs_decoding.results import (COST_FILE, ENV_FILE, SUMMARY_FILE, RESULTS_FILE, ResultsWriter,
                                         environment, write_json, write_summary)
    from stairs_decoding.timing import interleaved_order, measure_cost_ratio, summarize, synchronize

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    target_name, draft_name = canonical_name(args.target), canonical_name(args.draft)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    spec_methods = [m for m in methods if m in SPECULATIVE]
    unknown = [m for m in methods if m != "greedy" and m not in SPECULATIVE]
    if unknown:
        sys.exit(f"error: unknown or non-speculative method(s) {unknown}; choose from greedy, {', '.join(SPECULATIVE)}")
    out = Path(args.out or ROOT / "results" / f"paper_scale_{target_name}_{device.type}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / RESULTS_FILE).exists():
        (out / RESULTS_FILE).unlink()            # a fresh sweep (α is not part of the harness's resume key)

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    log(f"building {target_name} and {draft_name} (architecture only, random weights) on {device}, {args.dtype}")
    target = build_architecture(target_name, seed=args.seed, dtype=args.dtype, device=device)
    draft = build_architecture(draft_name, seed=args.seed + 1, dtype=args.dtype, device=device)
    vocab = target.config.vocab_size
    if draft.config.vocab_size != vocab:
        sys.exit(f"error: vocabularies differ ({target_name}: {vocab}, {draft_name}: {draft.config.vocab_size})")
    log(f"built in {time.perf_counter() - t_start:.1f}s")

    n_new = args.max_new_tokens
    gen = torch.Generator().manual_seed(args.seed)
    prompts = [torch.randint(2, vocab, (1, args.prompt_len), generator=gen) for _ in range(args.examples)]

    def run(method, ids, k=1, max_new=n_new):
        synchronize(device)
        t0 = time.perf_counter()
        res = generate(target, ids, draft=draft, method=method, num_draft_tokens=k, max_new_tokens=max_new,
                       ignore_eos=True)
        synchronize(device)
        return res, time.perf_counter() - t0

    env = environment(device=device, dtype=args.dtype, seed=args.seed, repo=ROOT)
    env.update(architecture_only=True, target=f"{target_name} (architecture, random weights)",
               draft=f"{draft_name} (architecture, random weights)", args=vars(args))
    write_json(out / ENV_FILE, env)

    cd = ControlledDraft(draft, alpha=1.0, seed=args.seed)
    records: list[dict] = []
    try:
        # Warm-up (untimed, short): every method once, with the controlled draft in place.
        for _ in range(max(0, args.warmup)):
            ref = run("greedy", prompts[0], max_new=min(16, n_new))[0].tokens[0]
            cd.set_reference(ref, example_seed=-1)
            cd.alpha = 0.7
            for m in spec_methods:
                run(m, prompts[0], k=min(4, max(args.ks)), max_new=min(16, n_new))
        log("warm-up done")
        # Direct cost ratio c: one draft decoder step / one target decoder step, KV cache at mid length.
        cd.remove()
        cost = measure_cost_ratio(target, draft, prompts[0], context=max(1, n_new // 2), steps=args.cost_steps)
        cd.attach()
        c = cost["cost_ratio_c"]
        write_json(out / COST_FILE, cost)
        log(f"cost ratio c = {c:.4f} (draft step {cost['draft_step_s'] * 1e3:.1f} ms, target step "
            f"{cost['target_step_s'] * 1e3:.1f} ms)")

        ks_for = {m: args.ks for m in spec_methods} | _per_method(args.method_ks, _ints)
        alphas_for = {m: args.alphas for m in spec_methods} | _per_method(args.method_alphas, _floats)
        cells = [("greedy", None, 0)] + [(m, a, k) for a in args.alphas for k in args.ks for m in spec_methods
                                         if a in alphas_for[m] and k in ks_for[m]]
        cells += [(m, a, k) for m in spec_methods for a in alphas_for[m] for k in ks_for[m]
                  if (m, a, k) not in cells]
        with ResultsWriter(out / RESULTS_FILE) as writer:
            for i, ids in enumerate(prompts):
                ref = run("greedy", ids)[0].tokens[0]               # untimed reference (the target's greedy)
                cd.set_reference(ref, example_seed=i)
                order = interleaved_order(cells, i, rotate=True, pinned=1) + [("greedy", None, 0)]
                for pos, (method, alpha, k) in enumerate(order):
                    if alpha is not None:
                        cd.alpha = alpha
                    res, seconds = run(method, ids, k=max(k, 1))
                    st = res.stats
                    tokens = res.tokens[0]
                    matches = tokens == ref
                    if not matches:
                        print(f"WARNING: {method} k={k} alpha={alpha} differs from greedy on example {i}",
                              file=sys.stderr)
                    rec = {"example_id": f"random-{i}", "example_index": i, "method": method, "k": k,
                           "alpha_requested": alpha, "schedule": "constant", "order": pos, "seconds": seconds,
                           "new_tokens": st.new_tokens, "target_calls": st.target_calls,
                           "draft_calls": st.draft_calls, "accepted": list(st.accepted), "drafted": list(st.drafted),
                           "rejections": st.rejections, "target_seconds": st.target_seconds,
                           "draft_seconds": st.draft_seconds, "total_seconds": st.total_seconds,
                           "overhead_seconds": st.overhead_seconds, "alpha": st.acceptance_rate,
                           "output": None, "tokens": tokens, "reference": None, "matches_greedy": matches,
                           "model": f"{target_name}_arch",
                           "draft": f"{draft_name}_arch" if method != "greedy" else None,
                           "task": f"random_prompts_{args.prompt_len}", "device": str(device),
                           "dtype": args.dtype, "timestamp": time.time()}
                    writer.write(rec)
                    records.append(rec)
                log(f"example {i + 1}/{len(prompts)} done ({len(order)} cells)")
    finally:
        cd.remove()

    rows = summary_rows(records, c, target_name, draft_name, str(device), ideal_speedup, summarize)
    write_summary(out / SUMMARY_FILE, rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    env.update(run_seconds=round(time.perf_counter() - t_start, 1), peak_rss_mb=round(peak_mb, 1),
               cost_ratio=cost, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if device.type == "cuda":
        env["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    write_json(out / ENV_FILE, env)
    print_table(rows, c, target_name)
    log(f"done: peak RSS {peak_mb:.0f} MB; results in {out}")
    if not args.no_figure:
        from stairs_decoding.report import plot_alpha_sweep

        paths = plot_alpha_sweep([out], args.figure_dir or out)
        log(f"figure: {', '.join(map(str, paths))}")
    return 0


def summary_rows(records, c, target_name, draft_name, device, ideal_speedup, summarize) -> list[dict]:
    """One row per (method, α, k); time reduction / speed-up are paired with the greedy runs of the same
    examples (ratio of total seconds; greedy = mean of its two runs per example)."""
    greedy: dict[str, list[float]] = {}
    for r in records:
        if r["method"] == "greedy":
            greedy.setdefault(r["example_id"], []).append(r["seconds"])
    g_time = {ex: statistics.fmean(v) for ex, v in greedy.items()}
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r["method"], r["alpha_requested"], int(r["k"])), []).append(r)
    rows = []
    for (method, alpha, k), recs in cells.items():
        s = summarize([r["seconds"] for r in recs])
        paired = [r for r in recs if r["example_id"] in g_time]
        t_m = sum(r["seconds"] for r in paired)
        t_g = sum(g_time[r["example_id"]] for r in paired) if method != "greedy" else t_m
        speedup = t_g / t_m if t_m > 0 else math.nan
        accepted = [a for r in recs for a in r["accepted"]]
        rej = sum(r["rejections"] for r in recs)
        measured = sum(accepted) / (sum(accepted) + rej) if (sum(accepted) + rej) else math.nan
        spec = method != "greedy"
        bound = ideal_speedup(measured, c, k) if spec else 1.0
        bound_req = ideal_speedup(alpha, c, k) if spec else 1.0
        rows.append({
            "method": method, "k": k, **s,
            "tokens_per_s": sum(r["new_tokens"] for r in recs) / sum(r["seconds"] for r in recs),
            "time_reduction_pct": 100.0 * (1.0 - t_m / t_g) if t_g > 0 else math.nan,
            "speedup": speedup,
            "mean_accepted": statistics.fmean(accepted) if accepted else math.nan,
            "alpha": measured if spec else math.nan,
            "cost_ratio_c": c if spec else math.nan,
            "bound_speedup": bound, "achieved_over_bound": speedup / bound if bound else math.nan,
            "exact_match_rate": sum(1 for r in recs if r["matches_greedy"]) / len(recs),
            "model": f"{target_name}_arch", "draft": f"{draft_name}_arch" if spec else None,
            "task": "random_prompts", "device": device,
            "mismatches": sum(1 for r in recs if not r["matches_greedy"]),
            "alpha_requested": alpha, "alpha_measured": measured if spec else math.nan,
            "bound_speedup_requested_alpha": bound_req,
            "target_s_per_ex": statistics.fmean(r["target_seconds"] for r in recs),
            "draft_s_per_ex": statistics.fmean(r["draft_seconds"] for r in recs),
            "overhead_s_per_ex": statistics.fmean(r["overhead_seconds"] for r in recs),
            "target_calls": statistics.fmean(r["target_calls"] for r in recs),
            "draft_calls": statistics.fmean(r["draft_calls"] for r in recs),
            "architecture_only": True,
        })
    return rows


def print_table(rows, c, target_name) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    spec = df[df.method != "greedy"]
    if spec.empty:
        return
    best = spec.loc[spec.groupby(["method", "alpha_requested"]).time_reduction_pct.idxmax()]
    print(f"\n{target_name} (architecture, random weights), c = {c:.4f}: time reduction vs greedy at the best k")
    table = best.pivot(index="alpha_requested", columns="method", values="time_reduction_pct").round(1)
    ks = best.pivot(index="alpha_requested", columns="method", values="k").astype("Int64")
    print(table.astype(str).add(" (k=").add(ks.astype(str)).add(")").replace("nan (k=<NA>)", "-").to_string())
    if target_name in PAPER:
        print(f"paper's {target_name}: {PAPER[target_name]} %")


if __name__ == "__main__":
    raise SystemExit(main())
