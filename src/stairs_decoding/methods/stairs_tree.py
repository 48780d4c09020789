"""Ours: the paper's stairs idea used for branches — one target call verifies several candidate continuations.

The stairs batch verifies the k+1 prefixes of one continuation; the same batched call can verify *different*
continuations, one per row, sharing the committed prefix (its KV cache) and the encoder output. Each round:
  propose — the draft's greedy continuation d1..dk (as stairs_cached), then up to `num_branches` − 1 more
            candidates per row: source lookups (methods/_lookup.py: what followed the newest committed n-gram in the
            source or the output, up to k tokens) and, where the draft's own probabilities put its first mistake
            at position i with probability ≥ RUNNER_UP_MIN, the runner-up branch d1..d(i−1), r_i (its second-best
            token at i);
  verify  — the target's cache row is repeated once per branch its row has and every branch is fed as its own
            row in ONE forward pass (`ModelState.step_branches`): a row with one candidate costs one row, so a batch
            pays only for the branches it proposes; a round where no row has a second candidate is a plain
            stairs_cached round;
  accept  — per row, the branch with the longest agreeing prefix wins (ties: the draft's, then the earlier);
            its agreed tokens and the target's next token are committed (per row at batch > 1, as everywhere);
  update  — the target keeps the winner's cache row (`keep_branches`: an index selection, no recompute); the draft,
            which fed only its own branch, keeps the part of it that agrees with what was committed.
With num_branches=1 it is stairs_cached, token for token and in the same calls.
"""
from __future__ import annotations

import torch

from ..stats import DecodingStats
from . import stairs_cached
from ._lookup import Lookup, as_tensor
from ._speculative import accept, agreement, next_k, propose
from ._state import ModelState, Sequence

ROLLS_BACK = True
# A runner-up branch is offered at position i when the draft's probabilities put its first mistake there with at
# least this probability (the product of its top probabilities before i, times 1 − its top probability at i).
RUNNER_UP_MIN = 0.1


def covered_by(looked: list[list[list[int]]], finished: list[bool]):
    """Whether every running row's drafts so far begin one of its lookup branches that goes further: the draft can
    stop, that branch continues its path (`propose(covered=...)`)."""
    def covered(drafts: torch.Tensor) -> bool:
        width = drafts.shape[1]
        return all(done or any(len(t) > width and t[:width] == d for t in cands)
                   for d, cands, done in zip(drafts.tolist(), looked, finished))
    return covered


def candidates(seq: Sequence, prop, looked: list[list[list[int]]], branches: int):
    """The round's branches: [B, r, m] tokens (filler past each branch's length), [B, r] lengths, each row's
    branch kinds ("draft", "lookup", "runner_up") and how many branches each row has, [B]. Branch 0 holds the draft's continuation, extended by the lookup
    branch that begins with it, if one does; r is the most candidates any running row has (≤ `branches`)."""
    drafts = prop.drafts
    batch, m_d = drafts.shape
    rows, kinds = [], []
    for b, d in enumerate(drafts.tolist()):
        longer = [t for t in looked[b] if len(t) > m_d and t[:m_d] == d]
        rows.append([longer[0] if longer else d])
        kinds.append(["draft"])
    if prop.confidence is not None:
        conf, second = prop.confidence.tolist(), prop.second.tolist()
    for b, (row, finished) in enumerate(zip(rows, seq.finished.tolist())):
        if finished:
            continue
        draft = row[0]
        for tokens in looked[b]:
            if len(row) < branches and tokens != draft[:len(tokens)] and tokens not in row:
                row.append(tokens)
                kinds[b].append("lookup")
        if prop.confidence is None or len(row) >= branches:
            continue
        reach, ranked = 1.0, []
        for i in range(m_d):
            ranked.append((reach * (1.0 - conf[b][i]), i))
            reach *= conf[b][i]
        for first_mistake, i in sorted(ranked, reverse=True):
            if first_mistake < RUNNER_UP_MIN or len(row) >= branches:
                break
            tokens = draft[:i] + [second[b][i]]           # draft[:i] = the draft's own tokens before i
            if tokens not in row:
                row.append(tokens)
                kinds[b].append("runner_up")
    r = max(len(row) for row in rows)
    flat = [t for row in rows for t in row + [[]] * (r - len(row))]      # rows with fewer branches: empty ones
    out, lengths = as_tensor(flat, max(len(t) for t in flat), seq.pad_id, drafts.device)
    counts = torch.tensor([len(row) for row in rows], dtype=torch.long, device=drafts.device)
    return out.view(batch, r, -1), lengths.view(batch, r), kinds, counts


