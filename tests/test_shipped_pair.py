"""The pair and data that ship with the repository: load offline, every method exact, card matches script."""
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch

from stairs_decoding import generate

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT / "models" / "tiny-t5"


@pytest.fixture(scope="module")
def pair():
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    target = T5ForConditionalGeneration.from_pretrained(PAIR / "target", dtype=torch.float32).eval()
    draft = T5ForConditionalGeneration.from_pretrained(PAIR / "draft", dtype=torch.float32).eval()
    return target, draft, AutoTokenizer.from_pretrained(PAIR / "target")


def test_shipped_pair_every_method_equals_greedy_on_heldout(pair):
    target, draft, tok = pair
    lines = (ROOT / "data" / "tiny_heldout.jsonl").read_text().splitlines()[:10]
    kept = {}   # (method, k) -> [accepted draft tokens, rejected rounds]
    for line in lines:
        ids = tok(json.loads(line)["source"], return_tensors="pt").input_ids
        ref = generate(target, ids, max_new_tokens=48).tokens
        assert ref[0], "greedy produced nothing"
        for method in ("stairs", "stairs_cached", "hf_assisted"):
            for k in (2, 4):
                res = generate(target, ids, draft=draft, method=method, num_draft_tokens=k, max_new_tokens=48)
                assert res.tokens == ref, (method, k, line[:60])
                tally = kept.setdefault((method, k), [0, 0])
                tally[0] += sum(res.stats.accepted)
                tally[1] += res.stats.rejections
    alpha = {key: a / (a + r) for key, (a, r) in kept.items()}
    # Same draft, same k, same acceptance rule: every method must see about the same acceptance. A method that
    # drafts from a corrupted cache stays exact, so only this shows it (HF assisted once ran at 0.25 here).
    for k in (2, 4):
        for method in ("stairs", "hf_assisted"):
            assert abs(alpha[method, k] - alpha["stairs_cached", k]) < 0.05, alpha


def test_model_card_training_command_is_accepted_by_the_script():
    card = (PAIR / "README.md").read_text()
    commands = re.findall(r"^python scripts/train_tiny_pair\.py[^\n]*", card, flags=re.M)
    assert commands, "the model card names no training command"
    parser = _train_script().build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[2:])
        assert args.seed is not None


def test_heldout_and_translation_sets_load_with_datasets():
    from datasets import load_dataset

    held = load_dataset("json", data_files=str(ROOT / "data" / "tiny_heldout.jsonl"), split="train")
    ende = load_dataset("json", data_files=str(ROOT / "data" / "en_de_sample.jsonl"), split="train")
    assert len(held) >= 200 and {"source", "target"} <= set(held.column_names)
    assert len(ende) >= 50 and all(s.startswith("translate English to German: ") for s in ende["source"])


def _train_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_tiny_pair
    finally:
        sys.path.pop(0)
    return train_tiny_pair


def test_heldout_references_are_the_task_function_and_alignment_is_exact():
    """The held-out references are compress(source); the guided-alignment targets copy the right bytes."""
    script = _train_script()
    prefix = script.TASK_PREFIX
    for line in (ROOT / "data" / "tiny_heldout.jsonl").read_text().splitlines():
        ex = json.loads(line)
        assert ex["source"].startswith(prefix)
        src = ex["source"][len(prefix):]
        out, idx = script.compress_aligned(src)
        assert out == script.compress(src) == ex["target"]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)  # a subsequence of the source
        assert all(src[i] == c or (c == " " and src[i].isspace()) for c, i in zip(out, idx))
        assert 32 <= len(ex["target"].encode()) <= 128
