"""The peer baseline: Hugging Face assisted generation, `target.generate(assistant_model=draft)`.

Same k, constant schedule, confidence-based early stopping of the draft turned off, so that it proposes
exactly what our methods propose (hf_assisted_default.py runs it with transformers' defaults instead). Hooks count each model's forward calls and time; the per-round accepted
counts are read off the target's cache length at each verification call.

Encoder-decoder models get an explicit all-ones `decoder_attention_mask`. Without one, transformers 5.x's
`generate()` (seen in 5.23) cannot tell on the assistant's later rounds that the decoder ids it is handed
repeat tokens already in the assistant's cache: it feeds the whole decoder sequence again on top of the cache,
so every round appends duplicates. The output stays exact (the target checks every token), but the draft then
drafts from a corrupted cache: with the target as its own assistant, acceptance fell to about 0.25 instead of
1.0, and each draft call re-read the whole sequence. The mask lets `generate()` slice off what is cached.
"""
from __future__ import annotations

import contextlib
import copy
import logging

import torch
from transformers import GenerationConfig

from ..compat import hook_cache, vocab_size
from ..stats import DecodingStats
from ..timing import Clock


class _Meter:
    """Forward hooks on one module: number of calls, seconds inside them, cache length at each call."""

    def __init__(self, module: torch.nn.Module, clock: Clock, name: str = "", events: list | None = None):
        self.clock, self.calls, self.seconds, self.cache_lens = clock, 0, 0.0, []
        self.name, self.events = name, events      # events: a list shared by meters, one name per finished call
        self.last_ids = None       # the decoder token ids of the latest call (the target's: last token + drafts)
        self._t0 = 0.0
        self._handles = [module.register_forward_pre_hook(self._pre, with_kwargs=True),
                         module.register_forward_hook(self._post)]

    def _pre(self, module, args, kwargs):
        cache = hook_cache(kwargs)
        self.cache_lens.append(cache.get_seq_length() if cache is not None else 0)
        self.last_ids = kwargs.get("decoder_input_ids", kwargs.get("input_ids"))
        self._t0 = self.clock()

    def _post(self, module, args, output):
        self.seconds += self.clock() - self._t0
        self.calls += 1
        if self.events is not None:
            self.events.append(self.name)

    def remove(self):
        for h in self._handles:
            h.remove()


