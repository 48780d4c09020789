"""The lean T5 decoder step (methods/_lean.py) and the draft_forward option.

Its logits must equal transformers' forward bit for bit on the same weights and the same cache, through every way
our methods drive a draft's cache: a padded prefill, one-token steps, several tokens at once, rollback (crop),
re-aligned rows (left padding inside the decoder mask) and dropped rows (batch_select_indices); on relu and gated
T5, tied and untied heads, with and without source padding. Then generate(): the lean and the transformers draft
propose the same drafts, so every output, call and per-round statistic is the same, and what ran is recorded.
"""
import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, EncoderDecoderCache, MT5Config, MT5ForConditionalGeneration

import archs
from conftest import EOS, VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.compat import with_cache
from stairs_decoding.errors import GenerationInputError
from stairs_decoding.methods._lean import LeanT5Step, resolve, unsupported

ROOT = Path(__file__).resolve().parents[1]


def _cache(model):
    return EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))


def _models():
    mt5 = MT5ForConditionalGeneration(MT5Config(vocab_size=VOCAB, d_model=32, d_ff=64, d_kv=8, num_heads=4,
                                                num_layers=2, num_decoder_layers=2, dropout_rate=0.0,
                                                decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0)).eval()
    return {"t5_relu_tied": archs.build("t5", seed=3, size="draft"),
            "t5_gated_untied": archs.build("t5_v1_1", seed=3, size="draft"),
            "tiny_t5_two_layers": tiny_t5(4, d_model=32, layers=2), "mt5": mt5}


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("padded_source", [False, True])
def test_lean_logits_equal_transformers_bit_for_bit_through_every_cache_operation(name, padded_source):
    model = _models()[name]
    assert unsupported(model) is None
    lean = LeanT5Step(model)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    src = torch.randint(3, vocab, (3, 9), generator=g)
    src_mask = torch.ones_like(src)
    if padded_source:
        src_mask[1, 6:] = 0
        src_mask[2, :4] = 0
    with torch.inference_mode():
        enc = model.get_encoder()(input_ids=src, attention_mask=src_mask)
        ref_cache, lean_cache = _cache(model), _cache(model)
        dec = torch.randint(3, vocab, (3, 40), generator=g)
        mask = torch.ones_like(dec)
        mask[0, :3] = 0                                   # a re-aligned row: masked pads on the left
        mask[2, :1] = 0

        def both(start, end, cut_mask=True):
            m = mask[:, :end] if cut_mask else None
            ref = model(encoder_outputs=enc, attention_mask=src_mask, decoder_input_ids=dec[:, start:end],
                        use_cache=True, **with_cache(model, ref_cache),
                        **({} if m is None else {"decoder_attention_mask": m})).logits
            got = lean(dec[:, start:end], lean_cache, enc.last_hidden_state, src_mask, m)
            real = mask[:, start:end].bool() if m is not None else torch.ones(ref.shape[:2], dtype=torch.bool)
            assert torch.equal(ref[real], got[real]), (name, start, end)   # pad queries' logits are unused
            assert ref_cache.get_seq_length() == lean_cache.get_seq_length() == end

        both(0, 12)                                   # padded prefill
        for t in range(12, 16):                       # one-token draft steps
            both(t, t + 1)
        both(16, 21)                                  # a verification-sized call
        for c in (ref_cache, lean_cache):             # rejected drafts
            c.crop(-3)
        both(18, 19)
        keep = torch.tensor([0, 2])                   # a finished row leaves the batch
        for c in (ref_cache, lean_cache):
            c.batch_select_indices(keep)
        enc = type(enc)(last_hidden_state=enc.last_hidden_state[keep])
        src_mask, dec, mask = src_mask[keep], dec[keep], mask[keep]
        both(19, 20)
        both(20, 24)
        mask[:] = 1                                   # nothing padded: transformers takes its no-mask path
        both(24, 25, cut_mask=False)
        both(25, 28, cut_mask=False)


