"""Training the shipped tiny T5 target/draft pairs, both with one pipeline: `models/tiny-t5` (the `compress:` task,
`python scripts/train_tiny_pair.py --seed 0`) and `models/tiny-t5-de` (English->German gettext messages,
`python scripts/train_tiny_pair.py --task translate --seed 0`).

* `data`: the `compress:` task (`compress`, `compress_aligned`) and its examples from the stdlib's pydoc topics;
* `gettext_data`: the translation task's examples from pinned PyPI wheels' German catalogues, split by package;
* `tokenizer`: ByT5's bytes, or a unigram tokenizer trained on the training side;
* `architecture`: the T5 configs and the draft built from the target (`make_config`, `draft_from_target`);
* `loop`: batches, learning-rate schedule, losses, `train_loop`;
* `evaluate`: saving, held-out evaluation (greedy chrF, engine α, cost ratio c from `stairs_decoding.timing`);
* `pipeline`: `build_parser()`, `apply_task_defaults(args)` and `main(argv)`, the whole run.
"""
from .pipeline import apply_task_defaults, build_parser, main

__all__ = ["apply_task_defaults", "build_parser", "main"]
