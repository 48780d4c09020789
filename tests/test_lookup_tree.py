"""lookup and stairs_tree: the source lookup on its own, branch choice, and cases built to exercise each path.

The registry-driven matrices (test_engine_exactness, test_architectures, test_batch_acceptance,
test_exactness_cases, test_generation_settings) already run both methods on random prompts, every k, EOS, padded
batches and 25 architectures. Here: the lookup's index and ranking on hand-made token lists (a source holding the
answer verbatim, no match, a match that ends mid-way, the longest match first, ties between occurrences), the
branch choice (ties), num_branches=1 being stairs_cached call for call, and the shipped pair, whose outputs copy
from their sources, so that long lookups, lookup branches winning and per-row acceptance all really happen.
"""
import csv
import json
from pathlib import Path

import pytest
import torch

from conftest import EOS, VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.methods._lookup import RowLookup
from stairs_decoding.methods.stairs_tree import choose

ROOT = Path(__file__).resolve().parents[1]


def enc_dec_row(source, generated=(), max_ngram=2, min_ngram=1):
    row = RowLookup(source, enc_dec=True, max_ngram=max_ngram, min_ngram=min_ngram)
    row.sync(list(generated))
    return row


def test_a_source_holding_the_answer_proposes_its_continuation():
    row = enc_dec_row([5, 6, 7, 8, 9, 10], [6])
    assert row.propose(3, 1) == [[7, 8, 9]]
    assert row.propose(10, 1) == [[7, 8, 9, 10]]           # the match ends mid-way: the source ends (no SEP)


def test_no_match_and_nothing_generated_propose_nothing():
    assert enc_dec_row([5, 6, 7], [9]).propose(4, 3) == []
    assert enc_dec_row([5, 6, 7], []).propose(4, 3) == []    # no committed n-gram yet
    assert enc_dec_row([5, 6, 7], [7]).propose(4, 3) == []    # matches only the source's last token
    assert enc_dec_row([5, 6, 7], [6]).propose(0, 3) == []    # k = 0


def test_the_longest_match_comes_first_and_only_its_length_counts():
    # "3 4" is followed by 11 once; "4" alone is followed by 12 and 11.
    row = enc_dec_row([4, 12, 3, 4, 11], [3, 4])
    assert row.propose(1, 3) == [[11]]
    assert enc_dec_row([4, 12, 3, 4, 11], [3, 4], max_ngram=1).propose(1, 3) == [[12], [11]]


def test_occurrences_nearest_the_cursor_first_and_the_cursor_follows_accepted_copies():
    source = [2, 20, 21, 2, 30, 31, 2, 40, 41]
    row = enc_dec_row(source, [2])
    assert row.propose(2, 3) == [[20, 21], [30, 31], [40, 41]]      # cursor at the start
    row.sync([2, 30, 31])                                          # the second was accepted
    assert row.cursor == 6
    row.sync([2, 30, 31, 7, 2])
    assert row.propose(2, 1) == [[40, 41]]                          # nearest to where copying stopped


def test_identical_continuations_are_offered_once_and_branches_are_capped():
    row = enc_dec_row([1, 8, 9, 1, 8, 9, 1, 8, 7], [1])
    assert row.propose(2, 5) == [[8, 9], [8, 7]]
    assert row.propose(2, 1) == [[8, 9]]


def test_the_output_so_far_is_searched_too():
    row = enc_dec_row([50, 51], [3, 4, 5, 6, 3, 4])
    assert row.propose(3, 1) == [[5, 6, 3]]


def test_decoder_only_the_prompt_is_the_source_and_recent_text_first():
    row = RowLookup([1, 2, 3, 1, 2, 4, 2], enc_dec=False, max_ngram=1, min_ngram=1)
    row.sync([])
    assert row.propose(1, 3) == [[4], [3]]                # "2": the most recent occurrence first


