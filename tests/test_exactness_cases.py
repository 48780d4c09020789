"""Exactness in the cases real checkpoints bring: pad id = EOS id (GPT-2, Qwen), several EOS ids, right-padded
decoder-only prompts, the draft alone on batches, and bf16. Every method of the registry that claims exactness is
compared with transformers' own `model.generate(do_sample=False)` on the same inputs."""
import copy

import pytest
import torch

from conftest import VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.methods import METHODS
from stairs_decoding.testing import related_draft

EXACT = [m.name for m in METHODS.values() if m.exact]
N_NEW = 24


def hf_rows(model, ids, mask, eos, pad, n=N_NEW):
    """model.generate's new tokens per row, cut after the first EOS id (what our methods return)."""
    out = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=n,
                         eos_token_id=eos, pad_token_id=pad)
    out = out[:, 1:] if model.config.is_encoder_decoder else out[:, ids.shape[1]:]
    eos_ids = eos if isinstance(eos, list) else [eos]
    rows = []
    for row in out.tolist():
        cut = next((i for i, t in enumerate(row) if t in eos_ids), None)
        rows.append(row if cut is None else row[:cut + 1])
    return rows


def prompts(arch: str, pad: int, seed: int = 3, lengths=(5, 12, 8)):
    """A padded batch (left for decoder-only, right for encoder-decoder) with no pad/EOS id inside the prompts."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        row = torch.randint(3, VOCAB, (n,), generator=g)
        sl = slice(0, n) if arch == "t5" else slice(width - n, width)
        ids[b, sl], mask[b, sl] = row, 1
    return ids, mask


def _run(method, target, draft, ids, mask, k, **kw):
    rows = []
    batches = [(ids, mask)] if METHODS[method].batch else [(ids[b:b + 1], mask[b:b + 1]) for b in range(len(ids))]
    for i, m in batches:
        if not METHODS[method].batch:       # single prompts: drop their padding
            keep = m[0].bool()
            i, m = i[:, keep], None
        rows += generate(target, i, attention_mask=m, draft=draft, method=method, num_draft_tokens=k,
                         max_new_tokens=N_NEW, **kw).tokens
    return rows


def _single_refs(target, ids, mask, eos, pad):
    return [hf_rows(target, ids[b:b + 1, mask[b].bool()], None, eos, pad)[0] for b in range(len(ids))]


def _frequent_tokens(target, arch):
    ids, mask = prompts(arch, pad=0)
    rows = hf_rows(target, ids, mask, None, 0)             # no EOS: which tokens does the target emit?
    counts = torch.bincount(torch.tensor([t for r in rows for t in r]), minlength=VOCAB)
    return [t for t in counts.argsort(descending=True).tolist() if t >= 3]


@pytest.fixture(scope="module")
def gpt2_pad_is_eos():
    """GPT-2 as it ships: no pad token, so pad = EOS (here a token the model emits, so that rows end)."""
    target = tiny_gpt2(0)
    eos = _frequent_tokens(target, "gpt2")[1]
    target.config.pad_token_id = target.config.eos_token_id = eos
    target.generation_config.pad_token_id = target.generation_config.eos_token_id = eos
    return target, related_draft(target, 0.05), eos


@pytest.mark.parametrize("method", EXACT)
def test_pad_id_equal_to_eos_id(gpt2_pad_is_eos, method):
    target, draft, eos = gpt2_pad_is_eos
    ids, mask = prompts("gpt2", pad=eos)
    ref = hf_rows(target, ids, mask, eos, eos) if METHODS[method].batch else _single_refs(target, ids, mask, eos, eos)
    assert any(r and r[-1] == eos and len(r) < N_NEW for r in ref), "EOS (= pad) never ends a row: proves little"
    for k in (1, 3):
        assert _run(method, target, draft, ids, mask, k) == ref, (method, k)


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
@pytest.mark.parametrize("method", EXACT)
def test_several_eos_ids(arch, method):
    target = tiny_t5(0) if arch == "t5" else tiny_gpt2(0)
    draft = related_draft(target, 0.02 if arch == "t5" else 0.05)
    ids, mask = prompts(arch, pad=0)
    eos = _frequent_tokens(target, arch)[1:3]               # two tokens the target does emit
    ref = hf_rows(target, ids, mask, eos, 0) if METHODS[method].batch else _single_refs(target, ids, mask, eos, 0)
    ends = {r[-1] for r in ref if len(r) < N_NEW}
    assert ends <= set(eos) and len(ends) >= 1, (ends, eos)
    for k in (1, 4):
        assert _run(method, target, draft, ids, mask, k, eos_token_id=eos) == ref, (method, k)


@pytest.mark.parametrize("method", [m for m in EXACT if METHODS[m].batch])
def test_right_padded_decoder_only_prompts_are_decoded_as_left_padded(method):
    """model.generate expects decoder-only prompts left-padded; given right-padded rows we return what it returns
    for the same prompts left-padded."""
    target = tiny_gpt2(0)
    draft = related_draft(target, 0.05)
    left, lmask = prompts("gpt2", pad=0)
    right, rmask = torch.zeros_like(left), torch.zeros_like(lmask)
    for b in range(len(left)):
        real = left[b][lmask[b].bool()]
        right[b, :len(real)], rmask[b, :len(real)] = real, 1
    ref = hf_rows(target, left, lmask, 1, 0)
    for k in (1, 3):
        assert _run(method, target, draft, right, rmask, k, eos_token_id=1) == ref, (method, k)


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_draft_greedy_is_the_drafts_own_generate_on_a_padded_batch(arch):
    target = tiny_t5(0) if arch == "t5" else tiny_gpt2(0)
    draft = tiny_t5(1, d_model=32, layers=1) if arch == "t5" else tiny_gpt2(1, d_model=32, layers=1)
    ids, mask = prompts(arch, pad=0)
    ref = hf_rows(draft, ids, mask, 1, 0)
    got = generate(target, ids, attention_mask=mask, draft=draft, method="draft_greedy", max_new_tokens=N_NEW,
                   eos_token_id=1)
    assert got.tokens == ref and got.stats.target_calls == 0
    assert ref != hf_rows(target, ids, mask, 1, 0)          # the draft is not the target: the test can tell


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_bf16(arch):
    """bf16: our greedy loop runs the same one-token forwards as model.generate and must match it exactly. The
    speculative methods verify k+1 positions in one forward, whose bf16 rounding differs from k+1 one-token
    forwards, so they are exact only up to near-ties within bf16 precision: they must match on most rows."""
    target = copy.deepcopy(tiny_t5(0) if arch == "t5" else tiny_gpt2(0)).to(torch.bfloat16)
    draft = related_draft(tiny_t5(0) if arch == "t5" else tiny_gpt2(0), 0.02).to(torch.bfloat16)
    rows, matched = 0, 0
    for seed in range(4):
        ids, mask = prompts(arch, pad=0, seed=seed)
        ref = hf_rows(target, ids, mask, 1, 0)
        assert generate(target, ids, attention_mask=mask, max_new_tokens=N_NEW, eos_token_id=1).tokens == ref
        for method in ("stairs", "stairs_cached"):
            got = _run(method, target, draft, ids, mask, 3, eos_token_id=1)
            rows += len(ref)
            matched += sum(g == r for g, r in zip(got, ref))
    assert matched / rows >= 0.75, f"bf16: {matched} of {rows} rows identical to greedy"
