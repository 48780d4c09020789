"""Per-row acceptance at batch > 1 (issue 18): rows keep their own agreeing prefixes, the rows and both KV caches are
re-aligned (a row that advanced less is shifted right, left-padded and masked), finished rows leave the batch.

- the cache re-alignment on its own: after `ModelState.realign` every row's next logits equal that row decoded alone;
- forced ragged acceptance across the architecture matrix: a draft that is the target itself for row 0 and scrambled
  for the other rows, so that row 0 accepts every draft and the others few; output == transformers' generate.
"""
import copy

import pytest
import torch

import archs
from stairs_decoding import generate
from stairs_decoding.methods import METHODS
from stairs_decoding.methods._state import ModelState, Sequence, ragged_unsupported
from stairs_decoding.timing import Clock
from test_architectures import _batch, _mid_eos, hf_reference

T = torch.tensor
RAGGED_METHODS = tuple((m.name, s) for m in METHODS.values() if m.speculative and m.batch for s in m.schedules)


def _fed(state: ModelState, seq: Sequence) -> torch.Tensor:
    return state.step(seq)[:, -1]


@pytest.mark.parametrize("name", ["t5", "llama", "gpt2", "opt"])
def test_realign_keeps_every_rows_cache_exact(name):
    """Two rows advance by different counts; after realign() the next step's logits of each row equal those of the
    row decoded alone with a fresh cache (to fp32 noise) — T5's relative position bias and decoder-only positions
    both survive the shift."""
    model = archs.build(name)
    assert ragged_unsupported(model) is None
    ids, mask = _batch(name)
    ids, mask = ids[:2], mask[:2]
    enc_dec = model.config.is_encoder_decoder
    if enc_dec:
        prefix, pmask = torch.zeros(2, 1, dtype=torch.long), None
    else:
        prefix, pmask = ids, mask
    with torch.inference_mode():
        seq = Sequence(prefix, pmask, max_new_tokens=20, eos_ids=None, pad_id=archs.PAD, ragged=True)
        state = ModelState(model, ids, mask, Clock(), rollback=True)
        g = torch.Generator().manual_seed(0)
        for counts in ([3, 1], [1, 4], [2, 2], [4, 1]):
            new = torch.randint(3, archs.VOCAB, (2, 4), generator=g)
            state.step(seq, new, keep=4)                              # the cache holds the 4 "drafts"
            seq.append_rows(new, T(counts), T(counts))                # row b keeps counts[b] of them
            state.realign(seq)
            state.rollback(seq.length - 1)
        got = _fed(state, seq)
        committed = seq.attention_mask()
        assert committed is not None and not bool(committed.all())    # some row was shifted
        for b in range(2):
            real = seq.tokens[b][committed[b].bool()].unsqueeze(0)    # the row without any padding
            one = Sequence(real, None, max_new_tokens=1, eos_ids=None, pad_id=archs.PAD)
            fresh = ModelState(model, ids[b:b + 1, mask[b].bool()] if enc_dec else real, None, Clock())
            torch.testing.assert_close(got[b], _fed(fresh, one)[0], atol=1e-4, rtol=1e-4)


class _RowScramble:
    """A draft that is the target itself on row 0 of the batch and a scrambled target on the other rows (forward
    hook on the logits): row 0 agrees with every draft, the others seldom — ragged acceptance by construction (once
    finished rows leave the batch, "row 0" is another row: only the first round is as built)."""

    def __init__(self, target):
        self.model = copy.deepcopy(target)
        perm = torch.randperm(target.config.vocab_size, generator=torch.Generator().manual_seed(1))
        self._hook = self.model.register_forward_hook(self._scramble)
        self.perm = perm
        self.rows = None

    def _scramble(self, module, args, output):
        logits = output.logits
        if logits.shape[0] > 1:
            output.logits = torch.cat([logits[:1], logits[1:, :, self.perm]], dim=0)
        return output


