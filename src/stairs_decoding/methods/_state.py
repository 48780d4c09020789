"""Decoding state shared by all methods.

`Sequence` holds the committed tokens (the same for every model: decoder start + output for an
encoder-decoder, prompt + output for a decoder-only model). `ModelState` is one model's view of it: its
encoder output (run once per input) and a KV cache over a prefix of the committed tokens. A model is fed
"what it has not seen yet", so methods never track per-model offsets by hand, and rolling back a rejected
draft is one `rollback()`.
"""
from __future__ import annotations

import contextlib
import copy
import inspect

import torch
from transformers import DynamicCache, EncoderDecoderCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
from transformers.modeling_outputs import BaseModelOutput

from ..compat import output_cache, with_cache
from ..timing import Clock
from ._lean import LeanT5Step

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


def ragged_unsupported(model) -> str | None:
    """Why rows of `model` cannot advance by different counts in one batch (None if they can): the re-aligned rows
    (left-padded by different amounts) must keep their outputs, so positions must come from each row's own tokens."""
    cache = new_cache(model, rollback=True)
    layers = getattr(cache, "self_attention_cache", cache).layers
    if any(type(layer) is not DynamicLayer for layer in layers):
        return "its cache has sliding-window layers"
    if model.config.is_encoder_decoder:
        if getattr(model.config, "relative_attention_num_buckets", None) is None:
            return "its decoder counts positions from the cache length (absolute position embeddings)"
    elif "position_ids" not in inspect.signature(model.forward).parameters:
        return "its forward() takes no position_ids"
    return None


