"""schedule="cost": k chosen before every round by what this process measured, up to `num_draft_tokens` (the cap).

A round that drafts k tokens commits E(k) = (1 − α^(k+1)) / (1 − α) tokens on average (α: the per-token acceptance
rate) and costs W(k) seconds, so the policy drafts the k in 0..cap with the most tokens per second, E(k) / W(k);
k = 0 is a plain target step (E = 1: where no k pays, the call falls back to greedy steps). Both are measured, not
assumed:
- α from this call's rounds so far (accepted tokens and rejections, per row), starting from the rate earlier calls
  measured, worth `PRIOR` tokens, so that the call's own rounds soon decide;
- W(k) as the wall time of whole rounds that drafted k: draft steps, verification of k+1 tokens at whatever the
  hardware charges for them, acceptance and cache updates. A k not measured yet is estimated optimistically from the
  nearest measured one below, W(k') + (k − k')·d (d: the draft's measured seconds per token; verification assumed as
  cheap as at k'), so a k that might pay is tried and then known; no W(k) is taken above a measured W of a larger k.
While k = 0 wins, every `PROBE_EVERY`-th round drafts again (the best k > 0), so α keeps being measured.

The round times are remembered per (target, draft, method, batch size) for the life of the process, as
schedule="auto" remembers its choice (methods/_auto.py): the first calls explore, later ones start from what was
learnt. Output is exact whatever k is chosen; each round's k is in `stats.drafted`.
"""
from __future__ import annotations

import weakref

from ._state import ModelState, Sequence

PROBE_EVERY = 16
DECAY = 0.98            # weight of the remembered acceptance counts at each new round (about the last 50 rounds)
PRIOR = 8.0             # a call starts from the remembered acceptance rate, worth this many drafted tokens
SMOOTH = 0.3            # weight of a new measurement in a round time's running mean
FIRST_K = 3             # the first round's k (below the cap) while nothing is measured
_MEMORY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # target model → {shape: memo}


def expected_tokens(alpha: float, k: int) -> float:
    """Committed tokens of a round that drafts k at per-token acceptance alpha (its accepted drafts + 1)."""
    if alpha >= 1.0:
        return k + 1.0
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


class CostPolicy:
    def __init__(self, target: ModelState, draft: ModelState | None, seq: Sequence, cap: int, method: str):
        per_target = _MEMORY.setdefault(target.model, {})
        shape = (id(draft.model) if draft is not None else None, method, seq.tokens.shape[0])
        self.memo = per_target.setdefault(shape, {"accepted": 1.0, "rejected": 1.0, "seconds": {}, "draft_s": None,
                                                  "greedy_rounds": 0})
        self.cap, self.target, self.draft = cap, target, draft
        self._t0 = self._draft0 = 0.0
        self._rows = None
        # This call's acceptance counts, starting from what earlier calls measured, worth PRIOR tokens: a call's
        # own rounds soon outweigh it (the draft may fit this input better or worse than the last ones).
        remembered = self.memo["accepted"] / (self.memo["accepted"] + self.memo["rejected"])
        self.counts = [PRIOR * remembered, PRIOR * (1.0 - remembered)]

    @property
    def alpha(self) -> float:
        return self.counts[0] / (self.counts[0] + self.counts[1])

    def _seconds(self, k: int) -> float:
        """W(k): measured (else from the nearest measured k below, optimistic for verification: see the module),
        and never above a measured W of a larger k (a round that drafts more does not cost less: a noisy high
        measurement of one k is not kept against the evidence of the others)."""
        seconds, d = self.memo["seconds"], self.memo["draft_s"] or 0.0
        if k in seconds:
            own = seconds[k]
        else:
            below = [j for j in seconds if j < k]
            near = max(below) if below else min(seconds)
            own = seconds[near] + (k - near) * d
        above = [seconds[j] for j in seconds if j > k]
        return max(min([own] + above), 1e-9)

    def choose(self, limit: int) -> int:
        """This round's k, at most `limit` (what the rows may still keep)."""
        top = min(self.cap, limit)
        if not self.memo["seconds"]:
            return min(FIRST_K, top)
        alpha = self.alpha
        rates = {k: expected_tokens(alpha, k) / self._seconds(k) for k in range(top + 1)}
        best = max(rates, key=lambda k: (rates[k], -k))
        if best == 0 and top > 0:
            self.memo["greedy_rounds"] += 1
            if self.memo["greedy_rounds"] % PROBE_EVERY == 0:
                best = max(range(1, top + 1), key=lambda k: rates[k])
        return best

    def start_round(self, stats) -> None:
        self._t0 = self.target.clock()
        self._draft0 = self.draft.seconds if self.draft is not None else 0.0
        self._rows = [len(r) for r in stats.row_accepted], sum(stats.row_rejections)

    def end_round(self, drafted: int, stats) -> None:
        """Fold the round just run (it drafted `drafted` tokens) into the memo."""
        m = self.memo
        took = self.target.clock() - self._t0
        seconds = m["seconds"]
        seconds[drafted] = took if drafted not in seconds else (1 - SMOOTH) * seconds[drafted] + SMOOTH * took
        if not drafted:
            return
        if self.draft is not None:
            per = (self.draft.seconds - self._draft0) / drafted
            m["draft_s"] = per if m["draft_s"] is None else (1 - SMOOTH) * m["draft_s"] + SMOOTH * per
        lengths, rejections = self._rows
        kept = sum(sum(rows[n:]) for rows, n in zip(stats.row_accepted, lengths))
        rejected = sum(stats.row_rejections) - rejections
        self.counts[0] += kept
        self.counts[1] += rejected
        m["accepted"] = DECAY * m["accepted"] + kept
        m["rejected"] = DECAY * m["rejected"] + rejected
