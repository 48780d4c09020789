"""schedule="cost" (methods/_cost.py): each round's k maximises measured tokens per second. Its choices are tested on
given measurements (no timing in a test); its output is exact like every schedule's (the architecture matrix and
the engine tests run every schedule a method takes)."""
import pytest
import torch

from stairs_decoding import generate
from stairs_decoding.methods import METHODS, _cost
from stairs_decoding.testing import VOCAB


class _Clock:
    def __call__(self):
        return 0.0


class _State:
    def __init__(self, model):
        self.model, self.clock, self.seconds = model, _Clock(), 0.0


class _Seq:
    tokens = torch.zeros(1, 1, dtype=torch.long)


def _policy(seconds: dict, alpha: float, cap: int = 8, draft_s: float = 0.1):
    target, draft = _State(torch.nn.Linear(1, 1)), _State(torch.nn.Linear(1, 1))
    policy = _cost.CostPolicy(target, draft, _Seq(), cap, "test")
    policy.memo.update(seconds=dict(seconds), draft_s=draft_s)
    policy.counts = [alpha * 100, (1 - alpha) * 100]
    return policy


def test_the_first_round_drafts_a_few_tokens_while_nothing_is_measured():
    policy = _policy({}, 0.5)
    assert policy.choose(8) == _cost.FIRST_K and policy.choose(2) == 2


def test_flat_verification_and_high_acceptance_draft_to_the_cap():
    # a round costs 1 s plus 0.1 s per drafted token: at alpha 0.9 more drafts always pay
    seconds = {k: 1.0 + 0.1 * k for k in range(9)}
    assert _policy(seconds, 0.9).choose(8) == 8
    assert _policy(seconds, 0.9).choose(5) == 5                      # never past what the rows may keep


def test_a_verification_step_that_doubles_the_cost_stops_k_below_it():
    # verifying 4 or more tokens costs twice (MKL's small-M float32 path): k = 2 is the best round at alpha 0.7
    seconds = {k: (1.0 if k + 1 <= 3 else 2.0) + 0.1 * k for k in range(9)}
    assert _policy(seconds, 0.7).choose(8) == 2


def test_low_acceptance_falls_back_to_greedy_steps_and_still_probes():
    seconds = {k: 1.0 + 0.3 * k for k in range(9)}
    policy = _policy(seconds, 0.05)
    chosen = [policy.choose(8) for _ in range(2 * _cost.PROBE_EVERY)]
    assert chosen.count(0) == len(chosen) - 2 and all(k > 0 for k in chosen[_cost.PROBE_EVERY - 1::_cost.PROBE_EVERY])


def test_unmeasured_k_is_estimated_optimistically_and_a_noisy_high_one_is_capped():
    policy = _policy({1: 1.0, 2: 5.0, 6: 1.8}, 0.8, draft_s=0.1)
    assert policy._seconds(3) == pytest.approx(1.8)       # 5.0 + 0.1 from k=2, but a round of 6 took 1.8
    assert policy._seconds(2) == pytest.approx(1.8)
    assert policy._seconds(8) == pytest.approx(2.0)       # 1.8 + 2 × 0.1: verification assumed as cheap as at 6


def test_expected_tokens_of_a_round():
    assert _cost.expected_tokens(0.0, 5) == 1.0
    assert _cost.expected_tokens(1.0, 5) == 6.0
    assert _cost.expected_tokens(0.5, 2) == pytest.approx(1.75)


def test_cost_rounds_are_exact_and_record_their_k(t5_pair):
    target, draft = t5_pair
    ids = torch.randint(3, VOCAB, (3, 9), generator=torch.Generator().manual_seed(0))
    want = generate(target, ids, max_new_tokens=24).tokens
    for method in (m.name for m in METHODS.values() if "cost" in m.schedules):
        for d in (target, draft):
            got = generate(target, ids, draft=d, method=method, num_draft_tokens=6, schedule="cost",
                           max_new_tokens=24)
            assert got.tokens == want
            assert all(0 <= n <= 6 for n in got.stats.drafted)
            assert sum(a + 1 for a in got.stats.accepted) >= max(len(t) for t in want) > 0


def test_a_call_starts_from_the_remembered_acceptance_and_learns_its_own():
    target, draft = _State(torch.nn.Linear(1, 1)), _State(torch.nn.Linear(1, 1))
    first = _cost.CostPolicy(target, draft, _Seq(), 4, "test")
    assert first.alpha == pytest.approx(0.5)                      # nothing remembered yet: 1 accepted, 1 rejected
    first.memo.update(accepted=90.0, rejected=10.0)
    second = _cost.CostPolicy(target, draft, _Seq(), 4, "test")
    assert second.alpha == pytest.approx(0.9)
    second.counts[1] += 40                                        # this call's draft is rejected often
    assert second.alpha < 0.2
