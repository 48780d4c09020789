"""Tasks: a config node → a list of examples `{"id", "source", "reference"}` (text) or `{"id", "input_ids"}`.

`task.loader` names a builder with `_target_`: `hub_examples` (a `datasets` hub set, e.g. WMT or CNN/DM),
`jsonl_examples` (the offline sets shipped in data/) or `random_token_examples` (seeded random prompts for
architecture-only timing: no tokenizer, no reference). `load_task` then selects `num_examples` (+ warm-up)
deterministically (`shuffle` with `seed`).
"""
from __future__ import annotations

import os
import random

from .errors import HarnessError, StairsError


def _get(row: dict, field: str):
    value = row
    for part in field.split("."):
        value = value[part]
    return value


def _rows_to_examples(rows, *, source_field: str, reference_field: str, id_field: str | None, prefix: str,
                      id_prefix: str) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        try:
            source, reference = _get(row, source_field), _get(row, reference_field)
        except (KeyError, TypeError):
            raise HarnessError(f"task rows have no field {source_field!r} / {reference_field!r} (set "
                               "task.loader.source_field / reference_field); "
                               f"fields are {sorted(row)}") from None
        ex_id = str(_get(row, id_field)) if id_field and id_field in row else f"{id_prefix}{i}"
        out.append({"id": ex_id, "source": prefix + source, "reference": reference})
    return out


def jsonl_examples(path: str, *, split: str = "train", source_field: str = "source",
                   reference_field: str = "target", id_field: str | None = "id", prefix: str = "") -> list[dict]:
    """A shipped JSONL file, read with `datasets.load_dataset("json", data_files=...)`."""
    import datasets

    if not os.path.isfile(path):
        raise HarnessError(f"task file {path!r} does not exist")
    check_jsonl(path)
    ds = datasets.load_dataset("json", data_files={split: path}, split=split)
    return _rows_to_examples(ds, source_field=source_field, reference_field=reference_field, id_field=id_field,
                             prefix=prefix, id_prefix=f"{split}-")


def check_jsonl(path: str) -> None:
    """Every non-blank line of a JSONL task file is one JSON object: else one error naming the file and the line."""
    import json

    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise HarnessError(f"task file {path}: line {n} is not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(row, dict):
                raise HarnessError(f"task file {path}: line {n} is a JSON {type(row).__name__}, not an object")


def hub_examples(path: str, *, name: str | None = None, split: str = "test", source_field: str,
                 reference_field: str, id_field: str | None = None, prefix: str = "",
                 limit: int | None = None) -> list[dict]:
    """A Hugging Face hub data set via `datasets.load_dataset` (cached sets work offline)."""
    import datasets

    from .models import set_offline_if_unreachable

    set_offline_if_unreachable()
    split_spec = f"{split}[:{int(limit)}]" if limit else split
    try:
        ds = datasets.load_dataset(path, name, split=split_spec)
    except Exception as e:  # noqa: BLE001 — datasets raises many types for "not available offline"
        raise HarnessError(f"cannot load data set {path!r} ({name}, {split}): {str(e).splitlines()[0] if str(e) else type(e).__name__}. "
                           "Run with hub access once to cache it, or use the shipped data: "
                           "python scripts/run.py experiment=tiny_cpu") from None
    return _rows_to_examples(ds, source_field=source_field, reference_field=reference_field, id_field=id_field,
                             prefix=prefix, id_prefix=f"{split}-")


def random_token_examples(*, length: int, vocab_size: int, seed: int = 0, low: int = 2,
                          limit: int | None = None) -> list[dict]:
    """`limit` prompts of `length` token ids drawn uniformly from [low, vocab_size) by one seeded generator (the
    same seed gives the same prompts); they only set the encoder's (or prompt's) cost."""
    import torch

    if limit is None:
        raise HarnessError("random_token_examples needs task.num_examples (a number of prompts), not null")
    if not 0 <= low < vocab_size or length < 1:
        raise HarnessError(f"random_token_examples: need length >= 1 and 0 <= low < vocab_size, got length={length}, "
                           f"low={low}, vocab_size={vocab_size}")
    g = torch.Generator().manual_seed(int(seed))
    return [{"id": f"random-{i}", "input_ids": torch.randint(low, vocab_size, (length,), generator=g).tolist(),
             "source": None, "reference": None} for i in range(int(limit))]


def load_task(node, *, extra: int = 0) -> list[dict]:
    """Examples for a task node: `num_examples` (+ `extra` more, used for warm-up when available)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # noqa: BLE001
        pass
    d = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else dict(node)
    n = d.get("num_examples")
    want = None if n is None else int(n) + int(extra)
    loader = dict(d["loader"])
    target = loader.get("_target_", "")
    if want is not None and ("random_token_examples" in target or (not d.get("shuffle") and "hub_examples" in target)):
        loader.setdefault("limit", want)
    try:
        examples = instantiate(loader)
    except InstantiationException as e:
        if isinstance(e.__cause__, StairsError):
            raise e.__cause__ from None
        raise HarnessError(f"cannot load task {d.get('name')!r}: {str(e).splitlines()[0]}") from None
    if d.get("shuffle"):
        random.Random(int(d.get("seed", 0))).shuffle(examples)
    if want is not None:
        examples = examples[:want]
    if not examples:
        raise HarnessError(f"task {d.get('name')!r} has no examples")
    return examples
