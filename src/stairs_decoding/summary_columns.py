"""What every column of summary.csv means: one ordered dict, column → one line (units, which statistic, which
interval), in the order summary.csv writes them: run_files.SUMMARY_COLUMNS is this order, and
docs/summary_columns.md is generated from it:

    python -m stairs_decoding.summary_columns > docs/summary_columns.md

A row is one cell: (method, k, requested α, batch size, schedule, temperature) of a run's pair; "examples" are the
cell's examples (its generate() calls at batch size > 1). Speed-ups are paired with greedy (the target alone) at the
same batch size and temperature; "95 % CI" is a percentile bootstrap over examples (paired, fixed seed) unless said.
"""
from __future__ import annotations

COLUMNS: dict[str, str] = {
    # -- the columns every summary.csv has had from the start, in this order -----------------------------------------
    "method": "decoding method (methods.METHODS; `greedy` is the target alone, the reference of every speed-up)",
    "k": "draft tokens per round (num_draft_tokens); 0 for methods without k",
    "n": "records in the cell (examples × batch rows)",
    "median_s": "median seconds per example (wall clock of its generate() call, per record)",
    "mean_s": "mean seconds per example (the statistic the speed-up is built from)",
    "ci95_low": "lower end of the 95 % t-interval of mean_s (seconds)",
    "ci95_high": "upper end of the 95 % t-interval of mean_s (seconds)",
    "tokens_per_s": "new tokens per second: total new tokens / total seconds of the cell",
    "time_reduction_pct": "time reduction vs greedy in %, 100·(1 − 1/speedup); positive = faster; meaningful only "
                          "for exact methods",
    "speedup": "greedy's total seconds / the method's total seconds on the same examples (ratio of means); "
               "meaningful only for exact methods",
    "mean_accepted": "mean draft tokens accepted per round (speculative methods)",
    "alpha": "acceptance rate α per drafted token, pooled over the cell: accepted / (accepted + rejected)",
    "cost_ratio_c": "c = draft decoder-step time / target decoder-step time, measured in the run (for the draft "
                    "step the cell ran; lean or transformers); empty for methods without a draft model",
    "bound_speedup": "Leviathan et al.'s ideal speed-up (1−α^(k+1))/((1−α)(k·c+1)) at the cell's α and c",
    "achieved_over_bound": "speedup / bound_speedup: the share of the ideal speed-up achieved",
    "bleu_vs_greedy": "BLEU of the outputs against greedy's outputs (greedy cells only; 100 = identical)",
    "bleu_vs_ref": "BLEU of the outputs against the task's references",
    "exact_match_rate": "share of examples whose output equals greedy's (greedy cells; 1.0 for an exact method)",
    "model": "the target as loaded: hub id (optionally @revision), local path, or config name for random weights",
    "draft": "the draft as loaded (same labels as model); `controlled` for a draft with a set acceptance",
    "task": "task name (conf/task)",
    "device": "device the cell ran on (cpu, cuda:0, ...)",
    # -- added later (cross-checks, intervals, batches, schedules, sampling, options), in the order they are written --
    "chrf_vs_ref": "chrF of the outputs against the references",
    "mismatches": "examples whose output differs from greedy's (should be 0 for an exact method)",
    "alpha_requested": "acceptance α set for a controlled draft (paper-scale α sweeps); empty otherwise",
    "bound_speedup_requested_alpha": "bound_speedup at alpha_requested instead of the measured α",
    "target_s_per_ex": "mean seconds per example inside the target's forward calls",
    "draft_s_per_ex": "mean seconds per example inside the draft's forward calls",
    "overhead_s_per_ex": "mean seconds per example outside both models' forwards (the loop's own work)",
    "target_calls": "mean target forward calls per example",
    "draft_calls": "mean draft forward calls per example",
    "speedup_ci95_low": "lower end of speedup's 95 % CI (paired bootstrap over examples)",
    "speedup_ci95_high": "upper end of speedup's 95 % CI (paired bootstrap over examples)",
    "time_reduction_ci95_low": "lower end of time_reduction_pct's 95 % CI (from speedup_ci95_low)",
    "time_reduction_ci95_high": "upper end of time_reduction_pct's 95 % CI (from speedup_ci95_high)",
    "alpha_ci95_low": "lower end of alpha's 95 % CI (bootstrap over examples)",
    "alpha_ci95_high": "upper end of alpha's 95 % CI (bootstrap over examples)",
    "bound_ci95_low": "lower end of bound_speedup's 95 % interval (α's CI and c's CI together)",
    "bound_ci95_high": "upper end of bound_speedup's 95 % interval (α's CI and c's CI together)",
    "cost_ratio_ci95_low": "lower end of c's 95 % CI (over the timed decoder steps)",
    "cost_ratio_ci95_high": "upper end of c's 95 % CI (over the timed decoder steps)",
    "above_bound": "True when the whole speedup CI lies above the bound's interval: not a possible result",
    "batch_size": "examples per generate() call (task.batch_size); the bootstrap then resamples whole batches",
    "tokens_per_s_ci95_low": "lower end of tokens_per_s's 95 % CI (bootstrap over generate() calls)",
    "tokens_per_s_ci95_high": "upper end of tokens_per_s's 95 % CI (bootstrap over generate() calls)",
    "ragged": "share of generate() calls whose rows accepted different numbers of drafts (batch > 1)",
    "schedule": "how k is chosen per round: constant, heuristic, confidence or auto",
    "fallback_share": "share of calls that fell back to greedy (schedule=auto only)",
    "temperature": "sampling temperature; 0 = greedy decoding",
    "mean_drafted": "mean tokens proposed per round (differs from k under a schedule)",
    "tokens_per_target_call": "new tokens per target forward call (one generate() call's calls counted once)",
    "options": "the method options the cell ran with (e.g. draft_forward=lean,num_branches=3), comma-separated",
    "verify_cost_v": "v(k+1): the measured cost of one cached target forward of k+1 tokens, in one-token steps "
                     "(cost_ratio.json verify_cost); for cells that verify one cached row at batch size 1",
    "bound_speedup_verify": "the ideal speed-up with verification at its measured cost, "
                            "(1−α^(k+1))/((1−α)(k·c+v(k+1))); bound_speedup assumes v = 1",
    "achieved_over_verify_bound": "speedup / bound_speedup_verify: the share achieved of what this hardware allows "
                                  "(the loop's overhead, not the cost of verification)",
}

def markdown() -> str:
    """docs/summary_columns.md: a table of every column and its meaning, in summary.csv's order."""
    lines = ["# summary.csv columns", "",
             "Generated from `src/stairs_decoding/summary_columns.py` by "
             "`python -m stairs_decoding.summary_columns > docs/summary_columns.md`; do not edit by hand.", "",
             "One row per cell (method, k, requested α, batch size, schedule, temperature) of a run. Speed-ups are "
             "paired with greedy (the target alone) on the same examples; \"95 % CI\" is a percentile bootstrap over "
             "examples unless said. Methods that are not exact (the draft alone) have a speed-up in the file, but it "
             "compares different outputs: the report's tables keep them apart.", "",
             "| column | meaning |", "|:--|:--|"]
    lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in COLUMNS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
