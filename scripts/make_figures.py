"""Regenerate the figures and tables of paper_figures/ from run directories.

    python scripts/make_figures.py results [--out paper_figures]

Runs without a controlled draft give time_vs_k, inference_time, acceptance, k_sweep and time_reduction.{md,tex};
runs with batches give throughput_vs_batch and batch_throughput.md; runs that sample give sampling and sampling.md;
controlled-draft α sweeps (experiment=paper_scale_*) give paper_scale_alpha. All plotting lives in the package
stairs_decoding.report, one module per figure family (report.FIGURES; the notebooks call the same functions).
"""
import argparse
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (or folders holding runs)")
    parser.add_argument("--out", default="paper_figures", help="output folder (default: paper_figures)")
    args = parser.parse_args(argv)
    from stairs_decoding import cli, report

    return cli.run(lambda: print(*report.make_all(args.runs, args.out), sep="\n"))


if __name__ == "__main__":
    sys.exit(main())
