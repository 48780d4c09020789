"""schedule="auto": speculate only where it pays, decided by measurement. For each shape of call — (target, draft,
method, batch size, k) — the policy keeps the throughput (committed tokens per second, whole calls) that
speculation and plain greedy steps reached so far in this process, and runs each call with the faster one; the
first call of a shape speculates, the second runs greedy, and every `PROBE_EVERY`-th call tries the slower one
again, so the choice follows the machine (like transformers' assisted generation, whose heuristic k carries over
between calls). `DecodingStats.fallback_round` reports it: None = speculated, 0 = plain greedy steps (recorded as
rounds without drafts, so every round invariant of DecodingStats holds). Output is exact either way."""
from __future__ import annotations

import weakref

from ._state import ModelState, Sequence

PROBE_EVERY = 16
_MEMORY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # draft model → {shape: memo}


class AutoPolicy:
    def __init__(self, target: ModelState, draft: ModelState, seq: Sequence, k: int, method: str):
        per_draft = _MEMORY.setdefault(draft.model, {})
        shape = (id(target.model), method, seq.tokens.shape[0], k)
        self.memo = per_draft.setdefault(shape, {"spec": [0, 0.0], "greedy": [0, 0.0], "calls": 0})
        self.target, self.draft = target, draft
        self.t0 = target.clock()
        self.lengths0 = int(seq.lengths.sum())
        self.arm = self._choose()

    def _choose(self) -> str:
        m = self.memo
        m["calls"] += 1
        rate = {arm: (n / s if s > 0 else None) for arm, (n, s) in ((a, m[a]) for a in ("spec", "greedy"))}
        if rate["spec"] is None:
            return "spec"
        if rate["greedy"] is None:
            return "greedy"
        best = "spec" if rate["spec"] >= rate["greedy"] else "greedy"
        other = "greedy" if best == "spec" else "spec"
        return other if m["calls"] % PROBE_EVERY == 0 else best

    def start(self, seq: Sequence, stats) -> bool:
        """Before the first round: False when this call runs greedy (it has then been decoded to the end)."""
        if self.arm == "spec":
            return True
        stats.fallback_round = 0
        while not seq.done:
            plain_round(self.target, self.draft, seq, stats)
        self.finish(stats)
        return False

    def finish(self, stats) -> None:
        """After the call: its throughput joins the arm it ran."""
        arm = self.memo[self.arm]
        arm[0] += sum(len(a) + sum(a) for a in stats.row_accepted)        # tokens committed by every row
        arm[1] += self.target.clock() - self.t0


def plain_round(target: ModelState, draft: ModelState | None, seq: Sequence, stats) -> None:
    """One plain target step for every running row, recorded as a round without drafts."""
    logits = target.step(seq)
    running, rows = (~seq.finished).tolist(), seq.rows.tolist()
    seq.append(seq.settings.choose(seq.settings(seq.tokens, logits[:, -1])))
    for b, ran in zip(rows, running):
        if ran:
            stats.row_accepted[b].append(0)
    stats.accepted.append(0)
    stats.drafted.append(0)
    keep = seq.drop_finished()
    target.select(keep)
    if draft is not None:
        draft.select(keep)
