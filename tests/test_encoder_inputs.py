"""Encoder inputs that are not token ids: Whisper and Speech2Text (speech features) and a vision encoder-decoder
(ViT encoder, TrOCR decoder; pixels), tiny random models built from their configs.

Each target has two decoder layers, the second one weak; its draft is distil-Whisper-shaped: the target's encoder
and the first decoder layer (and embeddings) alone, so it agrees with the target on most tokens, not all. Every exact
method equals `model.generate(do_sample=False)` (Whisper's own generate, with its decoder prompt and suppress-token
processors) at batch 1 and 3, with an EOS that stops rows at different lengths; hf_assisted at batch 1 (transformers'
limit). Whisper's modes we do not reproduce are refused by name, before any work.
"""
from collections import Counter

import pytest
import torch
from transformers import (
    Speech2TextConfig,
    Speech2TextForConditionalGeneration,
    TrOCRConfig,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

import archs
from stairs_decoding import generate
from stairs_decoding.errors import GenerationInputError, SettingError
from stairs_decoding.methods import METHODS
from stairs_decoding.methods.hf_assisted import _quiet_internal_deprecation

V, PAD, EOS, START = archs.VOCAB, archs.PAD, archs.EOS, archs.BOS
SMALL = dict(encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
             d_model=64, encoder_layers=2, pad_token_id=PAD, bos_token_id=START, eos_token_id=EOS,
             decoder_start_token_id=START, vocab_size=V)
# Whisper: a multilingual-style generation config (language and task tokens, no-timestamps token), its begin and
# always-suppressed tokens as a checkpoint ships them.
WHISPER_GEN = dict(lang_to_id={"<|en|>": 90, "<|de|>": 91}, task_to_id={"transcribe": 92, "translate": 93},
                   no_timestamps_token_id=94, is_multilingual=True, begin_suppress_tokens=[5, 6], suppress_tokens=[7])


def _whisper(layers):
    return WhisperForConditionalGeneration(WhisperConfig(**SMALL, num_mel_bins=8, decoder_layers=layers,
                                                         max_source_positions=16, max_target_positions=64))


def _speech2text(layers):
    return Speech2TextForConditionalGeneration(Speech2TextConfig(
        **SMALL, decoder_layers=layers, input_feat_per_channel=8, input_channels=1, num_conv_layers=2,
        conv_channels=32, conv_kernel_sizes=[5, 5], max_source_positions=64, max_target_positions=64))


def _vision(layers):
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=16,
                  patch_size=4, num_channels=3),
        TrOCRConfig(vocab_size=V, d_model=64, decoder_layers=layers, decoder_attention_heads=4, decoder_ffn_dim=128,
                    pad_token_id=PAD, bos_token_id=START, eos_token_id=EOS, decoder_start_token_id=START,
                    max_position_embeddings=64))
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = START, PAD, EOS
    return VisionEncoderDecoderModel(config=config)


FAMILIES = {"whisper": _whisper, "speech2text": _speech2text, "vision": _vision}
# (gain, embedding std, seed) of each family's random init (tests/archs.py's _reinit), chosen so that greedy output
# is varied on _inputs (Speech2Text's scaled embeddings lock onto one token at most other draws).
INIT = {"whisper": (4.0, 0.3, 0), "speech2text": (5.0, 0.3, 1), "vision": (4.0, 0.3, 0)}


def _inputs(family: str, batch: int, seed: int = 11):
    g = torch.Generator().manual_seed(seed)
    if family == "whisper":
        return torch.randn(batch, 8, 32, generator=g), None
    if family == "speech2text":
        mask = torch.ones(batch, 20, dtype=torch.long)
        for b in range(batch):
            mask[b, 20 - 4 * b:] = 0 if b else 1                     # rows of 20, 16, 12 frames
        return torch.randn(batch, 20, 8, generator=g), mask
    return torch.randn(batch, 3, 16, 16, generator=g), None


@torch.no_grad()
def build(family: str, layers: int = 2):
    """A target (2 decoder layers, the second weak) or its distil-shaped draft (the same weights, 1 decoder layer)."""
    gain, emb, seed = INIT[family]
    torch.manual_seed(seed)
    model = FAMILIES[family](2)
    archs._reinit(model, gain, emb)
    for name, p in model.named_parameters():
        if ".layers.1." in name and ("out_proj" in name or "fc2" in name):
            p.mul_(0.3)
    if family == "whisper":
        for key, value in WHISPER_GEN.items():
            setattr(model.generation_config, key, value)
    if layers == 2:
        return model.eval()
    draft = FAMILIES[family](layers)
    missing = draft.load_state_dict(model.state_dict(), strict=False)
    assert not missing.missing_keys, missing.missing_keys
    draft.generation_config = model.generation_config
    return draft.eval()


