"""Result types shared by every decoding method."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DecodingStats:
    """What one `generate()` call did and how long it took.

    Conventions (all methods):
    - ``new_tokens``: new tokens returned, summed over rows (EOS included, nothing after it).
    - ``target_calls`` / ``draft_calls``: decoder forward calls of each model (encoder runs are not counted
      here; each encoder runs once per input). For the speculative methods ``target_calls`` equals the
      number of verification rounds.
    - ``accepted``: one entry per verification round: the draft tokens kept in that round by the row that
      advanced furthest. Every round also keeps one token of the target's own, so at batch size 1
      ``sum(accepted) + rounds == new_tokens``.
    - ``row_accepted[b]`` / ``row_rejections[b]``: the same per row b, over the rounds it was running. With
      batch > 1 each row keeps its own agreeing prefix (per-row acceptance, `Sequence.append_rows`) where the
      pair allows it, else every row keeps the batch-wide minimum (lockstep, ``ragged`` False).
    - ``drafted``: draft tokens proposed in each round (k, or fewer near the end / with the schedule).
    - ``rejections``: row-rounds that ended on a real draft/target disagreement (not cut short by EOS, the
      length limit, or another row's disagreement in lockstep), summed over rows; the per-token acceptance rate
      is ``Σ row_accepted / (Σ row_accepted + rejections)`` (at batch size 1: ``sum(accepted) / (sum(accepted) +
      rejections)``).
    - ``target_seconds`` / ``draft_seconds``: time inside each model's forward calls (encoder included);
      ``total_seconds - target_seconds - draft_seconds`` is the loop's own overhead.
    """

    new_tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted: list[int] = field(default_factory=list)
    drafted: list[int] = field(default_factory=list)
    rejections: int = 0
    row_accepted: list[list[int]] = field(default_factory=list)
    row_rejections: list[int] = field(default_factory=list)
    branches: list[int] = field(default_factory=list)     # stairs_tree: branches verified per row, each round
    branch_rows: list[int] = field(default_factory=list)  # stairs_tree: rows its verification fed, each round (the
    #                                                       branches the running rows have, one row per branch)
    branch_wins: dict = field(default_factory=dict)       # stairs_tree: row-rounds a branch other than the
    #                                                       draft's won, by kind ("lookup", "runner_up")
    ragged: bool = False                  # rows advanced each by its own accepted length
    lookup_source: str | None = None      # what lookup searched (lookup, stairs_tree): "input+output", "prompt+output",
    #                                       or "output" (an encoder input that is not tokens: speech, images)
    draft_forward: str | None = None      # how the draft's decoder steps ran: "lean" or "transformers" (methods with
    #                                       the draft_forward option; methods/_lean.py)
    fallback_round: int | None = None     # schedule="auto": None = speculated to the end, 0 = greedy from the start,
    #                                       r = fell back to greedy after round r (methods/_auto.py)
    target_seconds: float = 0.0
    draft_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def rounds(self) -> int:
        return len(self.accepted)

    @property
    def acceptance_rate(self) -> float | None:
        """Per-token acceptance α (metrics.acceptance_rate); None without rounds."""
        from .metrics import acceptance_rate

        alpha = acceptance_rate(self._pooled(), self.rejections)
        return None if alpha != alpha else alpha

    @property
    def mean_accepted(self) -> float | None:
        """Draft tokens kept per round, per row (pooled over rows)."""
        pooled = self._pooled()
        return sum(pooled) / len(pooled) if pooled else None

    def _pooled(self) -> list[int]:
        return [a for row in self.row_accepted for a in row] if self.row_accepted else self.accepted

    def row(self, b: int) -> tuple[list[int], int]:
        """(accepted per round, rejections) of row b (the batch's own at batch size 1 without row statistics)."""
        if self.row_accepted:
            return list(self.row_accepted[b]), self.row_rejections[b]
        return list(self.accepted), self.rejections

    @property
    def overhead_seconds(self) -> float:
        return max(0.0, self.total_seconds - self.target_seconds - self.draft_seconds)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(rounds=self.rounds, acceptance_rate=self.acceptance_rate, mean_accepted=self.mean_accepted,
                 overhead_seconds=self.overhead_seconds)
        return d


@dataclass
class GenerationResult:
    """``tokens[b]``: the new tokens of input row ``b`` (no prompt, no decoder start), EOS included if produced."""

    tokens: list[list[int]]
    stats: DecodingStats
