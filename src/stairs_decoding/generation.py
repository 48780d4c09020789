"""`generate()`: validate once, build the decoding state, dispatch to the method's module."""
from __future__ import annotations

import torch

from . import methods
from . import encoder_inputs
from .compat import vocab_size
from . import settings as _settings
from .errors import GenerationInputError
from .methods import _lean
from .methods._state import unsupported_cache
from .stats import DecodingStats, GenerationResult
from .timing import Clock, model_devices

# Arguments of beam search and contrastive search, and the value that means "one greedy or sampled sequence".
_NOT_GREEDY = {"num_beams": 1, "num_return_sequences": 1, "penalty_alpha": None}


def generate(target, input_ids=None, *, draft=None, method: str = "greedy", num_draft_tokens: int = 4,
             max_new_tokens: int = 64, attention_mask=None, eos_token_id=None, schedule: str = "constant",
             ignore_eos: bool = False, generation_config=None, num_branches: int | None = None,
             max_ngram: int | None = None, min_ngram: int | None = None, confidence_threshold: float | None = None,
             draft_forward: str | None = None, verify_attention: str | None = None, streamer=None,
             **kwargs) -> GenerationResult:
    """Greedy generation (or sampling) with `method`; every method returns what `target.generate(do_sample=False)`
    returns, and with do_sample=True a sample of what `target.generate(do_sample=True)` samples (speculative
    sampling: the same distribution; methods/_speculative.py).

    Args:
        target, draft: loaded transformers models, both encoder-decoder or both decoder-only.
        input_ids: LongTensor [batch, seq] — encoder input, or the prompt of a decoder-only model
            (padded rows need `attention_mask`; any padding side); or an encoder's other input, here or by its
            keyword, as `model.generate` takes it (`input_features`, `pixel_values`: encoder_inputs.py).
        method: a name in `methods.METHODS` (docs/methods.md).
        num_draft_tokens: k, draft tokens proposed per round (the paper's "assistant batch size"); for lookup and
            the lookup branches of stairs_tree, the most tokens a match proposes.
        max_new_tokens: new tokens per row at most. eos_token_id: int or list; default: the target's generation config.
        schedule: "constant" k; "heuristic" (+2 after a fully accepted round, −1 otherwise); "confidence" (a
            round stops drafting once the draft's top probability is below `confidence_threshold` in every running
            row; hf_assisted: transformers' assistant_confidence_threshold); "auto"
            (speculate, or run plain greedy steps, whichever this process measured faster for calls of this shape:
            methods/_auto.py; stats.fallback_round); "cost" (each round's k, 0..num_draft_tokens, maximises
            measured tokens per second: methods/_cost.py). Each method's `Method.schedules` says which it takes.
            With a batch, every row keeps its own accepted drafts where the models allow it (stats.ragged).
        ignore_eos: generate exactly `max_new_tokens` tokens (benchmarks on random-weight models).
        num_branches: stairs_tree's candidate continuations per round and row (default 3; 1 = stairs_cached).
        max_ngram, min_ngram: n-gram sizes the source lookup matches, longest first (lookup, stairs_tree; 2, 1).
        confidence_threshold: schedule="confidence"'s stopping probability (default 0.4).
        draft_forward: the draft's decoder steps (stairs, stairs_cached, stairs_tree): "lean" (methods/_lean.py's T5
            step: the model's logits without its per-call overhead; T5/mT5 drafts, sdpa), "transformers"
            (`draft(...)`) or "auto" (default: lean where it can run). What ran is `stats.draft_forward`.
        verify_attention: the SDPA kernel of the target's forwards of several tokens (verifications): "default"
            (torch's choice, as `model.generate`) or "math" (torch's math backend: on some CPUs far cheaper for several
            query rows; scripts/verify_kernels.py). Options a method does not read are refused (Method.options).
        streamer: transformers' streamer protocol (TextStreamer, ...; batch size 1): `put` the prompt (an
            encoder-decoder's decoder start), then each round's committed tokens as they are committed, then `end`.
        generation_config, **kwargs: generation settings as for `model.generate`. The target's own
            generation_config applies (a checkpoint's forced_bos_token_id, bad_words_ids, ...), then these;
            the settings that change greedy output (`settings.GREEDY_SETTINGS`: forced BOS/EOS, no_repeat_ngram_size,
            min_length/min_new_tokens, repetition_penalty, bad_words_ids, suppress_tokens, ...) are applied
            through transformers' own logits processors; one that cannot be honoured exactly is refused.
        do_sample, temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff, eta_cutoff: sampling, with
            transformers' own warpers on the target's and the draft's scores alike (the model's generation_config
            supplies what is not given, as in `model.generate`); temperature=0 is greedy. Draws use torch's global
            RNG (`torch.manual_seed` makes a call reproducible). Methods with `Method.sampling` only.
    """
    input_ids, model_args, greedy_settings = _take_inputs(target, input_ids, kwargs)
    _check_streamer(streamer, input_ids)
    options = _check_args(target, draft, input_ids, attention_mask, method, num_draft_tokens, max_new_tokens, schedule,
                          dict(num_branches=num_branches, max_ngram=max_ngram, min_ngram=min_ngram,
                               confidence_threshold=confidence_threshold, draft_forward=draft_forward,
                               verify_attention=verify_attention))
    if greedy_settings.get("do_sample") and not methods.METHODS[method].sampling:
        _fail(f"do_sample=True: {method!r} decodes greedily only; sampling methods: "
              f"{', '.join(m.name for m in methods.METHODS.values() if m.sampling)}")
    device = target.device
    input_ids = input_ids.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
        if bool(attention_mask.all()) and not methods.METHODS[method].caller_mask:
            attention_mask = None       # ours: all ones = no mask (transformers' generate infers one from pad ids)
    enc_dec = bool(target.config.is_encoder_decoder)
    if not enc_dec:    # decoder-only prompts are decoded left-padded, as model.generate expects them
        input_ids, attention_mask = _left_align(input_ids, attention_mask,
                                                _pad_guess(target, generation_config, greedy_settings))
    settings = _settings.resolve(target, input_ids, attention_mask, max_new_tokens=max_new_tokens,
                                 eos_token_id=eos_token_id, ignore_eos=ignore_eos,
                                 generation_config=generation_config, settings=greedy_settings, model_args=model_args)
    stats = DecodingStats()
    clock = Clock(*model_devices(target), *model_devices(draft if methods.METHODS[method].needs_draft else None))

    with torch.inference_mode():
        t0 = clock()
        tokens = methods.METHODS[method].run(target, draft, input_ids, attention_mask, k=num_draft_tokens,
                                             max_new_tokens=max_new_tokens, schedule=schedule, settings=settings,
                                             stats=stats, clock=clock, options=options, streamer=streamer)
        stats.total_seconds = clock() - t0
    return GenerationResult(tokens=tokens, stats=stats)


