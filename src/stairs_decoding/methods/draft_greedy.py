"""The draft model alone, greedily (or sampling): the quality/speed floor the speculative methods are compared with."""
from __future__ import annotations

from ._state import ModelState, Sequence
from .greedy import decode


def run(target: ModelState | None, draft: ModelState, seq: Sequence, **_) -> None:
    decode(draft, seq)
