"""Acceptance statistics that cannot be impossible, for every method and k ∈ {1, 2, 4}.

A round keeps 0..k draft tokens and makes 1..k+1 new tokens; α is a rate; the rounds add up to the output.
hf_assisted reads its statistics off transformers' own loop (forward hooks on both models), so a change in how
transformers passes the cache (5.24: `cache=` instead of `past_key_values=`) shows up here as numbers that cannot
be, while the tokens stay exact. On the same draft and prompts, at batch 1 with a constant k, HF assisted
generation and stairs_cached run the same algorithm and must report the same acceptance, round by round.
"""
import pytest
import torch

from conftest import VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.methods import METHODS
from stairs_decoding.testing import related_draft

KS = (1, 2, 4)
MAX_NEW = 24


_PAIRS = {}


def pair(arch):
    """Target, a draft that agrees most but not all of the time, and 6 prompts."""
    if arch not in _PAIRS:
        target = tiny_t5(0) if arch == "t5" else tiny_gpt2(0)
        draft = related_draft(target, 0.02 if arch == "t5" else 0.05)
        g = torch.Generator().manual_seed(21)
        prompts = [torch.randint(2, VOCAB, (1, int(n)), generator=g) for n in torch.randint(3, 14, (6,), generator=g)]
        _PAIRS[arch] = (target, draft, prompts)
    return _PAIRS[arch]


def _runs(arch, method, k, **kw):
    target, draft, prompts = pair(arch)
    return [generate(target, ids, draft=draft if METHODS[method].needs_draft else None, method=method,
                     num_draft_tokens=k, max_new_tokens=MAX_NEW, **kw) for ids in prompts]


# every registered method (a k-less one once), so a newly registered method is checked too
CELLS = [(m.name, k) for m in METHODS.values() for k in (KS if m.uses_k else KS[:1])]


@pytest.mark.parametrize("method,k", CELLS)
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
@pytest.mark.parametrize("eos", ["ignore_eos", "with_eos"])
def test_statistics_are_possible(arch, method, k, eos):
    kw = {"ignore_eos": True} if eos == "ignore_eos" else {"eos_token_id": 5}
    for res in _runs(arch, method, k, **kw):
        s, n_out = res.stats, len(res.tokens[0])
        assert s.new_tokens == n_out
        if not METHODS[method].speculative:
            assert s.accepted == [] and s.acceptance_rate is None
            assert s.target_calls == (0 if not METHODS[method].uses_target else s.target_calls) and s.rejections == 0
            continue
        assert s.rounds >= 1 and len(s.drafted) == s.rounds
        assert all(0 <= d <= k for d in s.drafted), s.drafted
        assert all(0 <= a <= d for a, d in zip(s.accepted, s.drafted)), (s.accepted, s.drafted)
        assert all(1 <= a + 1 <= k + 1 for a in s.accepted)          # new tokens per round
        assert sum(s.accepted) + s.rounds == n_out                    # every round adds its accepted + 1
        assert s.target_calls == s.rounds
        assert 0 <= s.rejections <= s.rounds
        assert s.acceptance_rate is None or 0.0 <= s.acceptance_rate <= 1.0
        assert s.mean_accepted is None or 0.0 <= s.mean_accepted <= k


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_hf_assisted_reports_the_acceptance_stairs_cached_reports(arch, k):
    hf = _runs(arch, "hf_assisted", k, ignore_eos=True)
    ours = _runs(arch, "stairs_cached", k, ignore_eos=True)
    for a, b in zip(hf, ours):
        assert a.tokens == b.tokens
        assert a.stats.accepted == b.stats.accepted
        assert a.stats.drafted == b.stats.drafted
        assert a.stats.rejections == b.stats.rejections
    alphas = [r.stats.acceptance_rate for r in ours]
    # the draft must be neither always right nor always wrong, or agreement proves little
    assert 0.2 < sum(a for a in alphas if a is not None) / len(alphas) < 0.98, alphas


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_hf_assisted_counts_a_last_round_that_ended_on_the_targets_eos_as_a_rejection(arch):
    """With EOS active (ids that end many of these outputs), the last round's rejection is the same in both: a
    round whose last token is the target's own EOS, where the draft proposed another token, was a rejection; an EOS
    the draft proposed and the target accepted was not. (Counting neither inflated hf_assisted's α.)"""
    ended_on_eos = 0
    for k in (2, 4):
        for eos in (5, 9, 11):
            hf = _runs(arch, "hf_assisted", k, eos_token_id=eos)
            ours = _runs(arch, "stairs_cached", k, eos_token_id=eos)
            for a, b in zip(hf, ours):
                assert a.tokens == b.tokens and a.stats.accepted == b.stats.accepted
                assert a.stats.drafted == b.stats.drafted
                assert a.stats.rejections == b.stats.rejections, (k, eos, a.tokens, a.stats.accepted)
                ended_on_eos += a.tokens[0][-1:] == [eos]
    assert ended_on_eos >= 3          # outputs that end on EOS are there, or the comparison proves little


def test_the_transformers_baselines_receive_the_callers_all_ones_mask():
    """A decoder-only prompt holding the pad id (pad != EOS, as in Llama-style models) with an all-ones mask:
    transformers' generate infers another mask when given none, so the baselines must get the mask as given, and
    return what model.generate returns with it, as our methods do."""
    target = tiny_gpt2(0)
    target.generation_config.pad_token_id = 7                  # pad != eos (1), and in the prompt below
    draft = related_draft(target, 0.05)
    draft.generation_config.pad_token_id = 7
    ids = torch.tensor([[12, 7, 40, 7, 9, 33]])
    mask = torch.ones_like(ids)
    want = target.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=12,
                           pad_token_id=7)[0, ids.shape[1]:].tolist()
    unmasked = target.generate(ids, do_sample=False, num_beams=1, max_new_tokens=12,
                               pad_token_id=7)[0, ids.shape[1]:].tolist()
    assert want != unmasked                       # the mask matters here, or this test proves nothing
    for method in [m.name for m in METHODS.values() if m.exact]:
        res = generate(target, ids, attention_mask=mask, draft=draft if METHODS[method].needs_draft else None,
                       method=method, num_draft_tokens=2, max_new_tokens=12, ignore_eos=True)
        assert res.tokens[0] == want, method
