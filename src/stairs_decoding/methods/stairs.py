"""The paper's "stairs" assisted greedy generation (Grigaliūnas & Lukoševičius, 2024).

Each round:
  propose — the draft greedily generates k tokens d1..dk from the committed prefix y (a fresh generation
            each round: the draft keeps no cache between rounds);
  verify  — the target scores the "stairs", the k+1 rows [y], [y,d1], …, [y,d1..dk] right-padded with an
            attention mask, in ONE batched forward without a KV cache, and takes its greedy token after
            each row;
  accept  — keep d(i+1) while it equals the target's token for row i; then the target's own token;
  update  — nothing to keep: the next round starts from scratch (each encoder output is reused).
"""
from __future__ import annotations

import torch

from ..stats import DecodingStats
from ._speculative import run_rounds
from ._state import ModelState, Sequence


def verify(target: ModelState, seq: Sequence, drafts: torch.Tensor) -> torch.Tensor:
    batch, length = seq.tokens.shape
    k = drafts.shape[1]
    steps = k + 1
    # Row i of each input's stairs holds d1..di: a lower-triangular mask over the drafts.
    stair = torch.ones(steps, k, dtype=torch.bool, device=drafts.device).tril(-1)
    stair = stair.repeat(batch, 1)                                       # [B*(k+1), k]
    suffix = drafts.repeat_interleave(steps, 0).masked_fill(~stair, seq.pad_id)
    rows = torch.cat([seq.tokens.repeat_interleave(steps, 0), suffix], dim=1)
    committed = seq.attention_mask()
    committed = torch.ones_like(seq.tokens) if committed is None else committed
    rows_mask = torch.cat([committed.repeat_interleave(steps, 0), stair.long()], dim=1)
    logits = target.score(rows, rows_mask, seq)                          # [B*(k+1), T+k, V]
    last = torch.arange(length - 1, length + k, device=drafts.device).repeat(batch)
    return logits[torch.arange(batch * steps, device=drafts.device), last].view(batch, steps, -1)


def update(target: ModelState, draft: ModelState, seq: Sequence) -> None:
    target.realign(seq)      # a no-op without a target cache (schedule=auto's greedy steps leave one)
    draft.reset()


def run(target: ModelState, draft: ModelState, seq: Sequence, *, k: int, schedule: str,
        stats: DecodingStats, options: dict, **_) -> None:
    run_rounds(target, draft, seq, k=k, schedule=schedule, verify=verify, update=update, stats=stats,
               threshold=options["confidence_threshold"])
