"""Every method returns exactly the target's greedy tokens (fp32), on many prompts, k, lengths and batches."""
from collections import Counter

import pytest
import torch

from conftest import EOS, PAD, VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.methods import METHODS
from stairs_decoding.testing import related_draft

KS = (1, 2, 3, 5, 8)
LENGTHS = (1, 7, 40)
N_PROMPTS = 30
BATCH = 3
# From the registry: a newly registered method is tested by these lists.
EXACT = [m.name for m in METHODS.values() if m.exact]
EXACT_BATCHED = [m.name for m in METHODS.values() if m.exact and m.batch]
SPECULATIVE = [m.name for m in METHODS.values() if m.speculative]
SPECULATIVE_BATCHED = [m for m in SPECULATIVE if METHODS[m].batch]
ADAPTIVE = [m.name for m in METHODS.values() if "heuristic" in m.schedules and m.needs_draft]   # lookup: its own test


def _ks(method):
    return KS if METHODS[method].uses_k else KS[:1]


def _prompts(seed: int, arch: str):
    """30 random prompts of varied length, as 10 padded batches of 3 (T5: right padding, GPT-2: left)."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(N_PROMPTS // BATCH):
        lengths = torch.randint(3, 16, (BATCH,), generator=g)
        width = int(lengths.max())
        ids = torch.full((BATCH, width), PAD, dtype=torch.long)
        mask = torch.zeros((BATCH, width), dtype=torch.long)
        for b, n in enumerate(lengths.tolist()):
            row = torch.randint(2, VOCAB, (n,), generator=g)
            if arch == "t5":
                ids[b, :n], mask[b, :n] = row, 1
            else:
                ids[b, width - n:], mask[b, width - n:] = row, 1
        batches.append((ids, mask))
    return batches


def _hf_greedy(model, ids, mask, max_new_tokens, eos):
    out = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                         eos_token_id=eos if eos is not None else [VOCAB], pad_token_id=PAD)
    out = out[:, 1:] if model.config.is_encoder_decoder else out[:, ids.shape[1]:]
    rows = []
    for row in out.tolist():
        if eos is not None and eos in row:
            row = row[:row.index(eos) + 1]
        rows.append(row)
    return rows


class Case:
    """A target/draft pair, its prompts and the target's greedy reference for every (batch, length)."""

    def __init__(self, arch: str, draft_kind: str, eos_mode: str):
        make = tiny_t5 if arch == "t5" else tiny_gpt2
        self.target = make(0)
        self.draft = {"same": lambda: self.target,
                      "related": lambda: related_draft(self.target, 0.01 if arch == "t5" else 0.03),
                      "unrelated": lambda: make(7, d_model=32, layers=1)}[draft_kind]()
        self.batches = _prompts(11, arch)
        self.eos = None
        if eos_mode == "frequent":
            # Make EOS a token the target emits often, so rows stop early at varied lengths.
            counts = Counter()
            for ids, mask in self.batches:
                for row in generate(self.target, ids, attention_mask=mask, max_new_tokens=40, ignore_eos=True).tokens:
                    counts.update(set(row))
            self.eos = counts.most_common(1)[0][0]
        self.kwargs = {"ignore_eos": True} if self.eos is None else {"eos_token_id": self.eos}
        self.reference = {}
        for i, (ids, mask) in enumerate(self.batches):
            for n in LENGTHS:
                self.reference[i, n] = generate(self.target, ids, attention_mask=mask, max_new_tokens=n,
                                                **self.kwargs).tokens

    def rows(self, limit: int | None = None):
        """(batch index, row index, unpadded single-row prompt), the first `limit` prompts."""
        out = [(i, b, ids[b:b + 1, mask[b].bool()]) for i, (ids, mask) in enumerate(self.batches)
               for b in range(BATCH)]
        return out[:limit]


_CACHE = {}


def case(arch, draft, eos) -> Case:
    if (arch, draft, eos) not in _CACHE:
        _CACHE[arch, draft, eos] = Case(arch, draft, eos)
    return _CACHE[arch, draft, eos]


def _check(res, expected):
    s = res.stats
    assert res.tokens == expected
    assert s.new_tokens == sum(len(r) for r in expected)
    if not s.accepted:                        # a method without rounds (greedy, hf_greedy)
        assert s.rejections == 0 and s.draft_calls == 0
        return
    if s.row_accepted:                        # every row: its kept drafts + one target token per round it ran
        assert [sum(a) + len(a) for a in s.row_accepted] == [len(r) for r in expected]
        assert s.ragged == (len(expected) > 1)   # t5 and gpt2 batches take per-row acceptance
    else:
        assert sum(s.accepted) + s.rounds == max(len(r) for r in expected)
    assert s.target_calls == s.rounds
    assert all(0 <= a <= d for a, d in zip(s.accepted, s.drafted))


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_greedy_matches_transformers_generate(arch):
    c = case(arch, "related", "frequent")
    for i, (ids, mask) in enumerate(c.batches):
        assert c.reference[i, 40] == _hf_greedy(c.target, ids, mask, 40, c.eos)
    ids, mask = c.batches[0]          # and without EOS (fixed-length output)
    plain = generate(c.target, ids, attention_mask=mask, max_new_tokens=40, ignore_eos=True).tokens
    assert plain == _hf_greedy(c.target, ids, mask, 40, None)


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_references_are_not_degenerate(arch):
    """Equality against a constant output would prove nothing: the references must be varied."""
    c = case(arch, "same", "none")
    rows = [row for i in range(len(c.batches)) for row in c.reference[i, 40]]
    assert len({tuple(r) for r in rows}) == N_PROMPTS                      # every prompt its own output
    assert sum(len(set(r)) for r in rows) / len(rows) >= 8                 # ≥ 8 distinct tokens per 40
    assert Counter(t for r in rows for t in r).most_common(1)[0][1] < 0.2 * 40 * N_PROMPTS
    # With the frequent EOS, rows stop early and at varied lengths.
    lengths = [len(r) for i in range(len(c.batches)) for r in case(arch, "related", "frequent").reference[i, 40]]
    assert len(set(lengths)) >= 5 and min(lengths) < 20