def test_only_what_the_lean_step_reproduces_is_accepted(t5_pair, gpt2_pair):
    target, draft = t5_pair
    assert unsupported(draft) is None and resolve("auto", draft) == "lean"
    assert resolve("transformers", draft) == "transformers"
    assert "GPT2LMHeadModel" in unsupported(gpt2_pair[1]) and resolve("auto", gpt2_pair[1]) == "transformers"
    assert "BartForConditionalGeneration" in unsupported(archs.build("bart", seed=0, size="draft"))
    eager = copy.deepcopy(draft)
    eager.config._attn_implementation = "eager"
    assert "eager" in unsupported(eager)
    hooked = copy.deepcopy(draft)
    hooked.register_forward_hook(lambda *a: None)
    assert "hooks" in unsupported(hooked) and resolve("auto", hooked) == "transformers"
    assert "training" in unsupported(copy.deepcopy(draft).train())


def _shipped():
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    path = ROOT / "models" / "tiny-t5"
    target = T5ForConditionalGeneration.from_pretrained(path / "target").eval()
    draft = T5ForConditionalGeneration.from_pretrained(path / "draft").eval()
    tok = AutoTokenizer.from_pretrained(path / "target")
    rows = [json.loads(line) for line in open(ROOT / "data" / "tiny_heldout.jsonl")][:8]
    return target, draft, tok, [r["source"] for r in rows]


@pytest.mark.parametrize("method,k", [("stairs_cached", 3), ("stairs_tree", 4), ("stairs", 2)])
def test_lean_and_transformers_drafts_decode_identically(method, k):
    """The same drafts every round: outputs, calls and per-row acceptance are equal, alone and in padded batches."""
    target, draft, tok, sources = _shipped()
    for rows in (sources[:1], sources[:4], sources[4:8]):
        enc = tok(rows, return_tensors="pt", padding=True)
        ref = generate(target, enc.input_ids, attention_mask=enc.attention_mask, method="greedy", max_new_tokens=40)
        runs = {f: generate(target, enc.input_ids, attention_mask=enc.attention_mask, draft=draft, method=method,
                            num_draft_tokens=k, max_new_tokens=40, draft_forward=f)
                for f in ("lean", "transformers")}
        lean, hf = runs["lean"], runs["transformers"]
        assert lean.tokens == hf.tokens == ref.tokens
        assert (lean.stats.draft_forward, hf.stats.draft_forward) == ("lean", "transformers")
        for field in ("target_calls", "draft_calls", "accepted", "drafted", "row_accepted", "rejections"):
            assert getattr(lean.stats, field) == getattr(hf.stats, field), field
        assert generate(target, enc.input_ids, attention_mask=enc.attention_mask, draft=draft, method=method,
                        num_draft_tokens=k, max_new_tokens=40).stats.draft_forward == "lean"     # auto


def test_draft_forward_is_validated_before_anything_runs(t5_pair, gpt2_pair):
    target, draft = t5_pair
    ids = torch.randint(3, VOCAB, (1, 6))
    with pytest.raises(GenerationInputError, match="draft_forward must be one of"):
        generate(target, ids, draft=draft, method="stairs_cached", draft_forward="fast")
    with pytest.raises(GenerationInputError, match="does not apply to method 'greedy'"):
        generate(target, ids, method="greedy", draft_forward="lean")
    with pytest.raises(GenerationInputError, match="does not apply to method 'lookup'"):
        generate(target, ids, method="lookup", draft_forward="transformers")
    gpt_target, gpt_draft = gpt2_pair
    with pytest.raises(GenerationInputError, match="draft_forward='lean' cannot run this draft: it is a GPT2"):
        generate(gpt_target, ids, draft=gpt_draft, method="stairs_cached", draft_forward="lean")
    out = generate(gpt_target, ids, draft=gpt_draft, method="stairs_cached", max_new_tokens=5)
    assert out.stats.draft_forward == "transformers"                       # auto, where lean cannot run
    assert generate(target, ids, method="greedy", max_new_tokens=3).stats.draft_forward is None
