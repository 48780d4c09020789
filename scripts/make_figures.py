"""Regenerate the figures and tables of paper_figures/ from run directories.

    python scripts/make_figures.py results [--out paper_figures]

Runs without a controlled draft give time_vs_k, inference_time, acceptance, k_sweep and time_reduction.{md,tex};
controlled-draft α sweeps (experiment=paper_scale_*) give paper_scale_alpha. All plotting lives in
stairs_decoding.report (the notebooks call the same functions).
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
