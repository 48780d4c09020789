"""Training the shipped tiny T5 target/draft pair (`models/tiny-t5`): `python scripts/train_tiny_pair.py --seed 0`.

* `data`: the `compress:` task (`compress`, `compress_aligned`) and its examples from the stdlib's pydoc topics;
* `architecture`: the T5 configs and the draft built from the target (`make_config`, `draft_from_target`);
* `loop`: batches, learning-rate schedule, losses, `train_loop`;
* `evaluate`: saving, held-out evaluation (greedy chrF, engine α, cost ratio c from `stairs_decoding.timing`);
* `pipeline`: `build_parser()` and `main(argv)`, the whole run.
"""
from .pipeline import build_parser, main

__all__ = ["build_parser", "main"]
