#!/usr/bin/env python
"""Time the target's cached forward of m tokens (a verification) against its one-token step under each float32
kernel path this machine offers — transformers' default, math SDPA, oneDNN linear, split calls — with the logit
difference of each against one-token steps (issue 30, point 4). Writes verify_kernels.json/.md/.png to --out.

    python scripts/verify_kernels.py --model tiny --batch 1 4 16 --out results/verify_kernels_cpu
    python scripts/verify_kernels.py --model t5-large --batch 1 --out results/verify_kernels_cpu_t5_large

Thin on purpose: the measurement lives in stairs_decoding.kernel_search.
"""
import sys

from stairs_decoding import cli
from stairs_decoding.kernel_search import main

if __name__ == "__main__":
    sys.exit(cli.run(lambda: main(sys.argv[1:])))
