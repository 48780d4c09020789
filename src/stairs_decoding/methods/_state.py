"""Decoding state shared by all methods.

`Sequence` holds the committed tokens (the same for every model: decoder start + output for an
encoder-decoder, prompt + output for a decoder-only model). `ModelState` is one model's view of it: its
encoder output (run once per input) and a KV cache over a prefix of the committed tokens. A model is fed
"what it has not seen yet", so methods never track per-model offsets by hand, and rolling back a rejected
draft is one `rollback()`.
"""
from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache, EncoderDecoderCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
from transformers.modeling_outputs import BaseModelOutput

from ..compat import output_cache, with_cache
from ..timing import Clock

# Cache layers whose rollback (crop) is exact; a sliding-window layer only after activate_past_recording().
ROLLBACK_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer)


def new_cache(model, *, rollback: bool):
    """The KV cache `model.generate` would build for `model` (from its config: full and sliding-window layers),
    made before the first forward pass; with `rollback`, layers that would drop old positions keep them until the
    next `crop`, as transformers' assisted decoding does, so that rejected drafts can be forgotten exactly."""
    self_attn = DynamicCache(config=model.config)
    if rollback:
        for layer in self_attn.layers:
            if hasattr(layer, "activate_past_recording"):
                layer.activate_past_recording()
    if model.config.is_encoder_decoder:
        return EncoderDecoderCache(self_attn, DynamicCache(config=model.config))
    return self_attn


def unsupported_cache(model) -> str | None:
    """Why `model`'s cache cannot serve our methods (None if it can)."""
    kind = getattr(model.config, "model_type", type(model).__name__)
    if hasattr(model, "_supports_default_dynamic_cache") and not model._supports_default_dynamic_cache():
        return f"model type {kind!r} has no standard KV cache"
    params = inspect.signature(model.forward).parameters
    if "cache" not in params and "past_key_values" not in params:
        return f"model type {kind!r} takes no KV cache in forward()"
    try:
        layers = DynamicCache(config=model.config).layers
    except Exception as e:  # noqa: BLE001 — any failure means we cannot build its cache
        return f"model type {kind!r}: its KV cache cannot be built ({type(e).__name__})"
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) not in ROLLBACK_LAYERS})
    if odd:
        return (f"model type {kind!r} keeps recurrent state ({', '.join(odd)}); only attention KV caches (full or "
                "sliding-window) are supported")
    return None


class Sequence:
    """Committed tokens of a batch, advanced in lockstep; rows finish independently at EOS."""

    def __init__(self, prefix: torch.Tensor, prefix_mask: torch.Tensor | None, *, max_new_tokens: int,
                 eos_ids: torch.Tensor | None, pad_id: int, settings=None):
        """`settings`: the target's generation settings (settings.Settings: its logits processors); none = plain
        argmax."""
        from ..settings import Settings

        self.settings = settings if settings is not None else Settings.plain(pad_id)
        self.tokens = prefix                      # [B, T]
        self.prefix_mask = prefix_mask            # decoder-only left padding, None when there is none
        self.prefix_len = prefix.shape[1]
        self.max_new_tokens = max_new_tokens
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        batch = prefix.shape[0]
        self.finished = torch.zeros(batch, dtype=torch.bool, device=prefix.device)
        self.lengths = torch.zeros(batch, dtype=torch.long, device=prefix.device)
        self.done = False
        # Positions of a left-padded prompt start at its first real token.
        self.pad_offset = None if prefix_mask is None else (prefix_mask.shape[1] - prefix_mask.sum(1, keepdim=True))

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - (self.length - self.prefix_len)

    def attention_mask(self, extra: int = 0) -> torch.Tensor | None:
        """Mask over the committed tokens plus `extra` uncommitted ones (None when nothing is padded)."""
        if self.prefix_mask is None:
            return None
        ones = self.prefix_mask.new_ones(self.prefix_mask.shape[0], self.length - self.prefix_len + extra)
        return torch.cat([self.prefix_mask, ones], dim=1)

    def position_ids(self, start: int, end: int) -> torch.Tensor | None:
        if self.pad_offset is None:
            return None
        pos = torch.arange(start, end, device=self.tokens.device).unsqueeze(0) - self.pad_offset
        return pos.clamp_(min=0)

    def append(self, new: torch.Tensor) -> int:
        """Commit `new` [B, m]; returns how far the longest still-running row advanced (≤ m)."""
        m = new.shape[1]
        new = new.masked_fill(self.finished.unsqueeze(1), self.pad_id)
        self.tokens = torch.cat([self.tokens, new], dim=1)
        running = ~self.finished
        emitted = running.long() * m
        if self.eos_ids is not None:
            is_eos = torch.isin(new, self.eos_ids) & running.unsqueeze(1)
            hit = is_eos.any(1)
            first = is_eos.int().argmax(1) + 1
            emitted = torch.where(hit, first, emitted)
            self.finished |= hit
        self.lengths += emitted
        self.done = bool(self.finished.all()) or self.remaining <= 0
        return int(emitted.max())

    def outputs(self) -> list[list[int]]:
        gen = self.tokens[:, self.prefix_len:].tolist()
        return [row[:n] for row, n in zip(gen, self.lengths.tolist())]


