"""Generation settings that change greedy output are honoured exactly, or refused by name before any work.

For each setting a checkpoint may ship in its generation_config (BART's forced BOS/EOS, Marian's bad_words_ids,
Whisper-style suppress_tokens, ...) or a user may pass, on a tiny BART and a tiny Llama: every method's output equals
`model.generate(do_sample=False, num_beams=1)` with the same setting, whether it sits in the model's
generation_config, in a generation_config passed to `generate()` or in a keyword argument. Each setting is checked to
change the reference output, or the comparison would prove nothing.
"""
import copy
from collections import Counter

import pytest
import torch
from transformers import GenerationConfig

import archs
from stairs_decoding import GenerationInputError, generate
from stairs_decoding.methods import METHODS as REGISTRY

ARCHS = ("bart", "llama")
# every exact method of the registry under each schedule it supports
METHODS = tuple((m.name, s) for m in REGISTRY.values() if m.exact for s in m.schedules)
MAX_NEW = 20
_CACHE = {}


def setup(name):
    """Target, a perturbed draft, a padded batch of 3, single prompts, the EOS used, and frequent tokens."""
    if name not in _CACHE:
        target = archs.build(name)
        draft = archs.perturbed(target)
        g = torch.Generator().manual_seed(11)
        lengths, width = [5, 9, 7], 9
        ids = torch.full((3, width), archs.PAD, dtype=torch.long)
        mask = torch.zeros((3, width), dtype=torch.long)
        for b, n in enumerate(lengths):
            row = torch.randint(3, archs.VOCAB, (n,), generator=g)
            if target.config.is_encoder_decoder:
                ids[b, :n], mask[b, :n] = row, 1
            else:
                ids[b, width - n:], mask[b, width - n:] = row, 1
        plain = _hf(target, ids, mask, None, {})
        counts = Counter(t for row in plain for t in row)
        frequent = [t for t, _ in counts.most_common(4)]
        firsts = sorted({row[0] for row in plain})
        early = Counter(t for row in plain for t in row[1:6]).most_common(1)[0][0]   # an EOS that stops a row early
        _CACHE[name] = (target, draft, ids, mask, (frequent, firsts, early))
    return _CACHE[name]


def _hf(model, ids, mask, eos, settings, n=MAX_NEW):
    out = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=1, max_new_tokens=n,
                         eos_token_id=eos if eos is not None else archs.VOCAB + 7, pad_token_id=archs.PAD, **settings)
    start = 1 if model.config.is_encoder_decoder else ids.shape[1]
    rows = []
    for row in out[:, start:].tolist():
        if eos is not None and eos in row:
            row = row[:row.index(eos) + 1]
        rows.append(row)
    return rows


def _cases(tokens):
    """(setting name, value, eos): eos=None generates MAX_NEW tokens, else the EOS token to stop at."""
    (a, b, c, d), firsts, early = tokens
    return [
        ("forced_bos_token_id", 5, None),
        ("forced_eos_token_id", 9, None),
        ("no_repeat_ngram_size", 2, None),
        ("repetition_penalty", 1.8, None),
        ("repetition_penalty", 0.6, None),
        ("bad_words_ids", [[a], [b, c]], None),
        ("suppress_tokens", [a, b], None),
        ("begin_suppress_tokens", firsts, None),
        ("min_new_tokens", 12, early),
        ("min_length", 14, early),
    ]


# forced_bos_token_id acts on the first decoder position only: an encoder-decoder setting (on a decoder-only model it
# would act only on a one-token prompt, as in transformers).
CASES = [(arch, i) for arch in ARCHS for i in range(10) if not (arch == "llama" and i == 0)]


@pytest.mark.parametrize("arch,case", CASES)
def test_setting_is_honoured_by_every_method(arch, case):
    target, draft, ids, mask, tokens = setup(arch)
    name, value, eos = _cases(tokens)[case]
    ref = _hf(target, ids, mask, eos, {name: value})
    assert ref != _hf(target, ids, mask, eos, {}), f"{name}={value} does not change the output: proves nothing"
    single, ref_single = ids[1:2, mask[1].bool()], _hf(target, ids[1:2, mask[1].bool()], None, eos, {name: value})
    eos_kw = {"eos_token_id": eos} if eos is not None else {"ignore_eos": True}

    in_model = copy.copy(target)                       # the same weights, a generation_config carrying the setting
    in_model.generation_config = copy.deepcopy(target.generation_config)
    setattr(in_model.generation_config, name, value)
    ways = {"keyword": (target, {name: value}),
            "generation_config argument": (target, {"generation_config": GenerationConfig(**{name: value})}),
            "model's generation_config": (in_model, {})}
    problems = []
    for way, (model, extra) in ways.items():
        for method, schedule in METHODS:
            for k in (1, 3):
                batch = REGISTRY[method].batch
                got = generate(model, ids if batch else single, attention_mask=mask if batch else None, draft=draft,
                               method=method, schedule=schedule, num_draft_tokens=k, max_new_tokens=MAX_NEW,
                               **eos_kw, **extra).tokens
                if got != (ref if batch else ref_single):
                    problems.append(f"{way} {method}/{schedule} k={k}: {got} != {ref if batch else ref_single}")
    assert not problems, f"{arch} {name}={value}:\n" + "\n".join(problems)


@pytest.mark.parametrize("arch", ARCHS)
def test_refused_settings_name_themselves_before_any_work(arch):
    target, draft, ids, mask, _ = setup(arch)
    calls = []
    hook = target.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        for cfg, needle in ((GenerationConfig(guidance_scale=2.0), "guidance_scale"),
                            (GenerationConfig(stop_strings=["x"]), "stop_strings"),
                            (GenerationConfig(max_time=5.0), "max_time")):
            with pytest.raises(GenerationInputError, match=needle) as err:
                generate(target, ids, attention_mask=mask, draft=draft, method="stairs_cached", generation_config=cfg)
            assert "\n" not in str(err.value)
        with pytest.raises(TypeError, match="guidance_scale"):
            generate(target, ids, attention_mask=mask, draft=draft, method="stairs_cached", guidance_scale=2.0)
    finally:
        hook.remove()
    assert not calls


def test_encoder_decoder_without_decoder_start_uses_bos_like_transformers():
    target = archs.build("mbart_no_start")
    assert target.generation_config.decoder_start_token_id is None and target.generation_config.bos_token_id is not None
    ids, mask = setup("bart")[2:4]
    ref = _hf(target, ids, mask, None, {})
    for method in ("greedy", "stairs", "stairs_cached"):
        got = generate(target, ids, attention_mask=mask, draft=archs.perturbed(target), method=method,
                       max_new_tokens=MAX_NEW, ignore_eos=True).tokens
        assert got == ref, method


def test_encoder_decoder_without_decoder_start_or_bos_is_one_clear_error():
    target = copy.copy(archs.build("mbart_no_start"))
    target.generation_config = copy.deepcopy(target.generation_config)
    target.generation_config.bos_token_id = None
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(GenerationInputError, match="decoder_start_token_id") as err:
        generate(target, ids, max_new_tokens=3)
    assert "\n" not in str(err.value) and "mbart" in str(err.value)


def test_unsupported_models_are_refused_by_type_before_any_work():
    from transformers import MambaConfig, MambaForCausalLM

    model = MambaForCausalLM(MambaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, state_size=4)).eval()
    for method in ("greedy", "stairs_cached", "hf_assisted"):
        with pytest.raises(GenerationInputError, match="'mamba'") as err:
            generate(model, torch.tensor([[3, 4, 5]]), draft=model, method=method, max_new_tokens=4)
        assert "\n" not in str(err.value)
