"""The tiny-pair training code (stairs_decoding.training): the task function, the data split, batching, and a
few steps of training and distillation on a tiny T5."""
import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

from stairs_decoding import cli
from stairs_decoding.errors import HarnessError
from stairs_decoding.training import main
from stairs_decoding.training.architecture import draft_from_target, make_config
from stairs_decoding.training.data import (TASK_PREFIX, build_examples, compress, compress_aligned,
                                           is_heldout_topic, sentences_of, windows_of)
from stairs_decoding.training.loop import batches, lr_at, train_loop

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BOUNDS = dict(min_src=40, max_src=132, min_tgt=32, max_tgt=128, heldout_mod=5)
# the 19 held-out topics named in models/tiny-t5/README.md
CARD_HELDOUT = ["assert", "assignment", "atom-identifiers", "attribute-access", "bitwise", "comparisons", "exprlists",
                "function", "identifiers", "imaginary", "integers", "objects", "operator-summary", "power", "return",
                "sequence-types", "strings", "typesmethods", "with"]


# -- compress ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sentence, expected", [
    # parenthetical spans go with the space before them; stop-words go, any case
    ("The value of x (an integer) is returned.", "value x returned."),
    ("Return the length (number of items) of an object.", "Return length object."),
    ("THE Result Is An error, as IS the WARNING!", "Result error, WARNING!"),
    # not inside identifiers, dotted names, hyphenated words or contractions
    ("Use os.path.join, the_value, is-a and it's for the module.", "Use os.path.join, the_value, is-a it's module."),
    ("Call it.method() on the object.", "Call it.method object."),
    ("Read self.the and x.is values.", "Read self.the x.is values."),
    # a stop-word right before a period counts as part of a dotted name, so it stays
    ("This is what it is.", "what is."),
    # whitespace runs become one space; no space before punctuation
    ("Keys   in\tthe mapping , sorted ; stable .", "Keys mapping, sorted; stable."),
    ("  Leading and trailing  ", "Leading trailing"),
])
def test_compress_known_outputs(sentence, expected):
    assert compress(sentence) == expected


def test_compress_aligned_indices_on_a_hand_checked_sentence():
    #          0123456789012345678 9
    sentence = "The cat (x) is here."
    out, idx = compress_aligned(sentence)
    assert out == "cat here."
    assert idx == [4, 5, 6, 11, 15, 16, 17, 18, 19]


def _real_sentences(n=400):
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics)[:40]:
        out.extend(sentences_of(topics[key], 40, 132))
    return out[:n]


def test_compress_aligned_is_compress_and_points_at_the_copied_characters():
    hand = ["The value of x (an integer) is returned.", "Keys   in\tthe mapping , sorted ; stable .",
            "Use os.path.join, the_value, is-a and it's for the module.", "  Leading and trailing  "]
    for sentence in hand + _real_sentences():
        out, idx = compress_aligned(sentence)
        assert out == compress(sentence)
        assert len(idx) == len(out)
        assert idx == sorted(idx) and len(set(idx)) == len(idx)   # a subsequence of the input
        assert all(sentence[i] == c or (c == " " and sentence[i].isspace()) for c, i in zip(out, idx)), sentence


# -- split and units ---------------------------------------------------------------------------------------------
def test_is_heldout_topic_is_the_sha1_split_the_card_names():
    for key in CARD_HELDOUT:
        assert is_heldout_topic(key, 5)
    for key in ("async", "break", "class", "calls", "booleans"):
        assert not is_heldout_topic(key, 5)
    # another modulus gives another split; the same inputs always give the same answer
    assert [is_heldout_topic(k, 3) for k in CARD_HELDOUT] == [is_heldout_topic(k, 3) for k in CARD_HELDOUT]
    assert [is_heldout_topic(k, 3) for k in CARD_HELDOUT] != [True] * len(CARD_HELDOUT)