@pytest.mark.parametrize("name", list(archs.ARCHS))
def test_forced_ragged_acceptance_is_exact(name):
    target = archs.build(name)
    draft = _RowScramble(target).model
    ids, mask = _batch(name)
    eos = _mid_eos(name, target, ids, mask)
    longest = hf_reference(target, ids, mask, 30, eos)
    order = sorted(range(3), key=lambda b: -len(longest[b]))      # row 0 (the well-drafted one) runs longest
    ids, mask = ids[order], mask[order]
    problems = []
    ragged_seen = False
    for n in (5, 30):
        ref = hf_reference(target, ids, mask, n, eos)
        for method, schedule in RAGGED_METHODS:
            for k in (2, 4):
                res = generate(target, ids, attention_mask=mask, draft=draft, method=method, num_draft_tokens=k,
                               max_new_tokens=n, schedule=schedule, eos_token_id=eos)
                if res.tokens != ref:
                    problems.append(f"{method}/{schedule} k={k} n={n}: {res.tokens} != {ref}")
                st = res.stats
                assert [sum(a) + len(a) for a in st.row_accepted] == [len(r) for r in ref]
                spec = [i for i, d in enumerate(st.drafted) if d]    # schedule=auto may run plain steps
                if (st.ragged and n == 30 and spec and spec[0] < min(len(a) for a in st.row_accepted)
                        and METHODS[method].needs_draft):     # (lookup proposes without the scrambled draft)
                    ragged_seen = True
                    # in the first drafted round (all rows still in the batch) row 0, drafted by the target itself,
                    # keeps more than some scrambled row: the rows advanced by different counts
                    first = [a[spec[0]] for a in st.row_accepted]
                    assert first[0] > min(first[1:]), (method, schedule, k, first)
    assert not problems, f"{name}:\n" + "\n".join(problems[:10])
    assert ragged_seen == (ragged_unsupported(target) is None), name


def test_finished_rows_leave_the_batch_and_outputs_keep_input_order():
    """Rows that stop early (EOS) leave the batch; the outputs come back in input order and equal greedy's."""
    target = archs.build("t5")
    ids, mask = _batch("t5")
    eos = _mid_eos("t5", target, ids, mask)
    ref = hf_reference(target, ids, mask, 30, eos)
    assert len({len(r) for r in ref}) > 1
    for method in ("greedy", "stairs_cached", "stairs"):
        res = generate(target, ids, attention_mask=mask, draft=archs.perturbed(target), method=method,
                       num_draft_tokens=3, max_new_tokens=30, eos_token_id=eos)
        assert res.tokens == ref, method


def test_ragged_is_off_where_it_cannot_be_exact():
    assert "absolute" in ragged_unsupported(archs.build("bart"))
    assert "sliding" in ragged_unsupported(archs.build("mistral_sw"))
    target = archs.build("t5")
    ids, mask = _batch("t5")
    res = generate(target, ids, attention_mask=mask, draft=target, method="stairs_cached", max_new_tokens=8,
                   repetition_penalty=1.3)            # a logits processor reads each row's prefix: lockstep
    assert not res.stats.ragged
    single = generate(target, ids[:1], draft=target, method="stairs_cached", max_new_tokens=8)
    assert not single.stats.ragged


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_ragged_rows_at_the_position_table_limit(family):
    """The outside review's case: a learned position table of 32 (GPT-2 / OPT style), two 6-token prompts (one
    also left-padded) and max_new_tokens filling it to the last position. A row ahead of the other is fed filler
    draft positions past its own limit; they must stay inside the table (they were an IndexError, a device-side
    assert on a GPU) and every method returns model.generate's output."""
    from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

    from stairs_decoding.methods import METHODS
    from stairs_decoding.testing import related_draft

    torch.manual_seed(0)
    if family == "gpt2":
        target = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                            initializer_range=1.0, bos_token_id=1, eos_token_id=1,
                                            pad_token_id=0)).eval()
    else:
        target = OPTForCausalLM(OPTConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                          num_attention_heads=4, max_position_embeddings=32, word_embed_proj_dim=32,
                                          init_std=1.0, bos_token_id=1, eos_token_id=1, pad_token_id=0)).eval()
    draft = related_draft(target, 0.3)
    g = torch.Generator().manual_seed(3)
    checked = 0
    for trial in range(4):
        ids = torch.randint(2, 128, (2, 6), generator=g)
        mask = torch.ones_like(ids)
        if trial % 2:
            ids[0, :2], mask[0, :2] = 0, 0
        want = target.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=26, eos_token_id=None,
                               pad_token_id=0)[:, 6:].tolist()
        for name, m in METHODS.items():
            if not (m.exact and m.batch):
                continue
            res = generate(target, ids, attention_mask=mask, draft=draft if m.needs_draft else None, method=name,
                           num_draft_tokens=4, max_new_tokens=26, ignore_eos=True)
            assert res.tokens == want, (family, trial, name)
            checked += 1
    assert checked >= 20