@pytest.mark.parametrize("decoder_only", [False, True])
def test_the_lookup_follows_each_rows_own_output_through_re_alignment_and_compaction(decoder_only):
    """Rows that advance by different counts are shifted and padded (Sequence.append_rows), and finished rows leave
    the batch: each row's lookup still reads exactly its own committed output, and matches its own source."""
    from stairs_decoding.methods._lookup import Lookup
    from stairs_decoding.methods._state import Sequence

    sources = [[10, 11, 12, 13, 14, 15], [20, 21, 22, 23], [30, 31, 32, 33, 34]]
    if decoder_only:            # the prompts are the committed prefix, left-padded
        width = max(map(len, sources))
        prefix = torch.tensor([[0] * (width - len(r)) + r for r in sources])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in sources])
        seq = Sequence(prefix, mask, max_new_tokens=9, eos_ids=torch.tensor([99]), pad_id=0, ragged=True,
                       compact=True)
        lookup = Lookup(seq, None, max_ngram=2, min_ngram=1)
    else:
        seq = Sequence(torch.zeros(3, 1, dtype=torch.long), None, max_new_tokens=9, eos_ids=torch.tensor([99]),
                       pad_id=0, ragged=True, compact=True)
        ids = torch.tensor([r + [0] * (6 - len(r)) for r in sources])
        lookup = Lookup(seq, (ids, (ids > 0).long()), max_ngram=2, min_ngram=1)
    steps = [([[11, 12, 7], [21, 99, 0], [31, 5, 0]], [3, 2, 1]), ([[13, 14, 0], [32, 33, 0]], [2, 2])]     # row 1 ended (EOS 99): 2 rows left
    for new, counts in steps:
        seq.append_rows(torch.tensor(new), torch.tensor(counts), torch.tensor(counts))
        seq.drop_finished()
        proposals = lookup.propose(seq, 3)
        for b, row in enumerate(seq.rows.tolist()):
            look = lookup.rows[row]
            assert look.text[look.start:] == seq.outputs()[row]
            if look.text[-1] in sources[row][:-1]:           # a source token with a successor: proposed
                assert proposals[b] and proposals[b][0][0] == sources[row][sources[row].index(look.text[-1]) + 1]
    assert seq.outputs() == [[11, 12, 7, 13, 14], [21, 99], [31, 32, 33]]


def test_branch_choice_longest_agreement_capped_at_length_first_on_ties():
    # 1 row, 3 branches of width 3; the target's greedy tokens after each branch position
    cands = torch.tensor([[[5, 6, 7], [5, 6, 9], [8, 0, 0]]])
    lengths = torch.tensor([[2, 3, 1]])
    preds = torch.tensor([[[5, 6, 7, 1], [5, 6, 9, 2], [8, 0, 3, 3]]])
    assert choose(cands, lengths, preds).tolist() == [1]      # branch 0 agrees on 3 but proposed only 2
    lengths = torch.tensor([[3, 3, 1]])
    assert choose(cands, lengths, preds).tolist() == [0]      # a tie: the first (the draft's) wins


@pytest.mark.parametrize("make", [tiny_t5, tiny_gpt2])
def test_one_branch_is_stairs_cached_call_for_call(make):
    target, draft = make(0), make(1, d_model=32, layers=1)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(2, VOCAB, (3, 9), generator=g)
    for k in (1, 3, 5):
        a = generate(target, ids, draft=draft, method="stairs_cached", num_draft_tokens=k, max_new_tokens=30,
                     eos_token_id=EOS)
        b = generate(target, ids, draft=draft, method="stairs_tree", num_draft_tokens=k, max_new_tokens=30,
                     eos_token_id=EOS, num_branches=1)
        assert b.tokens == a.tokens
        for name in ("target_calls", "draft_calls", "accepted", "drafted", "row_accepted", "rejections"):
            assert getattr(b.stats, name) == getattr(a.stats, name), name
        assert set(b.stats.branches) == {1} and not b.stats.branch_wins


