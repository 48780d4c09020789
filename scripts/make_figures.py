"""Regenerate the figures and tables of paper_figures/ from run directories.

    python scripts/make_figures.py results/tiny_cpu results/paper_scale_t5_large_cpu [--out paper_figures]

Experiment runs (scripts/run.py) give time_vs_k, inference_time, acceptance and time_reduction.{md,tex};
paper-scale α sweeps (scripts/bench_paper_scale.py) give paper_scale_alpha. All plotting lives in
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
    from stairs_decoding import report

    try:
        written = report.make_all(args.runs, args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
