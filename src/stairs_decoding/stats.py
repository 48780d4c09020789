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
    - ``accepted``: one entry per verification round: the draft tokens kept in that round. Every round also
      keeps one token of the target's own, so ``sum(accepted) + rounds == max(len(row))`` (== ``new_tokens``
      at batch size 1). With batch > 1 rows advance in lockstep by the batch-wide agreeing length.
    - ``drafted``: draft tokens proposed in each round (k, or fewer near the end / with the schedule).
    - ``rejections``: rounds that ended on a real draft/target disagreement (not cut short by EOS or the
      length limit); the per-token acceptance rate is ``sum(accepted) / (sum(accepted) + rejections)``.
    - ``target_seconds`` / ``draft_seconds``: time inside each model's forward calls (encoder included);
      ``total_seconds - target_seconds - draft_seconds`` is the loop's own overhead.
    """

    new_tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted: list[int] = field(default_factory=list)
    drafted: list[int] = field(default_factory=list)
    rejections: int = 0
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

        alpha = acceptance_rate(self.accepted, self.rejections)
        return None if alpha != alpha else alpha

    @property
    def mean_accepted(self) -> float | None:
        return sum(self.accepted) / len(self.accepted) if self.accepted else None

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
