"""The shared pieces on their own: accept(), the commit rules, stats, and every bad-input error."""
import copy

import pytest
import torch

from conftest import EOS, VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import GenerationInputError, generate
from stairs_decoding.compat import hook_cache
from stairs_decoding.methods import METHODS
from stairs_decoding.methods._speculative import accept, agreement, next_k
from stairs_decoding.methods._state import Sequence

T = torch.tensor


# -- agreement(): the longest agreeing prefix, per row -------------------------------------------------------
@pytest.mark.parametrize("drafts,preds,expected", [
    ([[5, 6, 7]], [[5, 6, 7, 8]], 3),          # all match: keep all three, then the target's 8
    ([[5, 6, 7]], [[9, 6, 7, 8]], 0),          # none: the first already differs
    ([[5, 6, 7]], [[5, 9, 7, 8]], 1),          # mismatch in the middle: later agreement does not count
    ([[5, 6, 7]], [[5, 6, 9, 8]], 2),
    ([[]], [[4]], 0),                          # no drafts: a plain target step
])
def test_agreement_single_row(drafts, preds, expected):
    d = T(drafts, dtype=torch.long).reshape(1, -1)
    assert agreement(d, T(preds)).tolist() == [expected]


def _round(seq, drafts, preds):
    from stairs_decoding.stats import DecodingStats

    rows = int(seq.rows.max()) + 1                     # input rows (some may have left the batch)
    stats = DecodingStats(row_accepted=[[] for _ in range(rows)], row_rejections=[0] * rows)
    accept(seq, T(drafts), T(preds), stats)
    return stats


def test_lockstep_batch_takes_minimum_over_running_rows():
    drafts = [[5, 6, 7], [5, 6, 7], [1, 1, 1]]
    preds = [[5, 6, 7, 8], [5, 0, 7, 8], [2, 2, 2, 2]]
    seq = Sequence(T([[0], [0], [0]]), None, max_new_tokens=10, eos_ids=None, pad_id=0)
    st = _round(seq, drafts, preds)
    assert seq.outputs() == [[5], [5], [2]] and st.row_rejections == [0, 0, 1]   # only row 2 disagreed first
    seq = Sequence(T([[0], [0], [0]]), None, max_new_tokens=10, eos_ids=None, pad_id=0)
    seq.finished[2] = True                                                     # a finished row is ignored
    _round(seq, drafts, preds)
    assert seq.outputs()[:2] == [[5, 6], [5, 0]]