class Sequence:
    """Committed tokens of a batch; rows finish independently at EOS or at max_new_tokens.

    Rows advance in lockstep (`append`: the same number of new columns for every row) or each by its own count
    (`append_rows`, the per-row acceptance of a speculative batch). Then the rows stay right-aligned: a row that
    advanced less than the furthest one is shifted right and padded on the left (masked), so every row ends at the
    last column and its tokens keep their distances to each other; `layout` counts these shifts and each model
    re-aligns its KV cache the same way (`ModelState.realign`). Position ids count from each row's first real token.
    """

    def __init__(self, prefix: torch.Tensor, prefix_mask: torch.Tensor | None, *, max_new_tokens: int,
                 eos_ids: torch.Tensor | None, pad_id: int, settings=None, ragged: bool = False,
                 compact: bool = False, streamer=None):
        """`settings`: the target's generation settings (settings.Settings: its logits processors); none = plain
        argmax. `ragged`: rows may advance by their own counts (`append_rows`); else `append_rows` takes the
        minimum count over the running rows (lockstep). `compact`: finished rows leave the batch (`drop_finished`).
        `streamer` (one row): `put` the prefix now, then every commit's emitted tokens (transformers' protocol)."""
        from ..settings import Settings

        self.settings = settings if settings is not None else Settings.plain(pad_id)
        self.tokens = prefix                      # [B, T]
        self.mask = prefix_mask                   # over the committed tokens; None while nothing is padded
        self.prefix_len = prefix.shape[1]
        self.max_new_tokens = max_new_tokens
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.ragged = ragged
        self.compacts = compact
        batch = prefix.shape[0]
        self.rows = torch.arange(batch, device=prefix.device)   # the input row of each row still in the batch
        self._dropped: dict[int, list[int]] = {}                # outputs of rows that left the batch
        self.finished = torch.zeros(batch, dtype=torch.bool, device=prefix.device)
        self.lengths = torch.zeros(batch, dtype=torch.long, device=prefix.device)
        self.emitted = torch.zeros(batch, dtype=torch.long, device=prefix.device)   # of the last append
        self.gen_start = torch.full((batch,), self.prefix_len, dtype=torch.long, device=prefix.device)
        self.done = False
        self.layout = 0                           # number of re-alignments so far
        self.last_shift = None                    # the last re-alignment: (shift, old length, valid, moved), [B] each
        # Positions of a left-padded row start at its first real token.
        self.pad_offset = None if prefix_mask is None else (prefix_mask.shape[1] - prefix_mask.sum(1, keepdim=True))
        self.streamer = streamer
        if streamer is not None:
            streamer.put(prefix.cpu())
        # The last position each row may ever keep a token at, [B, 1]. A row ahead of the others is fed filler draft
        # positions past it (k is sized on the row furthest behind); those tokens can never be kept, so they take
        # this position, which a learned position table has (model.generate's own limit for the row).
        real = prefix_mask.sum(1, keepdim=True) if prefix_mask is not None else \
            torch.full((batch, 1), self.prefix_len, dtype=torch.long, device=prefix.device)
        self.last_position = real + max_new_tokens - 1

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    @property
    def remaining(self) -> int:
        """New tokens the furthest-behind running row may still take."""
        left = (self.max_new_tokens - self.lengths)[~self.finished]
        return int(left.max()) if left.numel() else 0

    def attention_mask(self, extra: int = 0) -> torch.Tensor | None:
        """Mask over the committed tokens plus `extra` uncommitted ones (None when nothing is padded)."""
        if self.mask is None:
            return None
        return torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], extra)], dim=1) if extra else self.mask

    def position_ids(self, start: int, end: int) -> torch.Tensor | None:
        if self.pad_offset is None:
            return None
        pos = torch.arange(start, end, device=self.tokens.device).unsqueeze(0) - self.pad_offset
        return torch.minimum(pos.clamp_(min=0), self.last_position)

    def _commit(self, new: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Per-row emitted counts of committing new[b, :counts[b]]: 0 for finished rows, cut after the first EOS
        and at max_new_tokens; marks rows finished."""
        running = ~self.finished
        counts = torch.minimum(counts, self.max_new_tokens - self.lengths).clamp_(min=0) * running
        emitted = counts
        if self.eos_ids is not None:
            inside = torch.arange(new.shape[1], device=new.device).unsqueeze(0) < counts.unsqueeze(1)
            is_eos = torch.isin(new, self.eos_ids) & inside
            hit = is_eos.any(1)
            emitted = torch.where(hit, is_eos.int().argmax(1) + 1, counts)
            self.finished |= hit
        self.lengths += emitted
        if self.streamer is not None and int(emitted[0]):
            self.streamer.put(new[0, :int(emitted[0])].cpu())
        self.finished |= self.lengths >= self.max_new_tokens
        self.done = bool(self.finished.all())
        self.emitted = emitted
        return emitted

    def append(self, new: torch.Tensor) -> int:
        """Commit `new` [B, m] to every running row (lockstep); returns how far the longest running row
        advanced (≤ m)."""
        m = new.shape[1]
        running = ~self.finished
        new = new.masked_fill(~running.unsqueeze(1), self.pad_id)
        emitted = self._commit(new, torch.full_like(self.lengths, m))
        self.tokens = torch.cat([self.tokens, new], dim=1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], m)], dim=1)
        return int(emitted.max())

    def append_rows(self, new: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor) -> int:
        """Commit new[b, :counts[b]] to each running row b; `valid[b]` of those tokens are the ones a model's
        cache already holds correctly (accepted drafts). Lockstep unless `ragged`: then every running row takes
        the minimum count. Returns how far the longest running row advanced."""
        running = ~self.finished
        if not self.ragged:
            n = int(counts[running].min()) if bool(running.any()) else 0
            self.last_shift = None
            return self.append(new[:, :n])
        old = self.length
        emitted = self._commit(new, counts)
        m = int(emitted.max())
        shift = torch.where(running, m - emitted, torch.zeros_like(emitted))
        cols = torch.arange(m, device=new.device).unsqueeze(0)
        tail = new[:, :m].masked_fill(cols >= emitted.unsqueeze(1), self.pad_id)
        tokens = torch.cat([self.tokens, tail], dim=1)
        mask = self.attention_mask(m) if self.mask is not None else torch.ones_like(tokens)
        if not bool(shift.any()):
            self.tokens, self.last_shift = tokens, None
            self.mask = None if self.mask is None else mask
            return m
        idx = torch.arange(old + m, device=new.device).unsqueeze(0) - shift.unsqueeze(1)
        left = idx < 0
        idx = idx.clamp(min=0)
        self.tokens = tokens.gather(1, idx).masked_fill_(left, self.pad_id)
        self.mask = mask.gather(1, idx).masked_fill_(left, 0)
        self.pad_offset = shift.unsqueeze(1) if self.pad_offset is None else self.pad_offset + shift.unsqueeze(1)
        self.gen_start = self.gen_start + shift
        self.layout += 1
        # finished rows (shift 0) are not re-aligned: their cache content no longer matters
        self.last_shift = (shift, old, torch.where(running, torch.minimum(valid, emitted), 0), running)
        return m

    def _rows_out(self, keep: torch.Tensor | None = None) -> dict[int, list[int]]:
        live = range(self.tokens.shape[0]) if keep is None else keep.tolist()
        tokens, start, n = self.tokens.tolist(), self.gen_start.tolist(), self.lengths.tolist()
        rows = self.rows.tolist()
        return {rows[b]: tokens[b][start[b]:start[b] + n[b]] for b in live}

    def drop_finished(self) -> torch.Tensor | None:
        """With `compact`: remove the finished rows from the batch (their outputs are kept) while others still run;
        returns the indices of the rows kept (each model then selects them, `ModelState.select`), else None."""
        if not self.compacts or self.done or not bool(self.finished.any()):
            return None
        keep = (~self.finished).nonzero().flatten()
        self._dropped.update(self._rows_out(self.finished.nonzero().flatten()))
        for name in ("tokens", "mask", "finished", "lengths", "emitted", "gen_start", "pad_offset", "rows",
                     "last_position"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        self.last_shift = None
        return keep

    def outputs(self) -> list[list[int]]:
        """The new tokens of every input row, in input order."""
        out = {**self._dropped, **self._rows_out()}
        return [out[b] for b in sorted(out)]


def _on(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """`x` on `device` (itself when it is there already, or None)."""
    return x if x is None or x.device == device else x.to(device)


def run_encoder(model, inputs: torch.Tensor, attention_mask: torch.Tensor | None):
    """`model`'s encoder on its own input (token ids, speech features or pixels: its `main_input_name`)."""
    kwargs = {getattr(model, "main_input_name", "input_ids") or "input_ids": inputs}
    if attention_mask is not None:      # a vision encoder takes none
        kwargs["attention_mask"] = attention_mask
    return model.get_encoder()(**kwargs)


class ModelState:
    """One model's encoder output and KV cache over a prefix of the committed `Sequence`."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, clock: Clock,
                 encoder_outputs=None, rollback: bool = False, lean: bool = False, math_attention: bool = False):
        """`encoder_outputs`: reuse another model's encoder output (a draft whose encoder *is* the target's).
        `rollback`: the method will `rollback()` this model's cache (rejected drafts). `lean`: decoder steps run
        through `_lean.LeanT5Step` (a T5-family draft: the same logits without the module tree's overhead).
        `math_attention`: forwards of several decoder tokens (verifications, uncached stairs rows) run torch's math
        SDPA backend instead of its default choice (option verify_attention="math")."""
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
        self.lean = LeanT5Step(model, checked=True) if lean else None     # the engine resolved draft_forward
        self.math_attention = math_attention
        layers = getattr(self.cache, "self_attention_cache", self.cache).layers
        self._sliding = any(isinstance(layer, DynamicSlidingWindowLayer) for layer in layers)
        self.cache_len = 0
        self.calls = 0
        self.seconds = 0.0
        self._keep_arg = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._expanded: dict[int, tuple] = {}
        self.layout = 0                 # the Sequence layout its cache is aligned with (Sequence.layout)
        if self.enc_dec:
            self.encoder_mask = attention_mask
            if encoder_outputs is not None:
                self.encoder_outputs = encoder_outputs
            else:
                t0 = clock()
                self.encoder_outputs = run_encoder(model, input_ids, attention_mask)
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
        if start and self.layout != seq.layout:
            raise RuntimeError("the committed rows were re-aligned but this model's cache was not (call realign())")
        self.layout = seq.layout
        t0 = self.clock()
        with self._kernel(new.shape[1]):
            logits = self._forward(seq, new, n_extra, keep)
        self.seconds += self.clock() - t0
        self.calls += 1
        self.cache_len += new.shape[1]
        return _on(logits[:, -keep:], seq.tokens.device)

    def _kernel(self, tokens: int):
        """The attention kernel context of a forward of `tokens` decoder tokens (verify_attention)."""
        if self.math_attention and tokens > 1:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext()

    def _forward(self, seq: Sequence, new: torch.Tensor, n_extra: int, keep: int) -> torch.Tensor:
        """Logits of `new` fed through this model's cache (its lean step or its own forward)."""
        if self.lean is not None:
            logits = self.lean(_on(new, self.device), self.cache, self.encoder_outputs.last_hidden_state,
                               self.encoder_mask, _on(seq.attention_mask(n_extra), self.device))
        else:
            if self.enc_dec:
                mask = seq.attention_mask(n_extra)
                out = self.model(encoder_outputs=self.encoder_outputs, attention_mask=self.encoder_mask,
                                 decoder_input_ids=_on(new, self.device), use_cache=True,
                                 **({} if mask is None else {"decoder_attention_mask": _on(mask, self.device)}),
                                 **with_cache(self.model, self.cache))
            else:
                kwargs = {"logits_to_keep": keep} if self._keep_arg else {}
                out = self.model(input_ids=_on(new, self.device),
                                 attention_mask=_on(seq.attention_mask(n_extra), self.device),
                                 position_ids=_on(seq.position_ids(self.cache_len, self.cache_len + new.shape[1]),
                                                  self.device),
                                 use_cache=True, **with_cache(self.model, self.cache), **kwargs)
            self.cache, logits = output_cache(out), out.logits
        return logits

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

    def realign(self, seq: Sequence, valid: torch.Tensor | None = None) -> None:
        """Shift each row of the KV cache as `seq.append_rows` shifted the committed rows (right by shift[b],
        masked pads on the left), keeping per row only what matches its committed tokens; all rows are cut to the
        shortest such length (the rest is fed again). A no-op when the rows were not shifted. `valid` [B]: how many
        of each row's new tokens this model's cache holds correctly, when not the accepted drafts (a draft whose
        own branch lost in stairs_tree)."""
        if seq.last_shift is None or self.layout == seq.layout:
            return
        if not self.cache_len:
            self.layout = seq.layout
            return
        if seq.layout != self.layout + 1:
            raise RuntimeError("realign() must follow every append_rows() that shifted rows")
        self.layout = seq.layout
        shift, old, accepted, moved = seq.last_shift
        valid = accepted if valid is None else torch.where(moved, valid, 0)
        ends = torch.minimum(old + valid, torch.full_like(valid, self.cache_len)) + shift
        new_len = int(ends[moved].min()) if bool(moved.any()) else self.cache_len
        idx = torch.arange(new_len, device=shift.device).unsqueeze(0) - shift.unsqueeze(1)
        idx = idx.clamp_(0, self.cache_len - 1)
        layers = getattr(self.cache, "self_attention_cache", self.cache).layers
        for layer in layers:
            keys = layer.keys
            if keys is None or not keys.numel():      # a layer the model does not use
                continue
            index = _on(idx, keys.device)[:, None, :, None].expand(keys.shape[0], keys.shape[1], new_len,
                                                                  keys.shape[-1])
            layer.keys = keys.gather(2, index)
            layer.values = layer.values.gather(2, index)
        self.cache_len = new_len

    # -- several branches per row (stairs_tree) -------------------------------------------------
    def step_branches(self, seq: Sequence, candidates: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Feed what this model has not seen of the committed tokens, then each candidate continuation as a row of
        its own: candidates [N, m], owners [N] (the input row each continues; a row with one candidate appears once)
        → logits [N, m+1, V] (after the last committed token and after each candidate position). The cache then
        holds those N rows, one per branch, until `keep_branches` keeps one per input row (the encoder output is
        shared, selected like the paper's stairs rows)."""
        m = candidates.shape[1]
        rows = copy.copy(seq)                       # the committed rows, each once per candidate it owns
        rows.tokens = seq.tokens[owners]
        rows.mask = None if seq.mask is None else seq.mask[owners]
        rows.pad_offset = None if seq.pad_offset is None else seq.pad_offset[owners]
        rows.last_position = seq.last_position[owners]
        index = _on(owners, self.device)
        if self.cache_len:
            self.cache.batch_select_indices(index)
        own = (self.encoder_outputs, self.encoder_mask) if self.enc_dec else None
        if self.enc_dec:
            self.encoder_outputs = BaseModelOutput(last_hidden_state=self.encoder_outputs.last_hidden_state[index])
            self.encoder_mask = None if self.encoder_mask is None else self.encoder_mask[index]
        try:
            return self.step(rows, candidates, keep=m + 1)
        finally:
            if own is not None:
                self.encoder_outputs, self.encoder_mask = own

    def keep_branches(self, chosen: torch.Tensor) -> None:
        """After `step_branches`: keep branch row chosen[b] (an index into its N rows) for each input row b (its
        cache row; no recompute)."""
        self.cache.batch_select_indices(_on(chosen, self.device))

    def select(self, keep: torch.Tensor | None) -> None:
        """Keep only the batch rows `keep` (after `Sequence.drop_finished`; None: nothing to do)."""
        if keep is None:
            return
        keep = _on(keep, self.device)
        if self.cache_len:
            self.cache.batch_select_indices(keep)
        if self.enc_dec:
            self.encoder_outputs = BaseModelOutput(last_hidden_state=self.encoder_outputs.last_hidden_state[keep])
            self.encoder_mask = None if self.encoder_mask is None else self.encoder_mask[keep]
            self._expanded = {}

    def reset(self) -> None:
        self.cache = new_cache(self.model, rollback=self.rollback_enabled)
        self.cache_len = 0

    # -- uncached scoring of a batch of rows (the paper's stairs) --------------------------------
    def score(self, rows: torch.Tensor, rows_mask: torch.Tensor, seq: Sequence) -> torch.Tensor:
        """One forward over `rows` [B*r, L] (each row = committed tokens + a right-padded suffix; `rows_mask` over
        all of it, the committed rows' padding included), no cache.

        Rows are grouped per input: rows [b*r, (b+1)*r) continue input row b. Returns all logits [B*r, L, V].
        """
        r = rows.shape[0] // seq.tokens.shape[0]
        t0 = self.clock()
        with self._kernel(rows.shape[1]):
            out = self._score_forward(rows, rows_mask, seq, r)
        self.seconds += self.clock() - t0
        self.calls += 1
        return _on(out.logits, seq.tokens.device)

    def _score_forward(self, rows: torch.Tensor, rows_mask: torch.Tensor, seq: Sequence, r: int):
        if self.enc_dec:
            enc, enc_mask = self._expand_encoder(r)
            out = self.model(encoder_outputs=enc, attention_mask=enc_mask, decoder_input_ids=_on(rows, self.device),
                             decoder_attention_mask=_on(rows_mask, self.device), use_cache=False)
        else:
            pos = torch.minimum((rows_mask.cumsum(1) - 1).clamp_(min=0),
                                seq.last_position.to(rows_mask.device).repeat_interleave(r, 0))   # fillers past it
            out = self.model(input_ids=_on(rows, self.device), attention_mask=_on(rows_mask, self.device),
                             position_ids=_on(pos, self.device), use_cache=False)
        return out

    def _expand_encoder(self, r: int):
        if r not in self._expanded:
            h = self.encoder_outputs.last_hidden_state.repeat_interleave(r, 0)
            m = None if self.encoder_mask is None else self.encoder_mask.repeat_interleave(r, 0)
            self._expanded[r] = (BaseModelOutput(last_hidden_state=h), m)
        return self._expanded[r]