# -- validation: everything is checked before any model runs ----------------------------------------------
def _fail(msg: str):
    raise GenerationInputError(msg)


def _take_inputs(target, input_ids, kwargs: dict) -> tuple:
    """The encoder input (or prompt), the model's own arguments (Whisper's language/task) and the generation
    settings, out of `generate()`'s arguments."""
    input_ids, model_args = encoder_inputs.take(target, input_ids, kwargs)
    settings = _check_kwargs(kwargs)
    if input_ids is None:
        name = encoder_inputs.input_name(target)
        _fail(f"no input: pass the {'prompt' if name == 'input_ids' else 'encoder input'} positionally or as {name}=")
    return input_ids, model_args, settings


def _check_streamer(streamer, input_ids) -> None:
    if streamer is None:
        return
    if not (callable(getattr(streamer, "put", None)) and callable(getattr(streamer, "end", None))):
        _fail(f"streamer must have put() and end() (transformers' BaseStreamer), got {type(streamer).__name__}")
    if torch.is_tensor(input_ids) and input_ids.dim() >= 2 and input_ids.shape[0] != 1:
        _fail(f"streamer= streams one sequence: batch size 1 (as transformers' generate), got {input_ids.shape[0]}")


def _check_kwargs(kwargs: dict) -> dict:
    """Generation and sampling settings are returned; beam/contrastive arguments must say "one sequence"; a sampling
    parameter without do_sample=True is refused (model.generate would ignore it); anything else is a TypeError."""
    settings = {}
    for name, value in kwargs.items():
        if name in _settings.GREEDY_SETTINGS or name in _settings.SAMPLING_SETTINGS:
            settings[name] = value
            continue
        if name not in _NOT_GREEDY:
            raise TypeError(f"generate() got an unexpected keyword argument {name!r}")
        if value is not None and value != _NOT_GREEDY[name]:
            _fail(f"{name}={value!r}: beam and contrastive search are not supported (num_beams=1, "
                  "num_return_sequences=1; greedy, or sampling with do_sample=True)")
    do_sample = settings.get("do_sample")
    if do_sample not in (None, True, False):
        _fail(f"do_sample must be True or False, got {do_sample!r}")
    if not do_sample:
        given = [f"{n}={settings[n]!r}" for n in _settings.SAMPLING_SETTINGS[1:] if settings.get(n) is not None]
        if given:
            _fail(f"{', '.join(given)} only applies to sampling: pass do_sample=True (or leave it unset)")
    temperature = settings.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or temperature < 0):
        _fail(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    return settings


VERIFY_ATTENTION = ("default", "math")


def validate_options(spec, schedule: str, **given) -> dict:
    """The method's options (methods.OPTION_DEFAULTS), each checked; one the method does not read is refused."""
    for name, value in given.items():
        if value is None:
            continue
        if name not in spec.options:
            takers = [m.name for m in methods.METHODS.values() if name in m.options]
            _fail(f"{name}={value!r} does not apply to method {spec.name!r} (it applies to: {', '.join(takers)})")
        if name == "draft_forward":
            if value not in _lean.CHOICES:
                _fail(f"draft_forward must be one of {', '.join(map(repr, _lean.CHOICES))}, got {value!r}")
        elif name == "verify_attention":
            if value not in VERIFY_ATTENTION:
                _fail(f"verify_attention must be one of {', '.join(map(repr, VERIFY_ATTENTION))}, got {value!r}")
        elif name == "confidence_threshold":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                _fail(f"confidence_threshold must be a probability in (0, 1), got {value!r}")
            if schedule != "confidence":
                _fail(f"confidence_threshold={value!r} applies to schedule='confidence' only (got {schedule!r})")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(f"{name} must be an integer >= 1, got {value!r}")
    options = spec.option_values(given)
    if "min_ngram" in options and options["min_ngram"] > options["max_ngram"]:
        _fail(f"min_ngram={options['min_ngram']} is larger than max_ngram={options['max_ngram']}")
    return options


def _check_args(target, draft, input_ids, attention_mask, method, k, max_new_tokens, schedule, options) -> dict:
    """Every argument, before any model runs; returns the method's options (defaults filled in)."""
    if method not in methods.METHODS:
        _fail(f"unknown method {method!r}; valid methods: {', '.join(methods.METHODS)}")
    spec = methods.METHODS[method]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        _fail(f"num_draft_tokens (k) must be an integer >= 1, got {k!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        _fail(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if schedule not in methods.SCHEDULES:
        _fail(f"unknown schedule {schedule!r}; valid schedules: {', '.join(methods.SCHEDULES)}")
    if schedule not in spec.schedules:
        _fail(f"schedule={schedule!r} is not supported by {method!r} (it supports: {', '.join(spec.schedules)})")
    options = validate_options(spec, schedule, **options)
    tokens = encoder_inputs.input_name(target) == "input_ids"
    if tokens:
        _check_token_input(input_ids, attention_mask)
    else:
        encoder_inputs.check(target, input_ids, attention_mask)
    if spec.needs_draft:
        if draft is None:
            _fail(f"method {method!r} needs a draft model (draft=...)")
        tv, dv = vocab_size(target), vocab_size(draft)
        if tv != dv:
            _fail(f"draft and target vocabularies differ: target has {tv} tokens, draft has {dv}")
        if bool(draft.config.is_encoder_decoder) != bool(target.config.is_encoder_decoder):
            _fail("draft and target must both be encoder-decoder or both decoder-only")
        if encoder_inputs.input_name(draft) != encoder_inputs.input_name(target):
            _fail(f"the draft's encoder takes {encoder_inputs.input_name(draft)} but the target's takes "
                  f"{encoder_inputs.input_name(target)}")
        why = _lean.unsupported(draft) if options.get("draft_forward") == "lean" else None
        if why:
            _fail(f"draft_forward='lean' cannot run this draft: {why}; use 'auto' or 'transformers'")
    if not spec.batch and input_ids.shape[0] > 1:
        _fail(f"{method}: supports batch size 1 only, got {input_ids.shape[0]} rows")
    for name, model in (("target", target), ("draft", draft if spec.needs_draft else None)):
        if model is None:
            continue
        if spec.uses_target or name == "draft":
            why = unsupported_cache(model)
            if why:
                _fail(f"the {name} cannot be decoded with {method!r}: {why}")
        if model.training:
            _fail(f"the {name} model is in training mode (dropout on); call .eval() first")
        limit = _max_positions(model.config) if tokens else None
        length = input_ids.shape[1]
        if limit is not None and not model.config.is_encoder_decoder:
            if length + max_new_tokens > limit:
                _fail(f"prompt of {length} tokens + max_new_tokens={max_new_tokens} exceeds the {name}'s "
                      f"{limit} positions")
        elif limit is not None and length > limit:
            _fail(f"prompt has {length} tokens but the {name} accepts at most {limit}")
    return options


def _check_token_input(input_ids, attention_mask) -> None:
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2:
        _fail("input_ids must be a 2-D LongTensor [batch, seq]")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        _fail(f"empty prompt: input_ids has shape {tuple(input_ids.shape)}")
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            _fail(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
        empty = (attention_mask.sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            _fail(f"empty prompt: row {empty[0]} of attention_mask has no tokens")


def _max_positions(config) -> int | None:
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _pad_guess(model, generation_config, settings: dict) -> int:
    """The pad id to fill moved padding with (what model.generate would pad with)."""
    for cfg in (settings, generation_config, model.generation_config):
        if cfg is None:
            continue
        pad = cfg.get("pad_token_id") if isinstance(cfg, dict) else getattr(cfg, "pad_token_id", None)
        if pad is not None:
            return int(pad)
    eos = model.generation_config.eos_token_id
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    return int(eos) if eos is not None else 0


def _left_align(input_ids, attention_mask, pad_id: int):
    """Decoder-only prompts are decoded left-padded; right- or mixed-padded rows are moved to the right. Rows
    already left-padded are kept as they are (padding tokens included), as model.generate sees them."""
    if attention_mask is None:
        return input_ids, None
    lengths = attention_mask.sum(1)
    width = input_ids.shape[1]
    expected = torch.arange(width, device=attention_mask.device).unsqueeze(0) >= (width - lengths).unsqueeze(1)
    if bool((attention_mask.bool() == expected).all()):
        return input_ids, attention_mask
    out_ids = torch.full_like(input_ids, pad_id)
    out_mask = torch.zeros_like(attention_mask)
    for b in range(input_ids.shape[0]):
        real = input_ids[b][attention_mask[b].bool()]
        out_ids[b, width - lengths[b]:] = real
        out_mask[b, width - lengths[b]:] = 1
    return out_ids, out_mask
