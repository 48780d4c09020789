"""The architecture matrix: every method equals transformers' own `model.generate(do_sample=False, num_beams=1)`.

25 families (tests/archs.py), tiny random models built from their transformers configs — T5 and gated T5 v1.1,
BART, mBART (and one without decoder_start_token_id), Marian, Pegasus, Llama, Qwen2/3, Mistral and Gemma2 with
sliding windows shorter than the output, Gemma, Phi, OPT, GPT-NeoX, GPT-2, GPT-J, GPTBigCode (multi-query),
Mixtral (MoE), OLMo, Cohere, Starcoder2, Falcon, Bloom (ALiBi) — with the target itself, a perturbed copy and
an unrelated model as drafts, a padded batch of 3 (left padding for decoder-only, right for encoder-decoder) and
single prompts, an EOS the target emits mid-generation, k ∈ {1, 2, 4, 7} and max_new_tokens ∈ {1, 5, 30}.
"""
import os
from collections import Counter

import pytest
import torch

import archs
from stairs_decoding import generate
from stairs_decoding.methods import METHODS

# The lowest-transformers stage of .ci/run (STAIRS_MATRIX=lowest) checks every family and method at k ∈ {1, 4}: what
# a transformers version changes is the model code and the cache, which any k exercises; this run checks all four.
KS = (1, 4) if os.environ.get("STAIRS_MATRIX") == "lowest" else (1, 2, 4, 7)
LENGTHS = (1, 5, 30)
DRAFTS = ("same", "perturbed", "unrelated")
# From the registry: speculative methods that take a batch, under each schedule they support; those that take
# single prompts only; exact methods without a draft.
BATCHED = tuple((m.name, s) for m in METHODS.values() if m.speculative and m.batch for s in m.schedules)
SINGLE = tuple(m.name for m in METHODS.values() if m.speculative and not m.batch)
NO_DRAFT = tuple(m.name for m in METHODS.values() if m.exact and not m.needs_draft)


def _batch(name: str, seed: int = 7):
    """3 prompts of lengths 4..11 as one padded batch."""
    g = torch.Generator().manual_seed(seed)
    lengths = [4, 11, 7]
    width = max(lengths)
    ids = torch.full((3, width), archs.PAD, dtype=torch.long)
    mask = torch.zeros((3, width), dtype=torch.long)
    for b, n in enumerate(lengths):
        row = torch.randint(3, archs.VOCAB, (n,), generator=g)
        if archs.is_encoder_decoder(name):
            ids[b, :n], mask[b, :n] = row, 1
        else:
            ids[b, width - n:], mask[b, width - n:] = row, 1
    return ids, mask


def hf_reference(model, ids, mask, max_new_tokens, eos):
    """transformers' greedy output, per row, cut after the first EOS (what our methods return)."""
    out = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                         eos_token_id=eos, pad_token_id=archs.PAD)
    start = 1 if model.config.is_encoder_decoder else ids.shape[1]
    rows = []
    for row in out[:, start:].tolist():
        if eos in row:
            row = row[:row.index(eos) + 1]
        rows.append(row)
    return rows


def _mid_eos(name, model, ids, mask) -> int:
    """A token the target emits often but not first: rows then stop at different lengths. The unstopped outputs
    must be varied (three different rows, each with many distinct tokens), or equality would prove little."""
    out = hf_reference(model, ids, mask, 30, archs.VOCAB + 7)      # an id that never occurs: no stop
    assert len({tuple(r) for r in out}) == 3 and all(len(set(r)) >= 8 for r in out), \
        f"{name}: reference outputs are not varied: {out}"
    counts = Counter(t for row in out for t in row[2:])
    for token, _ in counts.most_common(12):
        ends = {row.index(token) + 1 if token in row else 31 for row in out}
        if len(ends) > 1 and min(ends) <= 30:
            return token
    raise AssertionError(f"{name}: no token stops the rows at different lengths: {out}")


def _drafts(name, target):
    return {"same": target, "perturbed": archs.perturbed(target),
            "unrelated": archs.build(name, seed=3, size="draft")}


def run_matrix(name: str) -> tuple[int, list[str]]:
    """(number of generations compared, mismatch/crash descriptions) for one architecture."""
    target = archs.build(name)
    drafts = _drafts(name, target)
    ids, mask = _batch(name)
    eos = _mid_eos(name, target, ids, mask)
    single = ids[1:2, mask[1].bool()]
    refs = {n: hf_reference(target, ids, mask, n, eos) for n in LENGTHS}
    refs_single = {n: hf_reference(target, single, None, n, eos) for n in LENGTHS}
    lengths = {len(r) for r in refs[30]}
    assert len(lengths) > 1 and min(lengths) < 30, f"{name}: EOS does not stop rows at different lengths"
    problems, count = [], 0

    def check(what, expected, **kw):
        nonlocal count
        count += 1
        try:
            got = generate(target, eos_token_id=eos, **kw).tokens
        except Exception as e:  # noqa: BLE001 — a crash is a finding, reported with the case
            problems.append(f"{what}: crash {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            return
        if got != expected:
            problems.append(f"{what}: {got} != {expected}")

    for n in LENGTHS:
        for method in NO_DRAFT:
            check(f"{method} batch3 n={n}", refs[n], input_ids=ids, attention_mask=mask, method=method,
                  max_new_tokens=n)
            check(f"{method} single n={n}", refs_single[n], input_ids=single, method=method, max_new_tokens=n)
    for dname, draft in drafts.items():
        for k in KS:
            for n in LENGTHS:
                for method, schedule in BATCHED:
                    if dname != "same" and not METHODS[method].needs_draft:
                        continue                      # lookup reads no draft: once is enough
                    check(f"{method}/{schedule} {dname} k={k} batch3 n={n}", refs[n], input_ids=ids,
                          attention_mask=mask, draft=draft, method=method, num_draft_tokens=k, max_new_tokens=n,
                          schedule=schedule)
                for method in SINGLE:
                    check(f"{method} {dname} k={k} single n={n}", refs_single[n], input_ids=single, draft=draft,
                          method=method, num_draft_tokens=k, max_new_tokens=n)
            check(f"stairs_cached {dname} k={k} single n=30", refs_single[30], input_ids=single, draft=draft,
                  method="stairs_cached", num_draft_tokens=k, max_new_tokens=30)
    return count, problems


@pytest.mark.parametrize("name", list(archs.ARCHS))
def test_every_method_equals_transformers_generate(name):
    count, problems = run_matrix(name)
    assert not problems, f"{name}: {len(problems)} of {count} generations differ or crash:\n" + "\n".join(problems[:20])


def test_the_matrix_covers_what_it_claims():
    names = set(archs.ARCHS)
    assert len(names) >= 20
    assert sum(archs.is_encoder_decoder(n) for n in names) >= 6
    for needed in ("t5", "t5_v1_1", "bart", "marian", "mistral_sw", "gemma2_sw", "gpt_bigcode", "mixtral", "bloom",
                   "mbart_no_start"):
        assert needed in names
    sw = archs.build("mistral_sw").config.sliding_window
    assert sw is not None and sw < 30                                   # the output runs past the window
