"""Runs → tidy DataFrames → tables and figures (what scripts/make_figures.py and the notebooks call).

    runs.py         finding and loading run directories, run kinds, env captions, the paper's checkpoint pairs
    tables.py       time reduction (exact methods; the others apart), batch, sampling and α-sweep tables
    style.py        method styles, the figure and its caption, error bars, legends, saving PDF + PNG
    time_vs_k.py  bars.py  acceptance.py  k_sweep.py  batch.py  sampling.py  alpha_sweep.py  schedule.py
    per_task.py     one module per figure family

A figure module names the kind of run it draws (`KIND`: "plain", "batched", "sampling", "alpha", "schedule" or
"per_task", see
runs.run_kind) and has `make(group, out) -> [paths]`; `make_all` calls every module of `FIGURES` on the runs of its
kind. A new figure is one new module and one entry in `FIGURES`.
"""
from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path

from . import (acceptance, alpha_sweep, bars, batch, k_sweep, per_task, runs, sampling, schedule, style, tables,
               time_vs_k)
from .acceptance import plot_acceptance
from .alpha_sweep import crossing_alpha, plot_alpha_sweep
from .bars import plot_inference_bars
from .batch import plot_throughput_vs_batch
from .k_sweep import plot_k_sweep
from .runs import (BASELINES, FLOORS, PAPER_REDUCTION_PCT, SPEC_METHODS, arch_key, best_k, best_k_per_alpha,
                   environment_caption, incomplete, is_alpha_sweep, is_batch_sweep, is_exact, is_sampling_sweep, load_alpha_sweep,
                   load_results, load_summaries, pair_label, paper_pair, pull_wandb, read_env, run_device, run_dirs,
                   run_kind)
from .sampling import plot_sampling
from .style import METHOD_STYLE, runs_caption, save_figure
from .tables import (alpha_sweep_table, batch_rows, batch_table, not_exact_table, reduction_table, sampling_rows,
                     sampling_table, write_table)
from .time_vs_k import plot_time_vs_k

# Every figure family, in the order make_all writes them (a table counts: tables.make writes time_reduction).
FIGURES = (sampling, batch, time_vs_k, bars, acceptance, k_sweep, tables, alpha_sweep, schedule, per_task)


class RunGroup:
    """The runs of one kind on one device, with their summary and records loaded once, when a figure asks."""

    def __init__(self, dirs: list[Path], kind: str):
        self.dirs, self.kind = dirs, kind

    @cached_property
    def summary(self):
        return load_summaries(self.dirs, kind=self.kind)

    @cached_property
    def results(self):
        return load_results(self.dirs)


def make_all(runs, out_dir) -> list[Path]:
    """Every figure and table of paper_figures/ from the given run directories: each module of FIGURES on the runs
    of its kind (plain runs: time_vs_k, inference_time, acceptance, k_sweep, time_reduction.md/.tex; runs with
    batches: throughput_vs_batch and batch_throughput.md; runs that sample: sampling and sampling.md; α sweeps:
    paper_scale_alpha; runs with schedule="cost" cells: cost_schedule). CPU runs write into `out_dir`; runs on another device (scripts/gpu_check.sh:
    results/*_gpu) into `out_dir`/<device>/, so that no figure mixes timings from two kinds of hardware."""
    dirs = run_dirs(runs)
    for d in dirs:
        if (why := incomplete(d)) is not None:
            print(f"warning: {why}", file=sys.stderr, flush=True)
    written = []
    for device in sorted({run_device(d) for d in dirs}, key=lambda d: (d != "cpu", d)):
        on_device = [d for d in dirs if run_device(d) == device]
        out = Path(out_dir) if device == "cpu" else Path(out_dir) / device
        groups = {}
        for d in on_device:
            groups.setdefault(run_kind(d), []).append(d)
        groups = {kind: RunGroup(these, kind) for kind, these in groups.items()}
        for module in FIGURES:
            if module.KIND in groups:
                written += module.make(groups[module.KIND], out)
    return written


__all__ = [name for name in dir() if not name.startswith("_")]