def test_ragged_batch_keeps_each_rows_prefix_and_right_aligns():
    """Per-row acceptance: each row commits its own agreed drafts + the target's token; rows that advanced less
    are shifted right (left padding, masked), positions count from each row's first real token."""
    seq = Sequence(T([[0], [0], [0]]), None, max_new_tokens=10, eos_ids=T([EOS]), pad_id=0, ragged=True)
    st = _round(seq, [[5, 6, 7], [5, 6, 7], [5, EOS, 7]], [[5, 6, 7, 8], [5, 0, 7, 8], [5, EOS, 3, 3]])
    assert seq.outputs() == [[5, 6, 7, 8], [5, 0], [5, EOS]]
    assert seq.tokens.tolist() == [[0, 5, 6, 7, 8], [0, 0, 0, 5, 0], [0, 0, 0, 5, EOS]]
    assert seq.mask.tolist() == [[1] * 5, [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert seq.position_ids(3, 5).tolist() == [[3, 4], [1, 2], [1, 2]]
    assert st.row_accepted == [[3], [1], [1]] and st.row_rejections == [0, 1, 0]   # row 2 stopped at EOS
    assert seq.finished.tolist() == [False, False, True]
    shift, old, valid, moved = seq.last_shift
    assert shift.tolist() == [0, 2, 2] and old == 1 and valid.tolist() == [3, 1, 2] and moved.tolist() == [1, 1, 1]
    _round(seq, [[9], [9], [9]], [[9, 4], [3, 3], [0, 0]])
    assert seq.outputs() == [[5, 6, 7, 8, 9, 4], [5, 0, 3], [5, EOS]]
    assert seq.tokens[2, -2:].tolist() == [0, 0]               # a finished row is padded on the right, not moved
    keep = seq.drop_finished()                    # compaction is off unless asked for
    assert keep is None


def test_ragged_rows_stop_at_their_own_max_new_tokens():
    seq = Sequence(T([[0], [0]]), None, max_new_tokens=3, eos_ids=None, pad_id=0, ragged=True, compact=True)
    _round(seq, [[5, 6, 7]], [[5, 6, 7, 8], [1, 2, 3, 4]])
    assert seq.outputs() == [[5, 6, 7], [1]] and seq.finished.tolist() == [True, False]
    assert seq.remaining == 2
    keep = seq.drop_finished()
    assert keep.tolist() == [1] and seq.rows.tolist() == [1]
    _round(seq, [[2, 9]], [[2, 3, 4]])         # the kept row only
    assert seq.done and seq.outputs() == [[5, 6, 7], [1, 2, 3]]


def _seq(max_new_tokens=10, eos=(EOS,)):
    return Sequence(T([[0], [0]]), None, max_new_tokens=max_new_tokens,
                    eos_ids=T(list(eos)) if eos else None, pad_id=0)


def test_commit_eos_inside_accepted_part_stops_that_row_only():
    seq = _seq()
    emitted = seq.append(T([[5, EOS, 7, 8], [5, 6, 7, 8]]))
    assert emitted == 4 and seq.outputs() == [[5, EOS], [5, 6, 7, 8]]
    assert seq.finished.tolist() == [True, False] and not seq.done
    seq.append(T([[9, 9], [EOS, 3]]))                   # finished rows are padded, never extended
    assert seq.outputs() == [[5, EOS], [5, 6, 7, 8, EOS]] and seq.done


def test_commit_max_new_tokens_ends_generation():
    seq = _seq(max_new_tokens=3)
    seq.append(T([[5, 6], [5, 6]]))
    assert seq.remaining == 1 and not seq.done
    seq.append(T([[7], [7]]))
    assert seq.done and seq.outputs() == [[5, 6, 7], [5, 6, 7]]


def test_round_is_cut_to_the_tokens_left(t5_pair):
    """max_new_tokens cuts the round short: never more drafts than tokens left, and no overshoot."""
    target, _ = t5_pair
    ids = torch.randint(2, VOCAB, (1, 8), generator=torch.Generator().manual_seed(0))
    res = generate(target, ids, draft=target, method="stairs_cached", num_draft_tokens=8, max_new_tokens=11,
                   ignore_eos=True)
    assert res.stats.drafted == [8, 1] and res.stats.accepted == [8, 1] and res.stats.new_tokens == 11


def test_next_k_schedules():
    assert next_k(4, True, "constant") == 4 and next_k(4, False, "constant") == 4
    assert next_k(4, True, "heuristic") == 6 and next_k(4, False, "heuristic") == 3
    assert next_k(1, False, "heuristic") == 1
    assert next_k(4, True, "confidence") == 4 and next_k(4, False, "confidence") == 4


def test_stats_acceptance_rate_and_dict(t5_pair):
    target, draft = t5_pair
    ids = torch.randint(2, VOCAB, (1, 8), generator=torch.Generator().manual_seed(1))
    s = generate(target, ids, draft=draft, method="stairs", max_new_tokens=20, ignore_eos=True).stats
    d = s.to_dict()
    assert d["rounds"] == s.target_calls
    assert s.acceptance_rate == sum(s.accepted) / (sum(s.accepted) + s.rejections)
    assert 0 < s.target_seconds and 0 < s.draft_seconds and s.target_seconds + s.draft_seconds <= s.total_seconds


# -- bad input: one clear error each, raised before any generation work -------------------------------
@pytest.fixture()
def no_forward(t5_pair, monkeypatch):
    """Any model call during a bad-input check is a bug: the check must come first."""
    target, draft = t5_pair

    def boom(*a, **k):
        raise AssertionError("a model ran before the input was validated")
    for m in (target, draft):
        monkeypatch.setattr(m, "forward", boom)
        monkeypatch.setattr(m.get_encoder(), "forward", boom)
    return target, draft


IDS = torch.randint(2, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "beam"}, "unknown method 'beam'; valid methods: " + ", ".join(METHODS)),
    ({"method": "stairs", "draft": None}, "method 'stairs' needs a draft model"),
    ({"method": "stairs_cached", "num_draft_tokens": 0}, "num_draft_tokens (k) must be an integer >= 1, got 0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be an integer >= 1, got 0"),
    ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, "empty prompt"),
    ({"attention_mask": torch.zeros(1, 6, dtype=torch.long)}, "empty prompt: row 0"),
    ({"do_sample": "yes"}, "do_sample must be True or False, got 'yes'"),
    ({"temperature": 0.7}, "temperature=0.7 only applies to sampling: pass do_sample=True"),
    ({"do_sample": True, "temperature": -1.0}, "temperature must be a number >= 0 (0 = greedy), got -1.0"),
    ({"num_beams": 4}, "beam and contrastive search are not supported"),
    ({"method": "stairs", "schedule": "linear"}, "unknown schedule 'linear'"),
    ({"method": "hf_assisted", "input_ids": IDS.repeat(2, 1)}, "supports batch size 1 only, got 2"),
    ({"method": "stairs_cached", "num_branches": 2},
     "num_branches=2 does not apply to method 'stairs_cached' (it applies to: stairs_tree)"),
    ({"method": "lookup", "max_ngram": 0}, "max_ngram must be an integer >= 1, got 0"),
    ({"method": "lookup", "max_ngram": 2, "min_ngram": 3}, "min_ngram=3 is larger than max_ngram=2"),
    ({"method": "stairs_tree", "num_branches": 1.5}, "num_branches must be an integer >= 1, got 1.5"),
    ({"method": "stairs_cached", "confidence_threshold": 0.5},
     "confidence_threshold=0.5 applies to schedule='confidence' only (got 'constant')"),
    ({"method": "stairs_cached", "schedule": "confidence", "confidence_threshold": 1.0},
     "confidence_threshold must be a probability in (0, 1), got 1.0"),
    ({"method": "lookup", "schedule": "confidence"}, "schedule='confidence' is not supported by 'lookup'"),
])
def test_bad_input_is_one_clear_error(no_forward, kwargs, message):
    target, draft = no_forward
    kwargs = {"draft": draft, "input_ids": IDS, **kwargs}
    with pytest.raises(GenerationInputError) as err:
        generate(target, kwargs.pop("input_ids"), **kwargs)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_vocabulary_mismatch_names_both_sizes(no_forward):
    target, _ = no_forward
    other = tiny_t5(3, d_model=32, layers=1, vocab=200)
    with pytest.raises(GenerationInputError, match="target has 128 tokens, draft has 200"):
        generate(target, IDS, draft=other, method="stairs")