def reference(model, inputs, mask, n, eos, **kw):
    """transformers' greedy output per row (new tokens, cut after the first EOS), and the decoder prompt length."""
    with _quiet_internal_deprecation():            # Whisper's generate() passes suppress tokens beside a config
        out = model.generate(inputs, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=n,
                             eos_token_id=eos, pad_token_id=PAD, return_dict_in_generate=True, **kw).sequences
    start = 1
    if family_of(model) == "whisper":
        start = 3 if "language" not in kw else 4          # start, language, (task,) no-timestamps
    rows = []
    for row in out[:, start:].tolist():
        rows.append(row[:row.index(eos) + 1] if eos in row else row)
    return rows


def family_of(model) -> str:
    return {"whisper": "whisper", "speech_to_text": "speech2text"}.get(model.config.model_type, "vision")


def _mid_eos(model, inputs, mask) -> int:
    out = reference(model, inputs, mask, 20, V + 7)
    assert len({tuple(r) for r in out}) == len(out) and all(len(set(r)) >= 8 for r in out), out
    for token, _ in Counter(t for row in out for t in row[2:]).most_common(12):
        ends = {row.index(token) + 1 if token in row else 21 for row in out}
        if len(ends) > 1 and min(ends) <= 20:
            return token
    raise AssertionError(f"no token stops the rows at different lengths: {out}")


EXACT = tuple(m.name for m in METHODS.values() if m.exact and m.name not in ("hf_assisted", "hf_assisted_default"))


def _cases(spec):
    """(k, schedule) pairs: k 1 and 3 under every schedule the method takes (one k=1 call for greedy ones)."""
    if not spec.speculative:
        return [(1, "constant")]
    return [(k, schedule) for schedule in spec.schedules for k in (1, 3)]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_exact_method_equals_model_generate(family):
    target, draft = build(family), build(family, layers=1)
    inputs, mask = _inputs(family, 3)
    eos = _mid_eos(target, inputs, mask)
    problems, count, accepted = [], 0, 0
    for batch in (1, 3):
        x, m = inputs[:batch], None if mask is None else mask[:batch]
        for n in (5, 20):
            want = reference(target, x, m, n, eos)
            for method in EXACT:
                spec = METHODS[method]
                if batch > 1 and not spec.batch:
                    continue
                for dname, d in (("same", target), ("distil", draft)) if spec.needs_draft else (("-", None),):
                    for k, schedule in _cases(spec):
                        count += 1
                        got = generate(target, x, attention_mask=m, draft=d, method=method, num_draft_tokens=k,
                                       max_new_tokens=n, eos_token_id=eos, schedule=schedule)
                        if got.tokens != want:
                            problems.append(f"{method}/{schedule} {dname} k={k} batch={batch} n={n}: "
                                            f"{got.tokens} != {want}")
                        if dname == "distil":
                            accepted += sum(got.stats.accepted)
    assert not problems, f"{family}: {len(problems)} of {count} differ:\n" + "\n".join(problems[:10])
    assert accepted > 0                                  # the distil draft is right often enough to be kept


@pytest.mark.parametrize("family", list(FAMILIES))
def test_hf_assisted_at_batch_one(family):
    target, draft = build(family), build(family, layers=1)
    inputs, mask = _inputs(family, 1)
    want = reference(target, inputs, mask, 20, V + 7)
    for k in (1, 3):
        got = generate(target, inputs, attention_mask=mask, draft=draft, method="hf_assisted", num_draft_tokens=k,
                       max_new_tokens=20, eos_token_id=V + 7)
        assert got.tokens == want


def test_the_input_comes_by_the_models_own_keyword_too():
    for family, name in (("whisper", "input_features"), ("speech2text", "input_features"), ("vision", "pixel_values")):
        target = build(family)
        inputs, mask = _inputs(family, 2)
        positional = generate(target, inputs, attention_mask=mask, max_new_tokens=6).tokens
        assert generate(target, attention_mask=mask, max_new_tokens=6, **{name: inputs}).tokens == positional
        with pytest.raises(GenerationInputError, match="twice"):
            generate(target, inputs, max_new_tokens=6, **{name: inputs})