@contextlib.contextmanager
def _assistant_settings(draft, k: int, *, defaults: bool = False, confidence: float | None = None):
    """k where transformers 5.x reads it (the assistant's generation_config; `num_assistant_tokens` passed to
    `target.generate()` has no effect there). Ours: constant schedule and no confidence stop, or with `confidence`
    transformers' own confidence stop at that threshold (schedule="confidence"); `defaults`: k alone, transformers'
    defaults for the rest. Restored afterwards (transformers also persists a threshold it adapts)."""
    cfg = draft.generation_config
    saved = {name: getattr(cfg, name, None) for name in
             ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")}
    cfg.num_assistant_tokens = k
    if not defaults:
        cfg.num_assistant_tokens_schedule = "constant"
        cfg.assistant_confidence_threshold = confidence or 0.0   # 0 = never stop drafting early on low confidence
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(cfg, name, value)


class _DropInternalConfigWarning(logging.Filter):
    """transformers' own candidate generator (5.24) calls ``assistant.generate(generation_config=...,
    max_new_tokens=..., min_new_tokens=...)`` every round and so logs "Passing `generation_config` together with
    generation-related arguments ... is deprecated" on every assisted run (Whisper's generate() does the same with its
    suppress tokens). Our own call passes a generation_config and model inputs only; this drops that one message, for
    the duration of our call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Passing `generation_config` together with generation-related" not in record.getMessage()


@contextlib.contextmanager
def _quiet_internal_deprecation():
    logger = logging.getLogger("transformers.generation.utils")
    flt = _DropInternalConfigWarning()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _own_hooks(model):
    """A shallow copy of `model`: the same weights, but its own forward-hook registry and generation config,
    so that a draft that *is* the target is still metered and configured separately."""
    clone = copy.copy(model)
    for name in ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                 "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs"):
        setattr(clone, name, type(getattr(model, name))())
    clone.generation_config = copy.deepcopy(model.generation_config)
    return clone


class EndAtEos:
    """A streamer in front of the caller's for transformers' own generate(): the prompt, then tokens up to the
    first EOS (transformers' assisted loop may put a round's tokens past it, which the output then drops)."""

    def __init__(self, streamer, eos_ids):
        self.streamer, self.eos_ids, self.prompt_seen, self.ended = streamer, set(eos_ids or ()), False, False

    @classmethod
    def wrap(cls, streamer, eos_ids):
        return None if streamer is None else cls(streamer, eos_ids)

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            self.streamer.put(value)
            return
        row = cut_after_eos(value.reshape(-1).tolist(), self.eos_ids) if not self.ended else []
        self.ended = self.ended or len(row) < value.numel() or bool(row and row[-1] in self.eos_ids)
        if row:
            self.streamer.put(torch.tensor(row, dtype=value.dtype))

    def end(self) -> None:
        self.streamer.end()


def cut_after_eos(row: list[int], eos_ids) -> list[int]:
    """A row of transformers' output up to and including its first EOS id (padding after it dropped)."""
    for i, tok in enumerate(row):
        if tok in (eos_ids or ()):
            return row[:i + 1]
    return row


def _config_for_hf(settings, target, max_new_tokens: int) -> GenerationConfig:
    """The resolved generation settings (the model's generation_config + the caller's), handed to transformers,
    which applies the same logits processors in its own assisted loop."""
    src = settings.config.to_dict() if settings.config is not None else {}
    config = GenerationConfig(**{k: v for k, v in src.items() if not k.startswith("_") and k != "transformers_version"})
    config.do_sample, config.num_beams = settings.sampling, 1     # sampling: transformers' speculative sampling
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    if settings.config is None or settings.config.min_new_tokens is None:
        config.min_length = 0 if settings.config is None else settings.config.min_length
    config.pad_token_id = settings.pad_id
    # None would fall back to the model's EOS; an id outside the vocabulary never stops
    config.eos_token_id = settings.eos_ids if settings.eos_ids else [vocab_size(target)]
    if target.config.is_encoder_decoder:
        config.decoder_start_token_id = settings.decoder_start_id
    config.return_dict_in_generate = True     # `.sequences` keeps the decoder prompt (Whisper's plain output drops it)
    return config


def prompt_length(settings, target, input_ids) -> int:
    """Tokens before the new ones in transformers' `.sequences`: the decoder prompt, or a decoder-only prompt."""
    if not target.config.is_encoder_decoder:
        return input_ids.shape[1]
    return settings.decoder_prompt.shape[1] if settings.decoder_prompt is not None else 1


def generate_run(target, draft, input_ids, attention_mask, *, k: int, max_new_tokens: int, schedule: str, settings,
                 stats: DecodingStats, clock: Clock, options: dict, streamer=None) -> list[list[int]]:
    """`target.generate(assistant_model=draft)` with k draft tokens per round (constant; with schedule="confidence"
    transformers' own confidence stop at `confidence_threshold`), metered."""
    return assisted_run(target, draft, input_ids, attention_mask, k=k, max_new_tokens=max_new_tokens,
                        settings=settings, stats=stats, clock=clock, defaults=False, streamer=streamer,
                        confidence=options["confidence_threshold"] if schedule == "confidence" else None)


def assisted_run(target, draft, input_ids, attention_mask, *, k: int, max_new_tokens: int, settings,
                 stats: DecodingStats, clock: Clock, defaults: bool, confidence: float | None = None,
                 streamer=None) -> list[list[int]]:
    """One metered `target.generate(assistant_model=draft)`. `defaults=False`: our settings (constant k, no
    confidence stop, the decoder mask of the module docstring); `defaults=True`: k alone, nothing else changed.
    The drafted count of each round is the number of draft decoder calls before its verification call."""
    enc_dec = bool(target.config.is_encoder_decoder)
    eos_ids = settings.eos_ids
    if draft is target:
        draft = _own_hooks(target)
    config = _config_for_hf(settings, target, max_new_tokens)
    events: list[str] = []
    meters = {"target": _Meter(target, clock, "target", events), "draft": _Meter(draft, clock, "draft", events)}
    if enc_dec:
        meters["target_enc"] = _Meter(target.get_encoder(), clock)
        # A shared encoder module (draft is target) is metered once; its time then counts for the target.
        if draft.get_encoder() is not target.get_encoder():
            meters["draft_enc"] = _Meter(draft.get_encoder(), clock)
    try:
        extra = {}
        if enc_dec and not defaults:   # see the module docstring: else the assistant re-feeds its decoder sequence
            extra["decoder_attention_mask"] = torch.ones(input_ids.shape[0], 1, dtype=torch.long,
                                                         device=input_ids.device)
        with _assistant_settings(draft, k, defaults=defaults, confidence=confidence), _quiet_internal_deprecation():
            out = target.generate(input_ids, attention_mask=attention_mask, assistant_model=draft,
                                  generation_config=config, streamer=EndAtEos.wrap(streamer, eos_ids), **extra
                                  ).sequences
    finally:
        for m in meters.values():
            m.remove()

    prefix = prompt_length(settings, target, input_ids)
    row = cut_after_eos(out[0, prefix:].tolist(), eos_ids)
    stats.new_tokens = len(row)
    stats.target_calls = meters["target"].calls
    stats.draft_calls = meters["draft"].calls
    stats.target_seconds = sum(m.seconds for name, m in meters.items() if name.startswith("target"))
    stats.draft_seconds = sum(m.seconds for name, m in meters.items() if name.startswith("draft"))
    # Round r starts with cur_len_r committed tokens: the prefix, then (cache length + 1) after a crop.
    starts = [prefix] + [n + 1 for n in meters["target"].cache_lens[1:]] + [prefix + len(row)]
    stats.accepted = [max(0, b - a - 1) for a, b in zip(starts, starts[1:])]
    stats.drafted = _drafted_per_round(events)
    # A round that kept fewer than it drafted, and did not end the output, was a rejection; the last round was one
    # when its last token is the target's own and differs from the draft's there (even when it is EOS).
    stats.rejections = sum(acc < d for acc, d in zip(stats.accepted[:-1], stats.drafted[:-1]))
    stats.rejections += _last_round_rejected(row, stats, meters["target"].last_ids)
    return [row]


def _last_round_rejected(row: list[int], stats: DecodingStats, verified) -> bool:
    """Whether the last round ended on a disagreement: its committed tokens (accepted + 1) end with the target's
    own token where the draft proposed another. `verified`: the decoder ids of the last verification call (the last
    committed token, then the drafts). An accepted draft that is EOS, or the length limit, is no rejection."""
    if not stats.accepted or not row or verified is None or stats.accepted[-1] >= stats.drafted[-1]:
        return False
    drafts = verified[0, -stats.drafted[-1]:].tolist() if stats.drafted[-1] else []
    i = stats.accepted[-1]                          # the position of the round's last committed token
    return i < len(drafts) and row[-1] != drafts[i]


def _drafted_per_round(events: list[str]) -> list[int]:
    """Draft calls between verification calls: ["draft", "draft", "target", "draft", "target"] → [2, 1]."""
    drafted, n = [], 0
    for name in events:
        if name == "draft":
            n += 1
        elif name == "target":
            drafted.append(n)
            n = 0
    return drafted
