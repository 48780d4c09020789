#!/usr/bin/env python
"""Train the tiny T5 target/draft pair that ships in models/tiny-t5 (CPU, about 30 minutes on 2 cores).

Usage:
    python scripts/train_tiny_pair.py --seed 0                      # the shipped pair: models/tiny-t5, data/
    python scripts/train_tiny_pair.py --seed 0 --out /tmp/pair --data-out /tmp/pair-data
    python scripts/train_tiny_pair.py --skip-train --out models/tiny-t5 --eval-max 50   # re-evaluate only
    python scripts/train_tiny_pair.py --help                        # every option and the pipeline

Thin on purpose: the data, models, training loop and evaluation live in `stairs_decoding.training`
(data.py, architecture.py, loop.py, evaluate.py, pipeline.py). Fixed seeds, step counts and thread count: the
same command on the same machine reproduces the weights bit for bit. User errors print one `error: ...` line
and exit with status 2.
"""
import sys

from stairs_decoding import cli
from stairs_decoding.training import main

if __name__ == "__main__":
    sys.exit(cli.run(lambda: main(sys.argv[1:])))