def verify(target: ModelState, seq: Sequence, cands: torch.Tensor, counts: torch.Tensor | None):
    """The target's scores after the committed tokens and every position of the branches the rows have, [N, m+1, V],
    and which of the [B, r] branch slots they fill: row b's first `counts[b]` (a row with one candidate costs one
    row; the rest are filler branches of length 0, never kept)."""
    batch, r, m = cands.shape
    if r == 1:                                      # one branch: a plain stairs_cached verification
        present = torch.ones(batch, 1, dtype=torch.bool, device=cands.device)
        return stairs_cached.verify(target, seq, cands[:, 0]), present
    present = torch.arange(r, device=cands.device).unsqueeze(0) < counts.to(cands.device).unsqueeze(1)   # [B, r]
    return target.step_branches(seq, cands[present], present.nonzero()[:, 0]), present


def spread(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Per-branch values of the fed rows, x [N, ...], into their [B, r, ...] slots (0 in the empty ones)."""
    if bool(present.all()):
        return x.view(*present.shape, *x.shape[1:])
    out = x.new_zeros(*present.shape, *x.shape[1:])
    out[present] = x
    return out


def branch_rows(winner: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per input row, the row of its winning branch among the N rows `verify` fed, [B]."""
    return counts.cumsum(0) - counts + winner


def choose(cands: torch.Tensor, lengths: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """Per row, the branch with the longest agreeing prefix (capped at its length; the first on ties), [B]."""
    batch, r, m = cands.shape
    agree = agreement(cands.reshape(batch * r, m), preds.reshape(batch * r, m + 1)).view(batch, r)
    return torch.minimum(agree, lengths).argmax(dim=1)     # argmax returns the first maximum


def update(target: ModelState, draft: ModelState, seq: Sequence, old_length: int,
           draft_valid: torch.Tensor | None) -> None:
    """Both caches back to the committed tokens: the target's holds the winner's branch (its accepted drafts are
    valid); the draft's holds its own branch, valid as far as it agrees with what was committed (`draft_valid`;
    None: the draft's branch won everywhere, as in stairs_cached)."""
    if draft_valid is None:
        stairs_cached.update(target, draft, seq)
        return
    target.realign(seq)
    target.rollback(seq.length - 1)
    if seq.last_shift is not None:
        draft.realign(seq, valid=draft_valid)
    else:
        running = ~seq.finished
        if bool(running.any()):
            draft.rollback(min(seq.length - 1, old_length + int(draft_valid[running].min())))
    draft.rollback(seq.length - 1)


def run(target: ModelState, draft: ModelState, seq: Sequence, *, k: int, schedule: str, stats: DecodingStats,
        options: dict, encoder_inputs, **_) -> None:
    branches = options["num_branches"]
    lookup = Lookup(seq, encoder_inputs, max_ngram=options["max_ngram"], min_ngram=options["min_ngram"]) \
        if branches > 1 else None
    stats.lookup_source = lookup.source if lookup is not None else None
    threshold = options["confidence_threshold"] if schedule == "confidence" else None
    while not seq.done:
        k_round = min(k, seq.remaining - 1)           # more drafts than tokens left could never be kept
        if lookup is None:
            prop = propose(draft, seq, k_round, threshold)
            cands, lengths, kinds, counts = prop.drafts.unsqueeze(1), None, None, None
        else:
            looked = lookup.propose(seq, k_round, branches - 1)
            prop = propose(draft, seq, k_round, threshold, alternatives=True,
                           covered=covered_by(looked, seq.finished.tolist()))
            cands, lengths, kinds, counts = candidates(seq, prop, looked, branches)
        cands = cands.to(seq.tokens.device)
        batch, r, m = cands.shape
        logits, present = verify(target, seq, cands, counts)                 # [N, m+1, V], [B, r]
        if seq.settings.processors:                   # each position with its own branch's prefix, branch by branch
            logits = spread(logits, present)          # (a processor may hold per-row state: batches of B rows)
            preds = torch.stack([seq.settings.positions(seq.tokens, cands[:, j], logits[:, j]) for j in range(r)],
                                dim=1).argmax(-1)
        else:
            preds = spread(logits.argmax(-1), present)                        # [B, r, m+1]
        stats.branches.append(r)
        stats.branch_rows.append(batch if counts is None or r == 1 else int(counts.sum()))
        if r == 1:
            winner, draft_valid = None, None
            all_agreed = accept(seq, cands[:, 0], preds[:, 0], stats,
                                None if lengths is None else lengths[:, 0])
        else:
            winner = choose(cands, lengths, preds)
            rows = torch.arange(batch, device=cands.device)
            target.keep_branches(branch_rows(winner, counts.to(winner.device)))
            old_length = seq.length
            chosen = preds[rows, winner]
            all_agreed = accept(seq, cands[rows, winner], chosen, stats, lengths[rows, winner])
            draft_valid = torch.minimum(agreement(prop.drafts.to(chosen.device), chosen), seq.emitted)
            for b, w in enumerate(winner.tolist()):
                if w:
                    stats.branch_wins[kinds[b][w]] = stats.branch_wins.get(kinds[b][w], 0) + 1
        update(target, draft, seq, seq.length if winner is None else old_length, draft_valid)
        keep = seq.drop_finished()
        target.select(keep)
        draft.select(keep)
        k = next_k(k, all_agreed and prop.drafts.shape[1] == k_round, schedule)