def test_prompt_longer_than_the_model_accepts():
    gpt = tiny_gpt2(0)                                   # 256 positions
    with pytest.raises(GenerationInputError, match="exceeds the target's 256 positions"):
        generate(gpt, torch.ones(1, 250, dtype=torch.long) * 5, max_new_tokens=10)
    t5 = tiny_t5(0)
    t5.config.n_positions = 16                           # as the hub's T5 configs declare (512)
    with pytest.raises(GenerationInputError, match="prompt has 20 tokens but the target accepts at most 16"):
        generate(t5, torch.ones(1, 20, dtype=torch.long) * 5)


def test_training_mode_and_mixed_architectures_are_refused(t5_pair):
    target, _ = t5_pair
    with pytest.raises(GenerationInputError, match="both be encoder-decoder or both decoder-only"):
        generate(target, IDS, draft=tiny_gpt2(0, vocab=VOCAB), method="stairs")
    live = tiny_t5(4).train()
    with pytest.raises(GenerationInputError, match="training mode"):
        generate(live, IDS)


def test_unknown_keyword_is_a_type_error(t5_pair):
    with pytest.raises(TypeError, match="unexpected keyword argument 'beams'"):
        generate(t5_pair[0], IDS, beams=2)


def test_draft_sharing_the_target_encoder_runs_it_once_and_stays_exact():
    """models.share_encoder: a draft whose encoder equals the target's reuses the target's encoder output."""
    from stairs_decoding.models import share_encoder

    target = tiny_t5(0)
    draft = copy.deepcopy(target)   # same encoder weights; perturb the decoder so the draft is imperfect
    with torch.no_grad():
        for prm in draft.decoder.block.parameters():   # not the shared embedding
            prm.add_(0.05 * torch.randn_like(prm))
    assert not share_encoder(target, tiny_t5(1))          # different weights: left alone
    assert share_encoder(target, draft) and draft.get_encoder() is target.get_encoder()

    calls = []
    hook = target.get_encoder().register_forward_hook(lambda *a: calls.append(1))
    try:
        gen = torch.Generator().manual_seed(3)
        for _ in range(5):
            ids = torch.randint(3, VOCAB, (2, 9), generator=gen)
            ref = generate(target, ids, max_new_tokens=20)
            calls.clear()
            for method in ("stairs", "stairs_cached"):
                res = generate(target, ids, draft=draft, method=method, num_draft_tokens=3, max_new_tokens=20)
                assert res.tokens == ref.tokens, method
            assert len(calls) == 2                      # one encoder pass per generate() call, not two
    finally:
        hook.remove()


@pytest.mark.parametrize("pair", ["t5_pair", "gpt2_pair"])
def test_hf_assisted_draft_never_refeeds_what_its_cache_holds(pair, request):
    """The assistant's cache never holds more positions than the sequence has (transformers 5.x re-fed an
    encoder-decoder assistant's whole decoder sequence on top of its cache each round when generate() got no
    decoder_attention_mask; outputs stay exact, only acceptance and draft time suffer)."""
    target, _ = request.getfixturevalue(pair)
    draft = copy.deepcopy(target)            # the target's twin: every draft must also be accepted
    seen = []
    hook = draft.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(hook_cache(kwargs).get_seq_length()
                                                 if hook_cache(kwargs) is not None else 0),
        with_kwargs=True)
    ids = torch.randint(2, VOCAB, (1, 8), generator=torch.Generator().manual_seed(3))
    try:
        s = generate(target, ids, draft=draft, method="hf_assisted", num_draft_tokens=3, max_new_tokens=25,
                     ignore_eos=True).stats
    finally:
        hook.remove()
    longest = (1 if target.config.is_encoder_decoder else ids.shape[1]) + 25 + 3
    assert seen and max(seen) <= longest, seen
    assert s.new_tokens == 25 and s.rejections == 0 and s.accepted[:-1] == [3] * (len(s.accepted) - 1)
