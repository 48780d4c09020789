"""Ours, beyond the paper: the stairs acceptance rule with one causal row and persistent KV caches.

The stairs batch is redundant: row k alone, [y, d1..dk], already holds the target's prediction after every
shorter row at its positions (causal attention). So each round:
  propose — the draft continues from its own cache (only tokens it has not seen are fed);
  verify  — the target feeds [last committed token, d1..dk] through its cache: one row, k+1 positions;
  accept  — as in stairs (in a batch, each row its own agreeing prefix);
  update  — both caches are re-aligned with the rows (a row that advanced less is shifted right) and cropped back
            to the committed tokens (rejected drafts are forgotten).
"""
from __future__ import annotations

import torch

from ..stats import DecodingStats
from ._speculative import run_rounds
from ._state import ModelState, Sequence


ROLLS_BACK = True   # both caches are cropped after every round


def verify(target: ModelState, seq: Sequence, drafts: torch.Tensor) -> torch.Tensor:
    return target.step(seq, drafts, keep=drafts.shape[1] + 1)


def update(target: ModelState, draft: ModelState, seq: Sequence) -> None:
    # Rows that advanced less than the furthest were shifted right: both caches follow (a no-op otherwise).
    target.realign(seq)
    draft.realign(seq)
    # Keep every committed token but the newest, which each model is fed at the start of the next round.
    target.rollback(seq.length - 1)
    draft.rollback(seq.length - 1)


def run(target: ModelState, draft: ModelState, seq: Sequence, *, k: int, schedule: str,
        stats: DecodingStats, options: dict, **_) -> None:
    run_rounds(target, draft, seq, k=k, schedule=schedule, verify=verify, update=update, stats=stats,
               threshold=options["confidence_threshold"])
