"""The loop skeleton every speculative method shares: propose → verify → accept → update.

A method supplies only `verify` (how the target scores the drafts) and `update` (what its caches keep).
Both models' scores go through the target's generation settings (`seq.settings`: transformers' logits
processors, each position with its own prefix) before the argmax, as in `model.generate`.

With do_sample=True (`seq.settings.sampling`; the processors then include transformers' temperature/top-k/top-p
warpers, on both models' scores) the draft samples its tokens from q and the target's verification gives p at every
position; `speculative_sample` keeps draft token i with probability min(1, p_i/q_i) until the first rejection, then
draws the next token from norm(max(0, p − q)) there (from p after the last draft: the bonus token) — Leviathan et
al. 2023, Chen et al. 2023 — so every row's tokens have the target's own sampling distribution. It returns them in
the form of the target's greedy tokens (the kept drafts, then the new token), so `accept` and everything after it
is the same code in both modes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..stats import DecodingStats
from ._auto import AutoPolicy, plain_round
from ._cost import CostPolicy
from ._state import ModelState, Sequence

Verify = Callable[[ModelState, Sequence, torch.Tensor], torch.Tensor]   # -> logits [B, len(drafts)+1, V]
Update = Callable[[ModelState, ModelState, Sequence], None]


class Proposal(NamedTuple):
    """One round's proposals: `drafts` [B, m]; with sampling the draft's distributions `q` [B, m, V] they were drawn
    from; `lengths` [B] where rows proposed different numbers of tokens (drafts past a row's length are filler,
    never counted as accepted); with `alternatives`, the draft's runner-up token and its top probability at each
    position, [B, m] each (stairs_tree's branches)."""

    drafts: torch.Tensor
    q: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    second: torch.Tensor | None = None
    confidence: torch.Tensor | None = None


def propose(draft: ModelState, seq: Sequence, k: int, threshold: float | None = None,
            alternatives: bool = False, covered: Callable[[torch.Tensor], bool] | None = None) -> Proposal:
    """The draft's greedy (or sampled) continuation of the committed tokens, [B, ≤k], and with sampling the draft's
    distributions q it drew them from, [B, ≤k, V]; stops early once every running row has drafted EOS (nothing
    after it could be kept), with a `threshold` once every running row's newest draft token had a draft
    probability below it (transformers' assistant_confidence_threshold, per batch), and once `covered(drafts)`
    says that another proposal already continues every row's drafts (stairs_tree's lookups)."""
    batch = seq.tokens.shape[0]
    drafts = seq.tokens.new_empty(batch, 0)
    probs, seconds, tops = [], [], []
    ended = seq.finished.clone()
    for _ in range(k):
        scores = seq.settings(seq.tokens, draft.step(seq, drafts)[:, -1], drafts)
        token = seq.settings.choose(scores)
        if seq.settings.sampling:
            probs.append(scores.float().softmax(-1))
        drafts = torch.cat([drafts, token], dim=1)
        if seq.eos_ids is not None:
            ended |= torch.isin(token[:, 0], seq.eos_ids)
        if threshold is not None or alternatives:
            p = scores.float().softmax(-1)
            if alternatives:
                top = p.topk(2, dim=-1)
                tops.append(top.values[:, 0])
                seconds.append(top.indices[:, 1])
            if threshold is not None and bool(((p.amax(-1) < threshold) | ended).all()):
                break
        if threshold is None and seq.eos_ids is not None and bool(ended.all()):
            break
        if covered is not None and covered(drafts):
            break
    return Proposal(drafts, torch.stack(probs, dim=1) if probs else None, None,
                    torch.stack(seconds, dim=1) if seconds else None, torch.stack(tops, dim=1) if tops else None)


def speculative_sample(drafts: torch.Tensor, q: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Speculative sampling's acceptance rule, per row: [B, k+1] tokens whose first n equal the drafts (the kept
    ones) and whose (n+1)-th is the new token (the residual's or the bonus draw); `agreement` then reads n off them.

    drafts [B, k] drawn from q [B, k, V] (None when k = 0); scores [B, k+1, V]: the target's processed scores at
    each position.
    Draft i is kept with probability min(1, p_i(d_i)/q_i(d_i)) (u < p/q, u uniform on [0, 1)); the first rejected
    position draws from norm(max(0, p − q)), whose mass at the rejected token is 0, so it never equals the draft.
    """
    batch, k = drafts.shape
    p = scores.float().softmax(-1)                                          # [B, k+1, V]
    q = p.new_zeros(batch, 0, p.shape[-1]) if q is None else q.to(p.device)
    p_d = p[:, :k].gather(-1, drafts.unsqueeze(-1)).squeeze(-1)             # [B, k]
    q_d = q.gather(-1, drafts.unsqueeze(-1)).squeeze(-1)
    kept = (torch.rand_like(p_d) < p_d / q_d).int().cumprod(dim=1).sum(dim=1)   # n per row
    rows = torch.arange(batch, device=drafts.device)
    q_next = torch.cat([q, q.new_zeros(batch, 1, q.shape[-1])], dim=1)[rows, kept]   # 0 after the last draft
    residual = (p[rows, kept] - q_next).clamp(min=0)
    mass = residual.sum(-1, keepdim=True)
    residual = torch.where(mass > 0, residual / mass.clamp(min=torch.finfo(mass.dtype).tiny), p[rows, kept])
    token = torch.multinomial(residual, num_samples=1)                      # [B, 1]
    out = torch.cat([drafts, token], dim=1)
    return out.scatter(1, kept.unsqueeze(1), token)


def agreement(drafts: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """Per row, the length of the longest draft prefix the target agrees with, [B].

    drafts [B, k]; preds [B, k+1] the target's greedy token after each stairs row (prefix + d1..di). Row b then
    commits preds[b, :agree[b] + 1]: its agreed drafts (equal to the target's tokens) and the target's next one.
    """
    k = drafts.shape[1]
    if k == 0:
        return drafts.new_zeros(drafts.shape[0])
    return (drafts == preds[:, :k]).int().cumprod(dim=1).sum(dim=1)


def accept(seq: Sequence, drafts: torch.Tensor, preds: torch.Tensor, stats: DecodingStats,
           lengths: torch.Tensor | None = None) -> bool:
    """Commit each running row's agreed drafts and the target's next token (`Sequence.append_rows`: every row its
    own count when the batch is ragged, else the minimum over running rows, which keeps every row exact and has a
    row that agreed further confirm those tokens again next round). `lengths` [B]: how many of each row's drafts
    were proposed (the rest is filler, never kept); default all. Records the round's statistics, per row and for
    the batch; returns whether every running row agreed with all its drafts."""
    k = drafts.shape[1]
    agree = agreement(drafts, preds)
    if lengths is not None:
        agree = torch.minimum(agree, lengths)
    proposed = lengths if lengths is not None else torch.full_like(agree, k)
    running = ~seq.finished
    all_agreed = bool((agree[running] == proposed[running]).all())
    used = agree if seq.ragged else agree[running].min().expand_as(agree)
    advanced = seq.append_rows(preds, used + 1, used)
    rejected = 0
    for b, ran, e, a, u, n in zip(seq.rows.tolist(), running.tolist(), seq.emitted.tolist(), agree.tolist(),
                                  used.tolist(), proposed.tolist()):
        if ran:
            stats.row_accepted[b].append(e - 1)
            disagreed = int(a == u < n and e == u + 1)   # not EOS, the length limit, or another row's
            rejected += disagreed
            stats.row_rejections[b] += disagreed
    stats.accepted.append(advanced - 1)
    stats.drafted.append(int(proposed[running].max()))        # (accept runs while a row is running)
    stats.rejections += rejected
    return all_agreed


def next_k(k: int, accepted_all: bool, schedule: str) -> int:
    """'constant', 'confidence', 'auto' and 'cost' keep k (its cap; 'cost' chooses each round's k below it,
    methods/_cost.py); 'heuristic' (as HF assisted generation): +2 after a fully accepted round, else −1."""
    if schedule == "heuristic":
        return k + 2 if accepted_all else max(1, k - 1)
    return k


Propose = Callable[[Sequence, int], Proposal]      # (committed tokens, k) -> this round's proposals


def run_rounds(target: ModelState, draft: ModelState | None, seq: Sequence, *, k: int, schedule: str,
               verify: Verify, update: Update, stats: DecodingStats, threshold: float | None = None,
               proposer: Propose | None = None) -> None:
    """The rounds of a speculative method until every row is done. The draft model proposes (stopping below
    `threshold` with schedule="confidence"), unless a `proposer` does (lookup: no draft model)."""
    policy = AutoPolicy(target, draft, seq, k, verify.__module__) if schedule == "auto" else None
    if policy is not None and not policy.start(seq, stats):
        return
    cost = CostPolicy(target, draft, seq, k, verify.__module__) if schedule == "cost" else None
    while not seq.done:
        k_round = min(k, seq.remaining - 1)           # more drafts than tokens left could never be kept
        if cost is not None:
            k_round = cost.choose(k_round)
            cost.start_round(stats)
            if k_round == 0:                          # a plain target step pays best now
                plain_round(target, draft, seq, stats)
                cost.end_round(0, stats)
                continue
        prop = proposer(seq, k_round) if proposer is not None else \
            propose(draft, seq, k_round, threshold if schedule == "confidence" else None)
        drafts = prop.drafts.to(seq.tokens.device)
        logits = verify(target, seq, drafts)          # [B, len(drafts)+1, V]
        scores = seq.settings.positions(seq.tokens, drafts, logits)
        preds = speculative_sample(drafts, prop.q, scores) if seq.settings.sampling else scores.argmax(-1)
        all_agreed = accept(seq, drafts, preds, stats, prop.lengths)
        update(target, draft, seq)
        keep = seq.drop_finished()
        target.select(keep)
        if draft is not None:
            draft.select(keep)
        if cost is not None:
            cost.end_round(drafts.shape[1], stats)
        if drafts.shape[1]:                           # a round that proposed nothing (lookup found no match) says
            k = next_k(k, all_agreed and drafts.shape[1] == k_round, schedule)     # nothing about k
    if policy is not None:
        policy.finish(stats)