@pytest.mark.parametrize("make", [tiny_t5, tiny_gpt2])
def test_lookup_without_any_match_is_plain_greedy(make):
    target = make(0)
    ids = torch.randint(2, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    ref = generate(target, ids, max_new_tokens=20, ignore_eos=True)
    res = generate(target, ids, method="lookup", num_draft_tokens=4, max_new_tokens=20, ignore_eos=True,
                   max_ngram=30, min_ngram=30)            # 7 + 20 tokens hold no 30-gram: nothing is proposed
    assert res.tokens == ref.tokens
    assert set(res.stats.drafted) == {0} and res.stats.target_calls == 20 and res.stats.draft_calls == 0


@pytest.mark.parametrize("make", [tiny_t5, tiny_gpt2])
def test_lookup_heuristic_schedule_is_exact(make):
    """schedule="heuristic" for lookup is exact, with and without matches (a round without a match is a plain
    target step and leaves k as it is)."""
    target = make(0)
    ids = torch.randint(2, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    ref = generate(target, ids, max_new_tokens=20, ignore_eos=True)
    none = generate(target, ids, method="lookup", num_draft_tokens=4, max_new_tokens=20, ignore_eos=True,
                    schedule="heuristic", max_ngram=30, min_ngram=30)
    assert none.tokens == ref.tokens and set(none.stats.drafted) == {0}
    some = generate(target, ids, method="lookup", num_draft_tokens=4, max_new_tokens=20, ignore_eos=True,
                    schedule="heuristic")
    assert some.tokens == ref.tokens


@pytest.fixture(scope="module")
def shipped():
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    pair = ROOT / "models" / "tiny-t5"
    target = T5ForConditionalGeneration.from_pretrained(pair / "target", dtype=torch.float32).eval()
    draft = T5ForConditionalGeneration.from_pretrained(pair / "draft", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(pair / "target")
    sources = [json.loads(line)["source"] for line in (ROOT / "data" / "tiny_heldout.jsonl").read_text().splitlines()]
    return target, draft, tok, sources[:8]


def test_shipped_pair_lookup_and_tree_copy_from_the_source_exactly(shipped):
    """The compress task's outputs copy spans of their sources: lookup proposals are long and mostly kept, lookup
    branches win stairs_tree rounds, and batches of 4 advance their rows by different counts; every output equals
    transformers' greedy, alone and in batches."""
    target, draft, tok, sources = shipped
    tally = {"lookup": [0, 0], "stairs_tree": [0, 0]}      # tokens, target calls
    wins, widths, ragged = {}, set(), []
    for start in (0, 4):
        enc = tok(sources[start:start + 4], return_tensors="pt", padding=True)
        ref = target.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=48)[:, 1:].tolist()
        ref = [r[:r.index(1) + 1] if 1 in r else r for r in ref]
        for method, k in (("lookup", 8), ("stairs_tree", 4)):
            batch = generate(target, enc.input_ids, attention_mask=enc.attention_mask, draft=draft, method=method,
                             num_draft_tokens=k, max_new_tokens=48)
            assert batch.tokens == ref, method
            ragged.append(batch.stats.ragged and len({tuple(a[:3]) for a in batch.stats.row_accepted}) > 1)
            for b in range(4):
                ids = enc.input_ids[b:b + 1, enc.attention_mask[b].bool()]
                res = generate(target, ids, draft=draft, method=method, num_draft_tokens=k, max_new_tokens=48)
                assert res.tokens == [ref[b]], (method, b)
                tally[method][0] += res.stats.new_tokens
                tally[method][1] += res.stats.target_calls
                for kind, n in res.stats.branch_wins.items():
                    wins[kind] = wins.get(kind, 0) + n
                widths.update(res.stats.branches)
    assert tally["lookup"][0] >= 2.5 * tally["lookup"][1], tally            # long source copies were kept
    assert tally["stairs_tree"][0] >= 2.5 * tally["stairs_tree"][1], tally
    assert wins.get("lookup", 0) > 0 and max(widths) > 1, (wins, widths)
    assert any(ragged)


def test_method_options_reach_the_records(tmp_path):
    """A run's method options (sweep.per_method.<m>.<option>) go to generate() and into each record."""
    from hydra import compose, initialize_config_dir

    from stairs_decoding.harness import run_experiment

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[
            "experiment=smoke", "logger=none", "task.num_examples=2", "task.max_new_tokens=8", "warmup_examples=0",
            "sweep.methods=[greedy,lookup,stairs_tree,stairs_cached]", "sweep.num_draft_tokens=[3]",
            "sweep.schedule=constant",
            "+sweep.per_method={stairs_tree:{num_branches:2,draft_forward:transformers},"
            "lookup:{max_ngram:3,verify_attention:math}}",
            "progress=false"])
        run_experiment(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    options = {r["method"]: r["options"] for r in records}
    assert options == {"greedy": None, "lookup": {"max_ngram": 3, "min_ngram": 1, "verify_attention": "math"},
                       "stairs_tree": {"num_branches": 2, "max_ngram": 2, "min_ngram": 1,
                                       "draft_forward": "transformers", "verify_attention": "default"},
                       "stairs_cached": {"draft_forward": "lean", "verify_attention": "default"}}   # auto: what ran
    assert all(r["matches_greedy"] for r in records)
    cost = json.loads((tmp_path / "cost_ratio.json").read_text())   # c of both draft steps, each cell its own
    c = {r["method"]: float(r["cost_ratio_c"]) for r in csv.DictReader(open(tmp_path / "summary.csv"))
         if r["method"] in ("stairs_tree", "stairs_cached")}
    assert c == {"stairs_tree": pytest.approx(cost["cost_ratio_c"]),
                 "stairs_cached": pytest.approx(cost["cost_ratio_c_lean"])}


def _check_draft_cache(monkeypatch, draft) -> list[int]:
    """Before every round (the draft's first step), its next-token logits from the live — cropped, re-aligned —
    cache must equal those of a fresh forward over the committed tokens; returns the batch size of each check."""
    from stairs_decoding.methods._state import ModelState

    original, checked = ModelState.step, []

    def step(self, seq, extra=None, keep=1):
        out = original(self, seq, extra, keep)
        if self.model is draft and (extra is None or extra.shape[1] == 0):      # a round's first draft step
            fresh = ModelState(self.model, None, getattr(self, "encoder_mask", None), self.clock,
                               encoder_outputs=getattr(self, "encoder_outputs", None))
            ref = original(fresh, seq)
            assert torch.allclose(out[:, -1], ref[:, -1], atol=1e-4), "stale draft cache"
            checked.append(seq.tokens.shape[0])
        return out

    monkeypatch.setattr(ModelState, "step", step)
    return checked


def test_the_drafts_cache_stays_true_when_another_branch_wins(shipped, monkeypatch):
    """A draft whose own branch lost keeps only the part that agrees with what was committed. Exactness alone would
    not show a stale draft cache (the target checks every token), only slower drafts."""
    target, draft, tok, sources = shipped
    checked = _check_draft_cache(monkeypatch, draft)
    enc = tok(sources[:4], return_tensors="pt", padding=True)
    wins = 0
    for ids, mask in [(enc.input_ids, enc.attention_mask)] + \
            [(enc.input_ids[b:b + 1, enc.attention_mask[b].bool()], None) for b in range(4)]:
        res = generate(target, ids, attention_mask=mask, draft=draft, method="stairs_tree", num_draft_tokens=4,
                       max_new_tokens=40)
        wins += sum(res.stats.branch_wins.values())
    assert wins > 5 and len(checked) > 40 and max(checked) == 4


@pytest.mark.parametrize("name", ["llama", "gpt2", "mistral_sw", "bart"])
def test_the_drafts_cache_stays_true_in_every_batch_layout(name, monkeypatch):
    """The same on random models whose runner-up branches win: decoder-only rows re-aligned (llama, gpt2), and rows
    in lockstep (sliding-window layers, absolute positions)."""
    import archs
    from test_architectures import _batch

    target = archs.build(name)
    draft = archs.perturbed(target)
    checked = _check_draft_cache(monkeypatch, draft)
    ids, mask = _batch(name)
    res = generate(target, ids, attention_mask=mask, draft=draft, method="stairs_tree", num_draft_tokens=4,
                   max_new_tokens=30, ignore_eos=True)
    assert res.stats.branch_wins and len(checked) > 5


def test_a_batch_verifies_only_the_branches_its_rows_have(shipped, monkeypatch):
    """stairs_tree at batch > 1 feeds each row once per candidate it has (a row whose lookups agree with its draft
    costs one row), not every row `num_branches` times; outputs stay transformers' greedy."""
    from stairs_decoding.methods import stairs_tree
    from stairs_decoding.methods._state import ModelState

    target, draft, tok, sources = shipped
    original, fed = ModelState.step_branches, []

    def step_branches(self, seq, candidates, owners):
        fed.append((seq.tokens.shape[0], candidates.shape[0], torch.bincount(owners, minlength=seq.tokens.shape[0])))
        return original(self, seq, candidates, owners)

    made, counted = stairs_tree.candidates, []

    def candidates(*args, **kwargs):
        out = made(*args, **kwargs)
        counted.append(out[3].tolist())
        return out

    monkeypatch.setattr(ModelState, "step_branches", step_branches)
    monkeypatch.setattr(stairs_tree, "candidates", candidates)
    enc = tok(sources, return_tensors="pt", padding=True)
    ref = target.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=40)[:, 1:].tolist()
    ref = [r[:r.index(1) + 1] if 1 in r else r for r in ref]
    res = generate(target, enc.input_ids, attention_mask=enc.attention_mask, draft=draft, method="stairs_tree",
                   num_draft_tokens=4, max_new_tokens=40)
    assert res.tokens == ref
    multi = [c for c in counted if max(c) > 1]
    assert len(fed) == len(multi) and fed
    for (batch, rows, per_row), counts in zip(fed, multi):
        assert per_row.tolist() == counts and rows == sum(counts)
    assert any(rows < batch * max(per_row.tolist()) for batch, rows, per_row in fed)    # some row had fewer
    assert [n for n, r in zip(res.stats.branch_rows, res.stats.branches) if r > 1] == [rows for _, rows, _ in fed]
