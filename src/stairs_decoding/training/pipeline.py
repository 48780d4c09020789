"""Train a tiny, real T5 target/draft pair on CPU for offline speculative-decoding runs.

Two tasks, one pipeline (`--task`, defaults in `TASKS`): `compress` (below; models/tiny-t5) and `translate`
(English->German gettext messages of pinned PyPI wheels, split by source package: `gettext_data`; a unigram
tokenizer trained on the training side; no alignment loss; models/tiny-t5-de). The rest of this docstring describes
`compress`; `translate` runs the same steps 2-5.

Data: English prose from the Python documentation shipped with the standard
library (``pydoc_data.topics.topics``, PSF licence), split deterministically by
topic key into train and held-out topics.

Task ("compress"): a deterministic extractive rewrite.  The output is the input
sentence with parenthetical ``(...)`` spans and a fixed list of English
stop-words removed, whitespace normalised.  The output copies (and drops) spans
of the input; ``compress_aligned()`` also says which input byte each output byte
copies.

Pipeline:
  1. build examples, write ``<data-out>/tiny_heldout.jsonl``;
  2. train the target (T5, d_model 192, 12 small heads, 8+8 layers) with cross-entropy plus a
     guided-alignment loss on head 0 of every decoder cross-attention (without
     it, byte-level T5s this small sit on the byte-LM plateau for thousands of
     CPU steps);
  3. save the target (float16), reload it, and build the draft from it: the
     target's encoder (frozen) under a one-layer decoder initialised from the
     target's first decoder block; distil it from the target's logits (KL on
     teacher-forced *reference* training pairs) plus the alignment loss;
  4. save the draft (float16 safetensors + ByT5 tokenizer + generation config);
  5. reload both in float32 and evaluate on the held-out set: target greedy
     chrF, max byte share, acceptance alpha from the engine's own stats
     (stairs_cached, k=4), cost ratio c (stairs_decoding.timing.measure_cost_ratio);
     write ``<out>/train_metrics.json``.

Fixed seeds, fixed step counts and a fixed thread count: the same command on the
same machine reproduces the weights bit for bit.

Example:
    python scripts/train_tiny_pair.py --seed 0 --out models/tiny-t5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import HarnessError
from . import data as compress_data
from . import gettext_data
from .architecture import draft_from_target, make_config, n_params
from .evaluate import chrf_baselines, evaluate_heldout, save_model, summary_line
from .loop import train_loop
from .tokenizer import byte_tokenizer, unigram_tokenizer

# Each shipped pair's task: where it writes by default, its tokenizer and its alignment-loss weight. Both pairs are
# trained by this one pipeline; `--task` picks the data, everything else is the same code.
# compress: deep and narrow (see --target-layers); translate: wider and shallower, which reached a higher held-out
# chrF for less time per step (pilot on the first 4.7k training messages, 2,400 steps: 4 + 4 layers at d_model 256
# 16.8 on 100 held-out messages, 8 + 8 at 192 11.7 on all 513); shipped: 17.3 after 3,600 steps on 13.4k messages.
TASKS = {
    "compress": {"out": "models/tiny-t5", "tokenizer": "byte", "align_weight": 1.0, "dropout": 0.0,
                 "target_steps": 1600, "draft_steps": 300, "batch_size": 16,
                 "target_d_model": 192, "target_d_ff": 768, "target_heads": 12, "target_layers": 8},
    "translate": {"out": "models/tiny-t5-de", "tokenizer": "unigram", "align_weight": 0.0, "dropout": 0.1,
                  "target_steps": 3600, "draft_steps": 400, "batch_size": 32,
                  "target_d_model": 256, "target_d_ff": 1024, "target_heads": 16, "target_layers": 4},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", choices=sorted(TASKS), default="compress",
                   help="compress: the Python-docs `compress:` pair (models/tiny-t5); translate: English->German "
                        "gettext messages of permissively licensed PyPI packages (models/tiny-t5-de)")
    p.add_argument("--out", default=None, help="default: models/tiny-t5 (compress) or models/tiny-t5-de (translate)")
    p.add_argument("--data-out", default="data")
    p.add_argument("--target-steps", type=int, default=None, help="default: the task's (TASKS)")
    p.add_argument("--draft-steps", type=int, default=None, help="default: the task's (TASKS)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the task's (TASKS)")
    p.add_argument("--target-lr", type=float, default=1e-3)
    p.add_argument("--draft-lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--temperature", type=float, default=1.0, help="distillation temperature")
    p.add_argument("--hard-weight", type=float, default=0.0, help="extra CE weight on references for the draft")
    p.add_argument("--align-weight", type=float, default=None,
                   help="weight of the guided-alignment loss on head 0 of each decoder cross-attention (0 = off; "
                        "default 1 for compress, whose copy alignment is known, 0 for translate)")
    p.add_argument("--tokenizer", choices=["byte", "unigram"], default=None,
                   help="byte: ByT5's (default for compress); unigram: trained on the training side (translate)")
    p.add_argument("--vocab-size", type=int, default=2000, help="unigram tokenizer's vocabulary")
    p.add_argument("--dropout", type=float, default=None,
                   help="the target's dropout while training (default 0 for compress, 0.1 for translate, whose "
                        "training set is a few thousand messages seen many times)")
    # architecture
    # deep and narrow: the draft is one decoder layer, and at batch 1 each layer costs about the same whatever its
    # width, so many target decoder layers per draft layer is what makes the draft cheap (c 0.17 at 8 vs 0.36 at 4)
    p.add_argument("--target-d-model", type=int, default=None, help="default: the task's (TASKS): 192 or 256")
    p.add_argument("--target-d-ff", type=int, default=None, help="default: the task's (TASKS): 768 or 1024")
    p.add_argument("--target-heads", type=int, default=None,
                   help="many small heads (d_kv 16): the copy circuit forms much sooner with 16 than with 4 heads; "
                        "default: the task's (TASKS): 12 or 16")
    p.add_argument("--target-layers", type=int, default=None,
                   help="encoder and decoder layers each; default: the task's (TASKS): 8 or 4")
    p.add_argument("--draft-layers", type=int, default=1,
                   help="decoder layers of the draft; its encoder is a frozen copy of the target's (it runs "
                        "once per input, so only the decoder sets the per-token cost)")
    # data of the compress task (translate: see stairs_decoding.training.gettext_data)
    p.add_argument("--min-src", type=int, default=40)
    p.add_argument("--max-src", type=int, default=132)
    p.add_argument("--min-tgt", type=int, default=32)
    p.add_argument("--max-tgt", type=int, default=128)
    p.add_argument("--heldout-mod", type=int, default=5, help="topic is held out iff sha1(key) %% mod == 0")
    p.add_argument("--window-passes", type=int, default=4,
                   help="random word-window passes over train-topic prose (augmentation)")
    p.add_argument("--eval-max", type=int, default=0, help="evaluate on at most N held-out examples (0 = all)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast for training (faster only on CPUs with native bf16 and no contention)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads (fixed, for bit-reproducible training on one machine; another thread "
                        "count gives other bits)")
    p.add_argument("--skip-train", action="store_true", help="only (re)evaluate models already in --out")
    p.add_argument("--target-from", default=None,
                   help="experiments only: load this trained target instead of training one, then train the draft")
    return p


def apply_task_defaults(args):
    """`args` with every option left unset (None) at its task's default (`TASKS`); returns `args`."""
    for key, default in TASKS[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    return args


def check_args(args) -> None:
    """User errors found before any work: one `HarnessError` line each. Fills the task's defaults."""
    apply_task_defaults(args)
    if args.align_weight and args.task != "compress":
        raise HarnessError(f"--align-weight: the alignment loss needs the copy alignment of the compress task; "
                           f"--task {args.task} has none (use --align-weight 0)")
    out = Path(args.out)
    if args.skip_train:
        missing = [m for m in ("target", "draft") if not (out / m / "config.json").is_file()]
        if missing:
            raise HarnessError(f"--skip-train: no trained {' or '.join(missing)} in {out} "
                               f"(expected {out}/target and {out}/draft as written by a training run)")
    if args.target_from and not (Path(args.target_from) / "config.json").is_file():
        raise HarnessError(f"--target-from {args.target_from}: no saved model there (expected a directory with "
                           "config.json and model.safetensors, e.g. models/tiny-t5/target)")


def prepare_data(args):
    """Build the examples and write the held-out set; returns (train, heldout, train_groups, heldout_groups): the
    groups the split is made by (topics of the Python docs, or source packages)."""
    if args.task == "translate":
        train, heldout, manifest = gettext_data.build_examples()
        groups = [[s["package"] for s in manifest["sources"] if s["split"] == side] for side in ("train", "heldout")]
        train_keys, heldout_keys = groups
        gettext_data.write_heldout(heldout, manifest, Path(args.data_out))
    else:
        train, heldout, train_keys, heldout_keys = compress_data.build_examples(
            args.min_src, args.max_src, args.min_tgt, args.max_tgt, args.heldout_mod,
            args.window_passes, args.seed)
        compress_data.write_heldout(heldout, Path(args.data_out))
    print(f"split groups: {len(train_keys)} train / {len(heldout_keys)} held-out; "
          f"examples: {len(train)} train / {len(heldout)} held-out")
    print("held-out groups:", ", ".join(heldout_keys))
    for e in heldout[:2]:
        print("  example:", json.dumps(e))
    return train, heldout, train_keys, heldout_keys


def train_target(args, train, tok, info: dict):
    """The target: trained from scratch, or loaded from --target-from (its training record copied into `info`)."""
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(args.seed)
    if args.target_from:
        target = T5ForConditionalGeneration.from_pretrained(args.target_from, dtype=torch.float32)
        info["target_from"] = str(args.target_from)
        prev = Path(args.target_from).parent / "train_info.json"
        if prev.exists() and "target_train" in json.loads(prev.read_text()):
            info["target_train"] = json.loads(prev.read_text())["target_train"]
        return target
    tcfg = make_config(args.target_d_model, args.target_d_ff, args.target_heads, args.target_layers,
                       vocab_size=len(tok), dropout=args.dropout)
    target = T5ForConditionalGeneration(tcfg)
    info["target_train"] = train_loop(
        "target", target, train, tok, args.target_steps, args.batch_size, args.target_lr,
        args.warmup, args.seed, align_weight=args.align_weight, bf16=args.bf16)
    print("target:", info["target_train"])
    return target


def distil_draft(args, target, train, tok, info: dict):
    """Build the draft from `target` (the shipped float16 weights, reloaded as float32) and distil it."""
    torch.manual_seed(args.seed + 1)
    draft = draft_from_target(target, args.draft_layers)
    print(f"params: target {n_params(target):,}  draft {n_params(draft):,} "
          f"({n_params(draft.decoder) - n_params(draft.shared):,} in its decoder)")
    info["draft_train"] = train_loop(
        "draft", draft, train, tok, args.draft_steps, args.batch_size, args.draft_lr,
        args.warmup, args.seed + 1, teacher=target, temperature=args.temperature,
        hard_weight=args.hard_weight, align_weight=args.align_weight, bf16=args.bf16)
    print("draft:", info["draft_train"])
    return draft


def train_pair(args, train, tok, t_start: float) -> dict:
    """Train, save and reload the target; distil and save the draft; write train_info.json. Returns the record."""
    from transformers import T5ForConditionalGeneration

    out = Path(args.out)
    info: dict = {}
    target = train_target(args, train, tok, info)
    # the draft is distilled from exactly the shipped target: its float16 weights, reloaded as float32
    save_model(target, tok, out / "target", torch.float16)
    target = T5ForConditionalGeneration.from_pretrained(out / "target", dtype=torch.float32).eval()
    for prm in target.parameters():
        prm.requires_grad_(False)
    draft = distil_draft(args, target, train, tok, info)
    save_model(draft, tok, out / "draft", torch.float16)
    info["train_wall_seconds"] = round(time.time() - t_start, 1)
    if args.target_from and "target_train" in info:
        info["train_wall_seconds_incl_target"] = round(
            info["train_wall_seconds"] + info["target_train"]["seconds"], 1)
    with open(out / "train_info.json", "w") as f:
        json.dump(info, f, indent=2)
    return info


def evaluate_pair(args, tok, heldout) -> tuple[dict, float]:
    """Held-out numbers of the saved (float16 -> float32) pair in --out, and the evaluation's wall time."""
    from transformers import T5ForConditionalGeneration

    out = Path(args.out)
    target = T5ForConditionalGeneration.from_pretrained(out / "target", dtype=torch.float32).eval()
    draft = T5ForConditionalGeneration.from_pretrained(out / "draft", dtype=torch.float32).eval()
    ev = heldout if not args.eval_max else heldout[: args.eval_max]
    t0 = time.time()
    numbers, samples = evaluate_heldout(target, draft, tok, ev)
    if args.task == "translate":   # the floor: what copying the English, or unrelated German, scores
        numbers.update(chrf_baselines(ev, prefix=gettext_data.TASK_PREFIX))
    eval_seconds = time.time() - t0
    for s, h, r in samples[:5]:
        print(f"SRC : {s}\nREF : {r}\nHYP : {h}\n")
    return {"heldout_examples": len(ev), **numbers}, eval_seconds


def write_metrics(args, data, numbers: dict, info: dict, train_seconds: float, eval_seconds: float) -> Path:
    """Write ``<out>/train_metrics.json``: the held-out numbers, the run's settings and environment, `info`."""
    train, _, train_keys, heldout_keys = data
    metrics = {
        "seed": args.seed,
        "heldout_examples": numbers["heldout_examples"],
        "train_examples": len(train),
        "train_groups": len(train_keys),
        "heldout_groups": heldout_keys,
        **{k: v for k, v in numbers.items() if k != "heldout_examples"},
        "train_wall_seconds": info.get("train_wall_seconds", round(train_seconds, 1)),
        "eval_wall_seconds": round(eval_seconds, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "args": vars(args),
        **info,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train_metrics.json"
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2)
    return path


def make_tokenizer(args, train: list[dict]):
    """The pair's tokenizer: ByT5's bytes, or a unigram model trained on the training examples (both sides).
    With --skip-train, the saved pair's own tokenizer."""
    if args.skip_train:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(Path(args.out) / "target")
    if args.tokenizer == "byte":
        return byte_tokenizer()
    return unigram_tokenizer([e["source"] for e in train] + [e["target"] for e in train], args.vocab_size)


def main(argv=None) -> int:
    """Run the pipeline (see the module docstring): data, target, draft, save, evaluate, train_metrics.json."""
    args = build_parser().parse_args(argv)
    check_args(args)
    t_start = time.time()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    data = prepare_data(args)
    tok = make_tokenizer(args, data[0])
    info: dict = {}
    if not args.skip_train:
        info = train_pair(args, data[0], tok, t_start)
    elif (Path(args.out) / "train_info.json").exists():
        info = json.loads((Path(args.out) / "train_info.json").read_text())
    train_seconds = time.time() - t_start
    numbers, eval_seconds = evaluate_pair(args, tok, data[1])
    print(summary_line(numbers))
    path = write_metrics(args, data, numbers, info, train_seconds, eval_seconds)
    print(f"wrote {path}; total wall {time.time() - t_start:.0f}s")
    return 0