def _on(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """`x` on `device` (itself when it is there already, or None)."""
    return x if x is None or x.device == device else x.to(device)


class ModelState:
    """One model's encoder output and KV cache over a prefix of the committed `Sequence`."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, clock: Clock,
                 encoder_outputs=None, rollback: bool = False):
        """`encoder_outputs`: reuse another model's encoder output (a draft whose encoder *is* the target's).
        `rollback`: the method will `rollback()` this model's cache (rejected drafts)."""
        self.model = model
        self.clock = clock
        # The device the model takes its inputs on (with a device_map: its embedding's). A draft may sit on another
        # device than the committed tokens (draft.device=cuda:1): inputs go over, logits come back (no-ops when
        # they share one).
        self.device = model.device
        input_ids, attention_mask = _on(input_ids, self.device), _on(attention_mask, self.device)
        self.enc_dec = bool(model.config.is_encoder_decoder)
        self.rollback_enabled = rollback
        self.cache = new_cache(model, rollback=rollback)
        layers = getattr(self.cache, "self_attention_cache", self.cache).layers
        self._sliding = any(isinstance(layer, DynamicSlidingWindowLayer) for layer in layers)
        self.cache_len = 0
        self.calls = 0
        self.seconds = 0.0
        self._keep_arg = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._expanded: dict[int, tuple] = {}
        if self.enc_dec:
            self.encoder_mask = attention_mask
            if encoder_outputs is not None:
                self.encoder_outputs = encoder_outputs
            else:
                t0 = clock()
                self.encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
                self.seconds += clock() - t0

    # -- cached decoding -------------------------------------------------------------------------
    def step(self, seq: Sequence, extra: torch.Tensor | None = None, keep: int = 1) -> torch.Tensor:
        """Feed what this model has not seen of (committed tokens + `extra`) through the KV cache.

        `extra` are uncommitted tokens (drafts); a draft model calls this once per drafted token with the
        drafts so far, and is fed only the newest each time.
        Returns the logits of the last `keep` fed positions, [B, keep, V].
        """
        # The fed stream is committed tokens then `extra`; the cache already holds its first cache_len.
        length, start = seq.length, self.cache_len
        n_extra = 0 if extra is None else extra.shape[1]
        if not n_extra:
            new = seq.tokens[:, start:]
        elif start >= length:
            new = extra[:, start - length:]
        else:
            new = torch.cat([seq.tokens[:, start:], extra], dim=1)
        t0 = self.clock()
        if self.enc_dec:
            out = self.model(encoder_outputs=self.encoder_outputs, attention_mask=self.encoder_mask,
                             decoder_input_ids=_on(new, self.device), use_cache=True,
                             **with_cache(self.model, self.cache))
        else:
            kwargs = {"logits_to_keep": keep} if self._keep_arg else {}
            out = self.model(input_ids=_on(new, self.device), attention_mask=_on(seq.attention_mask(n_extra), self.device),
                             position_ids=_on(seq.position_ids(self.cache_len, self.cache_len + new.shape[1]),
                                              self.device),
                             use_cache=True, **with_cache(self.model, self.cache), **kwargs)
        self.seconds += self.clock() - t0
        self.calls += 1
        self.cache = output_cache(out)
        self.cache_len += new.shape[1]
        return _on(out.logits[:, -keep:], seq.tokens.device)

    def rollback(self, length: int) -> None:
        """Forget cached positions from `length` on (rejected drafts). Also called with nothing to forget: a
        sliding-window layer then drops what lies outside its window (crop(0))."""
        if not self.rollback_enabled:
            raise RuntimeError("rollback() on a ModelState made without rollback=True")
        if self.cache_len > length:
            self.cache.crop(length - self.cache_len)   # negative = number of positions to drop
            self.cache_len = length
        elif self._sliding and self.cache_len:
            self.cache.crop(0)

    def reset(self) -> None:
        self.cache = new_cache(self.model, rollback=self.rollback_enabled)
        self.cache_len = 0

    # -- uncached scoring of a batch of rows (the paper's stairs) --------------------------------
    def score(self, rows: torch.Tensor, rows_mask: torch.Tensor, seq: Sequence) -> torch.Tensor:
        """One forward over `rows` [B*r, L] (each row = committed tokens + a right-padded suffix), no cache.

        Rows are grouped per input: rows [b*r, (b+1)*r) continue input row b. Returns all logits [B*r, L, V].
        """
        r = rows.shape[0] // seq.tokens.shape[0]
        t0 = self.clock()
        if self.enc_dec:
            enc, enc_mask = self._expand_encoder(r)
            out = self.model(encoder_outputs=enc, attention_mask=enc_mask, decoder_input_ids=_on(rows, self.device),
                             decoder_attention_mask=_on(rows_mask, self.device), use_cache=False)
        else:
            mask = rows_mask
            if seq.prefix_mask is not None:
                prefix = seq.prefix_mask.repeat_interleave(r, 0)
                mask = torch.cat([prefix, rows_mask[:, seq.prefix_len:]], dim=1)
            pos = (mask.cumsum(1) - 1).clamp_(min=0)
            out = self.model(input_ids=_on(rows, self.device), attention_mask=_on(mask, self.device),
                             position_ids=_on(pos, self.device), use_cache=False)
        self.seconds += self.clock() - t0
        self.calls += 1
        return _on(out.logits, seq.tokens.device)

    def _expand_encoder(self, r: int):
        if r not in self._expanded:
            h = self.encoder_outputs.last_hidden_state.repeat_interleave(r, 0)
            m = None if self.encoder_mask is None else self.encoder_mask.repeat_interleave(r, 0)
            self._expanded[r] = (BaseModelOutput(last_hidden_state=h), m)
        return self._expanded[r]