def test_whisper_language_task_and_detection_give_its_own_decoder_prompt():
    target, draft = build("whisper"), build("whisper", layers=1)
    inputs, _ = _inputs("whisper", 3)
    for kw in ({"language": "de"}, {"language": "en", "task": "translate"}, {}):   # {}: language detection
        with _quiet_internal_deprecation():
            full = target.generate(inputs, do_sample=False, max_new_tokens=12, eos_token_id=V + 7,
                                   return_dict_in_generate=True, **kw).sequences
        start = 4 if kw else 3
        want = full[:, start:].tolist()
        for method in ("greedy", "stairs_cached", "stairs_tree"):
            got = generate(target, inputs, draft=draft, method=method, max_new_tokens=12, eos_token_id=V + 7,
                           **({} if method == "greedy" else {"num_draft_tokens": 3}), **kw)
            assert got.tokens == want, (method, kw)
    # the begin-suppressed tokens are suppressed after the whole prompt, not after the start token
    first = generate(target, inputs, max_new_tokens=1, language="de").tokens
    assert all(row[0] not in (5, 6, 7) for row in first)


@pytest.mark.parametrize("kwargs, match", [
    ({"return_timestamps": True}, "return_timestamps"),
    ({"prompt_ids": torch.tensor([3, 4])}, "prompt_ids"),
    ({"no_speech_threshold": 0.6}, "no_speech_threshold"),
    ({"temperature": (0.0, 0.2)}, "temperature"),
    ({"do_sample": True}, "do_sample"),
    ({"language": "xx"}, "Whisper: Unsupported language"),
    ({"max_new_tokens": 62}, "decoder positions"),
])
def test_whisper_modes_we_do_not_reproduce_are_refused_by_name(kwargs, match):
    target = build("whisper")
    inputs, _ = _inputs("whisper", 1)
    kw = {"max_new_tokens": 5, **kwargs}
    with pytest.raises(SettingError, match=match):
        generate(target, inputs, method="greedy", **kw)


def test_long_form_audio_and_bad_inputs_are_refused():
    target = build("whisper")
    with pytest.raises(SettingError, match="long-form"):
        generate(target, torch.randn(1, 8, 64), max_new_tokens=5)
    with pytest.raises(GenerationInputError, match="floating-point"):
        generate(target, torch.ones(1, 8, dtype=torch.long), max_new_tokens=5)
    with pytest.raises(TypeError, match="input_features"):
        generate(archs.build("t5"), input_features=torch.randn(1, 8, 32), max_new_tokens=5)
    with pytest.raises(GenerationInputError, match="the draft's encoder takes input_ids"):
        generate(target, torch.randn(1, 8, 32), draft=archs.build("t5"), method="stairs_cached", max_new_tokens=5)


def test_lookup_searches_the_output_alone_and_says_so():
    target = build("speech2text")
    inputs, mask = _inputs("speech2text", 2)
    got = generate(target, inputs, attention_mask=mask, method="lookup", max_new_tokens=20)
    assert got.stats.lookup_source == "output"
    assert generate(archs.build("t5"), torch.tensor([[5, 6, 7, 8]]), method="lookup",
                    max_new_tokens=5).stats.lookup_source == "input+output"


@pytest.mark.parametrize("family", ["speech2text", "vision"])
def test_through_model_generate_custom_generate(family, tmp_path):
    from stairs_decoding.custom_generate import export

    folder = str(next(f for f in export(tmp_path) if f.name == "stairs_cached"))
    target, draft = build(family), build(family, layers=1)
    inputs, mask = _inputs(family, 3)
    want = target.generate(inputs, attention_mask=mask, do_sample=False, max_new_tokens=12, eos_token_id=V + 7)
    got = target.generate(inputs, attention_mask=mask, assistant_model=draft, custom_generate=folder,
                          trust_remote_code=True, num_assistant_tokens=3, max_new_tokens=12, eos_token_id=V + 7)
    assert torch.equal(got, want)


def test_whisper_through_custom_generate_is_refused_with_the_call_to_use(tmp_path):
    from stairs_decoding.custom_generate import export

    folder = str(next(f for f in export(tmp_path) if f.name == "stairs_cached"))
    target, draft = build("whisper"), build("whisper", layers=1)
    inputs, _ = _inputs("whisper", 1)
    with _quiet_internal_deprecation(), pytest.raises(GenerationInputError, match="stairs_decoding.generate"):
        target.generate(inputs, assistant_model=draft, custom_generate=folder, trust_remote_code=True,
                        max_new_tokens=5, language="de")
