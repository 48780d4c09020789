"""The loop skeleton every speculative method shares: propose → verify → accept → update.

A method supplies only `verify` (how the target scores the drafts) and `update` (what its caches keep).
Both models' scores go through the target's generation settings (`seq.settings`: transformers' logits
processors, each position with its own prefix) before the argmax, as in `model.generate`.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..stats import DecodingStats
from ._state import ModelState, Sequence

Verify = Callable[[ModelState, Sequence, torch.Tensor], torch.Tensor]   # -> logits [B, len(drafts)+1, V]
Update = Callable[[ModelState, ModelState, Sequence], None]


def propose(draft: ModelState, seq: Sequence, k: int) -> torch.Tensor:
    """The draft's greedy continuation of the committed tokens, [B, ≤k]; stops early once every running
    row has drafted EOS (nothing after it could be kept)."""
    batch = seq.tokens.shape[0]
    drafts = seq.tokens.new_empty(batch, 0)
    ended = seq.finished.clone()
    for _ in range(k):
        token = seq.settings(seq.tokens, draft.step(seq, drafts)[:, -1], drafts).argmax(-1, keepdim=True)
        drafts = torch.cat([drafts, token], dim=1)
        if seq.eos_ids is not None:
            ended |= torch.isin(token[:, 0], seq.eos_ids)
            if bool(ended.all()):
                break
    return drafts


def accept(drafts: torch.Tensor, preds: torch.Tensor, running: torch.Tensor | None = None) -> int:
    """Length of the longest draft prefix the target agrees with.

    drafts [B, k]; preds [B, k+1] the target's greedy token after each stairs row (prefix + d1..di).
    With a batch the result is the minimum over running rows: every row stays exact, and a row that agreed
    further has those tokens confirmed again in the next round.
    """
    k = drafts.shape[1]
    if k == 0:
        return 0
    agree = (drafts == preds[:, :k]).int().cumprod(dim=1).sum(dim=1)
    if running is not None and bool(running.any()):
        agree = agree[running]
    return int(agree.min())


def next_k(k: int, accepted_all: bool, schedule: str) -> int:
    """'constant' keeps k; 'heuristic' (as HF assisted generation): +2 after a fully accepted round, else −1."""
    if schedule == "heuristic":
        return k + 2 if accepted_all else max(1, k - 1)
    return k


def run_rounds(target: ModelState, draft: ModelState, seq: Sequence, *, k: int, schedule: str,
               verify: Verify, update: Update, stats: DecodingStats) -> None:
    while not seq.done:
        k_round = min(k, seq.remaining - 1)           # more drafts than tokens left could never be kept
        drafts = propose(draft, seq, k_round).to(seq.tokens.device)
        logits = verify(target, seq, drafts)          # [B, len(drafts)+1, V]
        preds = seq.settings.positions(seq.tokens, drafts, logits).argmax(-1)
        n = accept(drafts, preds, ~seq.finished)
        emitted = seq.append(torch.cat([drafts[:, :n], preds[:, n:n + 1]], dim=1))
        update(target, draft, seq)

        stats.accepted.append(emitted - 1)
        stats.drafted.append(drafts.shape[1])
        if n < drafts.shape[1] and emitted == n + 1:
            stats.rejections += 1
        k = next_k(k, n == k_round, schedule)
