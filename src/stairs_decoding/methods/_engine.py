"""Our own decoding loop's entry: build the shared `Sequence` and each model's `ModelState`, run a method module's
phases (propose → verify → accept → update, in the module), collect the stats."""
from __future__ import annotations

import torch

from . import _lean
from ._state import ModelState, Sequence, ragged_unsupported


def engine_run(method, target, draft, input_ids, attention_mask, *, k, max_new_tokens, schedule, settings, stats,
               clock, options, streamer=None):
    """Run registry entry `method` (its module's `run`) on our engine; returns the new tokens of each row.
    `streamer` (batch 1): gets the prefix, then each commit's tokens (Sequence), then `end()`."""
    module = method.module
    uses_target, uses_draft = method.uses_target, method.needs_draft
    first = target if uses_target else draft
    enc_dec = bool(first.config.is_encoder_decoder)
    if enc_dec:
        prefix = settings.prompt(input_ids.shape[0], input_ids.device)
        prefix_mask = None
    else:
        prefix, prefix_mask = input_ids, attention_mask
    eos = torch.tensor(settings.eos_ids, device=input_ids.device) if settings.eos_ids else None
    batch = input_ids.shape[0]
    # Per-row acceptance at batch > 1 where every model in use allows re-aligned rows and no logits processor reads
    # the rows' prefixes (they would see the re-alignment padding; the sampling warpers do not); otherwise rows
    # advance in lockstep.
    ragged = (batch > 1 and not settings.reads_prefix
              and not any(ragged_unsupported(m) for m, used in ((target, uses_target), (draft, uses_draft)) if used))
    seq = Sequence(prefix, prefix_mask, max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=settings.pad_id,
                   settings=settings, ragged=ragged, compact=batch > 1 and not settings.reads_prefix,
                   streamer=streamer)
    stats.ragged = ragged and method.speculative
    stats.row_accepted, stats.row_rejections = [[] for _ in range(batch)], [0] * batch
    rolls_back = bool(getattr(module, "ROLLS_BACK", False))
    enc_input = input_ids if enc_dec else prefix
    tstate = (ModelState(target, enc_input, attention_mask, clock, rollback=rolls_back,
                         math_attention=options.get("verify_attention") == "math") if uses_target else None)
    # a draft whose encoder module is the target's (see models.share_encoder) reuses the target's encoder output
    shared = tstate is not None and tstate.enc_dec and uses_draft and draft.get_encoder() is target.get_encoder()
    lean = False
    if "draft_forward" in options:
        stats.draft_forward = _lean.resolve(options["draft_forward"], draft)
        lean = stats.draft_forward == "lean"
    dstate = (ModelState(draft, enc_input, attention_mask, clock, rollback=rolls_back,
                         encoder_outputs=tstate.encoder_outputs if shared else None, lean=lean)
              if uses_draft else None)
    module.run(tstate, dstate, seq, k=k, schedule=schedule, stats=stats, options=options,
               encoder_inputs=(input_ids, attention_mask) if enc_dec else None)

    if streamer is not None:
        streamer.end()
    tokens = seq.outputs()
    stats.new_tokens = sum(len(t) for t in tokens)
    if tstate is not None:
        stats.target_calls, stats.target_seconds = tstate.calls, tstate.seconds
    if dstate is not None:
        stats.draft_calls, stats.draft_seconds = dstate.calls, dstate.seconds
    return tokens
