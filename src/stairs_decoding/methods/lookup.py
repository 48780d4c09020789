"""Ours: model-free drafting by n-gram lookup in the source — no draft model.

Each round:
  propose — per row, the tokens that followed the newest committed n-gram where it occurs in the row's source (the
            encoder input; a decoder-only model's prompt) or in its own output, the longest match first and the
            occurrence nearest the last copied span (methods/_lookup.py), up to k tokens; none when nothing matches
            (the round is then one plain target step);
  verify  — the target feeds [last committed token, proposals] through its cache, as stairs_cached;
  accept  — the longest agreeing prefix per row, plus the target's own next token;
  update  — the cache is re-aligned with the rows and cropped back to the committed tokens.
A round costs one target call and no draft call, so k can be larger than a draft model's.
"""
from __future__ import annotations

from ..stats import DecodingStats
from ._lookup import Lookup, as_tensor
from ._speculative import Proposal, run_rounds
from ._state import ModelState, Sequence
from .stairs_cached import verify

ROLLS_BACK = True


def proposer(lookup: Lookup):
    def propose(seq: Sequence, k: int) -> Proposal:
        rows = [c[0] if c else [] for c in lookup.propose(seq, k)]
        drafts, lengths = as_tensor(rows, max((len(r) for r in rows), default=0), seq.pad_id, seq.tokens.device)
        return Proposal(drafts, lengths=lengths)
    return propose


def update(target: ModelState, draft: ModelState | None, seq: Sequence) -> None:
    target.realign(seq)
    target.rollback(seq.length - 1)


def run(target: ModelState, draft: ModelState | None, seq: Sequence, *, k: int, schedule: str,
        stats: DecodingStats, options: dict, encoder_inputs, **_) -> None:
    lookup = Lookup(seq, encoder_inputs, max_ngram=options["max_ngram"], min_ngram=options["min_ngram"])
    stats.lookup_source = lookup.source
    run_rounds(target, None, seq, k=k, schedule=schedule, verify=verify, update=update, stats=stats,
               proposer=proposer(lookup))