def test_the_split_does_not_depend_on_the_seed():
    a = build_examples(**DEFAULT_BOUNDS, window_passes=1, seed=0)
    b = build_examples(**DEFAULT_BOUNDS, window_passes=1, seed=1)
    assert a[1] == b[1] and a[2] == b[2] and a[3] == b[3]   # held-out examples and both key lists
    assert a[0] != b[0]                                        # the seed moves the training windows
    assert set(CARD_HELDOUT) <= set(a[3])


@pytest.mark.parametrize("lo, hi", [(40, 132), (20, 60)])
def test_sentences_and_windows_respect_the_length_bounds(lo, hi):
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics)[:25])
    sents = sentences_of(text, lo, hi)
    wins = windows_of(text, lo, hi, random.Random(0), passes=2)
    assert len(sents) > 20 and len(wins) > 20
    for s in sents + wins:
        assert lo <= len(s) <= hi, s
        assert s.isascii()
    assert all(s[0].isupper() for s in sents)
    assert all(w == " ".join(w.split()) for w in wins)                    # whole words, single spaces
    assert wins == windows_of(text, lo, hi, random.Random(0), passes=2)   # deterministic under the rng


def test_sentences_of_packs_long_clauses_and_skips_code():
    long = ", ".join(["Alpha beta gamma delta"] * 10 + ["the end."])
    text = ("This introductory sentence is ordinary prose and long enough. " + long + "\n\n"
            + "    >>> indented code is not prose and must never be used.\n")
    sents = sentences_of(text, 10, 70)
    assert sents[0] == "This introductory sentence is ordinary prose and long enough."
    packed = sents[1:]
    assert ", ".join(packed) == long                                # comma pieces, in order, none lost
    assert all(len(s) <= 70 for s in packed) and len(packed) == 4
    assert all(len(a) + 2 + len(b.split(", ")[0]) > 70 for a, b in zip(packed, packed[1:]))   # greedy
    assert not any("indented" in s for s in sents)


def _topic(example_id: str, keys) -> str:
    key = example_id.rsplit("-", 1)[0]
    assert key in keys, example_id
    return key


def test_build_examples_keeps_heldout_topics_out_of_training():
    train, heldout, train_keys, heldout_keys = build_examples(**DEFAULT_BOUNDS, window_passes=2, seed=0)
    assert train and heldout and not set(train_keys) & set(heldout_keys)
    assert not {e["source"] for e in train} & {e["source"] for e in heldout}
    assert not {e["target"] for e in train} & {e["source"][len(TASK_PREFIX):] for e in heldout}
    for e in heldout:
        _topic(e["id"], heldout_keys)
    for e in train:
        _topic(e["id"].replace("-w", "-"), train_keys)
    for e in train + heldout:
        assert e["source"].startswith(TASK_PREFIX)
        assert e["target"] == compress(e["source"][len(TASK_PREFIX):])
        assert 40 <= len(e["source"]) - len(TASK_PREFIX) <= 132 and 32 <= len(e["target"]) <= 128
    assert len({e["id"] for e in train + heldout}) == len(train) + len(heldout)


@pytest.mark.skipif(sys.version_info[:3] != (3, 11, 7),
                    reason="the shipped data came from CPython 3.11.7's pydoc topics")
def test_default_settings_rebuild_the_shipped_heldout_file_and_the_card_counts():
    train, heldout, train_keys, heldout_keys = build_examples(**DEFAULT_BOUNDS, window_passes=4, seed=0)
    shipped = [json.loads(line) for line in (ROOT / "data" / "tiny_heldout.jsonl").read_text().splitlines()]
    assert heldout == shipped
    assert (len(train), len(heldout), len(train_keys), heldout_keys) == (6591, 205, 60, CARD_HELDOUT)