@pytest.mark.parametrize("method", EXACT_BATCHED)
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_full_grid_batch_of_three(arch, method):
    """30 prompts (10 padded batches of 3) × every k × every length, frequent EOS, a draft of mixed quality."""
    c = case(arch, "related", "frequent")
    for i, (ids, mask) in enumerate(c.batches):
        for n in LENGTHS:
            for k in _ks(method):
                res = generate(c.target, ids, draft=c.draft, attention_mask=mask, method=method,
                               num_draft_tokens=k, max_new_tokens=n, **c.kwargs)
                _check(res, c.reference[i, n])


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_full_grid_batch_of_one(arch, method):
    """Every prompt alone × every k × every length, frequent EOS: all 30 for a batch-1-only method (hf_assisted),
    the first 10 for the others (their 30 are covered in batches of 3 above)."""
    c = case(arch, "related", "frequent")
    for i, b, ids in c.rows(limit=None if not METHODS[method].batch else 10):
        for n in LENGTHS:
            for k in _ks(method):
                res = generate(c.target, ids, draft=c.draft, method=method, num_draft_tokens=k,
                               max_new_tokens=n, **c.kwargs)
                _check(res, [c.reference[i, n][b]])


@pytest.mark.parametrize("method", SPECULATIVE)
@pytest.mark.parametrize("draft", ["same", "unrelated"])
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_extreme_drafts(arch, draft, method):
    """draft == target (all accepted) and an unrelated random draft (almost nothing accepted), no EOS."""
    c = case(arch, draft, "none")
    for k in KS:
        if not METHODS[method].batch:
            for i, b, ids in c.rows(limit=4):
                res = generate(c.target, ids, draft=c.draft, method=method, num_draft_tokens=k, max_new_tokens=40,
                               **c.kwargs)
                _check(res, [c.reference[i, 40][b]])
        else:
            for i, (ids, mask) in enumerate(c.batches[:4]):
                res = generate(c.target, ids, draft=c.draft, attention_mask=mask, method=method,
                               num_draft_tokens=k, max_new_tokens=40, **c.kwargs)
                _check(res, c.reference[i, 40])


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_acceptance_reflects_the_draft(arch):
    """draft == target: every draft kept; unrelated random draft: almost none."""
    same, other = case(arch, "same", "none"), case(arch, "unrelated", "none")
    ids, mask = same.batches[0]
    s = generate(same.target, ids, draft=same.draft, attention_mask=mask, method="stairs_cached",
                 num_draft_tokens=4, max_new_tokens=40, ignore_eos=True).stats
    assert s.rejections == 0 and s.acceptance_rate == 1.0 and s.rounds == 8
    s = generate(other.target, ids, draft=other.draft, attention_mask=mask, method="stairs_cached",
                 num_draft_tokens=4, max_new_tokens=40, ignore_eos=True).stats
    assert s.acceptance_rate < 0.3


@pytest.mark.parametrize("method", ADAPTIVE)
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_heuristic_schedule_is_exact_and_adapts(arch, method):
    c = case(arch, "same", "none")
    ids, mask = c.batches[1]
    res = generate(c.target, ids, draft=c.draft, attention_mask=mask, method=method, num_draft_tokens=1,
                   schedule="heuristic", max_new_tokens=40, ignore_eos=True)
    assert res.tokens == c.reference[1, 40]
    assert res.stats.drafted[:3] == [1, 3, 5]       # all accepted: k grows by 2 each round
    o = case(arch, "related", "frequent")
    res = generate(o.target, ids, draft=o.draft, attention_mask=mask, method=method, num_draft_tokens=5,
                   schedule="heuristic", max_new_tokens=40, eos_token_id=o.eos)
    assert res.tokens == o.reference[1, 40]
    assert len(set(res.stats.drafted[:-1])) > 1 and min(res.stats.drafted[:-1]) >= 1


def test_draft_greedy_is_the_drafts_own_greedy(t5_pair):
    target, draft = t5_pair
    ids = torch.randint(2, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    res = generate(target, ids, draft=draft, method="draft_greedy", max_new_tokens=20, eos_token_id=EOS)
    assert res.tokens == generate(draft, ids, max_new_tokens=20, eos_token_id=EOS).tokens
    assert res.stats.target_calls == 0 and res.stats.draft_calls > 0