# -- batching and schedule -----------------------------------------------------------------------------------------
def test_batches_are_deterministic_full_and_length_bucketed():
    lens = [(i * 37) % 101 for i in range(103)]
    examples = list(range(103))
    a = batches(examples, 8, random.Random(3), lambda i: lens[i])
    assert a == batches(examples, 8, random.Random(3), lambda i: lens[i])
    assert a != batches(examples, 8, random.Random(4), lambda i: lens[i])
    assert all(len(b) == 8 for b in a)                                  # the ragged ends are dropped
    flat = [i for b in a for i in b]
    assert len(set(flat)) == len(flat) == 96                            # 12 full batches of one 160-example chunk
    assert all([lens[i] for i in b] == sorted(lens[i] for i in b) for b in a)
    assert batches(list(range(5)), 8, random.Random(0), lambda i: i) == [[0, 1, 2, 3, 4]]   # no full batch: all


def test_lr_warms_up_then_decays_to_five_percent():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.05)
    assert all(lr_at(s, 100, 1.0, 10) >= lr_at(s + 1, 100, 1.0, 10) for s in range(10, 100))


# -- a few steps of training and distillation ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run():
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    tok = ByT5Tokenizer()
    sents = _real_sentences(12)
    train = [{"id": str(i), "source": TASK_PREFIX + s, "target": compress(s)} for i, s in enumerate(sents)]
    torch.manual_seed(0)
    target = T5ForConditionalGeneration(make_config(32, 64, 2, 2))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    info = train_loop("target", target, train, tok, steps=4, batch_size=4, lr=1e-3, warmup=2, seed=0,
                      align_weight=1.0)
    return tok, train, target, before, info


def test_train_loop_takes_its_steps_and_changes_the_weights(tiny_run):
    _, _, target, before, info = tiny_run
    assert info["steps_done"] == 4
    assert math.isfinite(info["final_loss_ema"]) and info["final_loss_ema"] > 0
    assert math.isfinite(info["final_align_loss_ema"])
    after = target.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "encoder.block.0.layer.0.SelfAttention.q.weight" in changed and "shared.weight" in changed
    assert not target.training and target.config._attn_implementation == "sdpa"   # left as found for inference


def test_draft_from_target_shares_a_frozen_encoder_and_distils(tiny_run):
    tok, train, target, _, _ = tiny_run
    for prm in target.parameters():
        prm.requires_grad_(False)
    draft = draft_from_target(target, 1)
    assert len(draft.decoder.block) == 1 and draft.config.num_decoder_layers == 1
    assert len(draft.encoder.block) == len(target.encoder.block) == 2
    t_state, d_state = target.state_dict(), draft.state_dict()
    enc = [k for k in d_state if k.startswith("encoder.") or k == "shared.weight"]
    assert enc and all(torch.equal(d_state[k], t_state[k]) for k in enc)
    assert all(torch.equal(d_state[k], t_state[k]) for k in d_state if k.startswith("decoder.block.0."))
    assert not any(p.requires_grad for p in draft.encoder.parameters())
    assert any(p.requires_grad for p in draft.decoder.parameters())
    info = train_loop("draft", draft, train, tok, steps=3, batch_size=4, lr=1e-3, warmup=1, seed=1,
                      teacher=target, align_weight=1.0)
    assert info["steps_done"] == 3 and math.isfinite(info["final_loss_ema"]) and info["final_loss_ema"] >= 0
    after = draft.state_dict()
    assert all(torch.equal(after[k], t_state[k]) for k in enc)               # frozen through training
    assert not torch.equal(after["decoder.block.0.layer.0.SelfAttention.q.weight"],
                           t_state["decoder.block.0.layer.0.SelfAttention.q.weight"])


# -- user errors ---------------------------------------------------------------------------------------------------
def test_user_errors_are_one_line_before_any_work(tmp_path, capsys):
    with pytest.raises(HarnessError, match="--skip-train: no trained target or draft"):
        main(["--skip-train", "--out", str(tmp_path / "none"), "--data-out", str(tmp_path / "d")])
    with pytest.raises(HarnessError, match="--target-from"):
        main(["--target-from", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert cli.run(lambda: main(["--skip-train", "--out", str(tmp_path / "none")])) == 2
    assert capsys.readouterr().err.startswith("error: --skip-train")
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()
