"""The one record type: one `Record` per (example, cell) of a run, written as one line of results.jsonl by every
runner and read back by the summary and the report. `SCHEMA` is its version; a record of an older version is read
with the fields it lacks at their defaults."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

SCHEMA = 2          # 1: records written before the schema was versioned (no alpha_requested, no schema field)


@dataclass(frozen=True)
class Cell:
    """One (method, k, α, schedule) combination of a run. k = 0 for methods that take no k; `alpha` is the
    controlled draft's acceptance rate (None without a controlled draft)."""

    method: str
    k: int = 0
    alpha: float | None = None
    schedule: str = "constant"

    @property
    def label(self) -> str:
        extra = ([f"k={self.k}"] if self.k else []) + ([f"alpha={self.alpha:g}"] if self.alpha is not None else [])
        return self.method + (f"@{','.join(extra)}" if extra else "")

    def key(self, example_id) -> tuple:
        return (str(example_id), self.method, int(self.k), self.alpha)


@dataclass
class Record:
    example_id: str
    method: str
    k: int
    seconds: float
    new_tokens: int
    tokens: list
    example_index: int = 0
    alpha_requested: float | None = None
    schedule: str | None = "constant"
    order: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted: list = field(default_factory=list)
    drafted: list = field(default_factory=list)
    rejections: int = 0
    target_seconds: float = 0.0
    draft_seconds: float = 0.0
    total_seconds: float = 0.0
    overhead_seconds: float = 0.0
    alpha: float | None = None          # measured per-token acceptance of this generation (None without rounds)
    output: str | None = None           # decoded text (None for token-id tasks)
    reference: str | None = None
    matches_greedy: bool | None = None
    model: str | None = None
    draft: str | None = None
    task: str | None = None
    device: str | None = None
    dtype: str | None = None
    timestamp: float = 0.0
    schema: int = SCHEMA

    @classmethod
    def of(cls, result, seconds: float, cell: Cell, example: dict, *, index: int, order: int, output, matches,
           run: dict) -> "Record":
        """The record of one `generate()` result (`run`: model, draft, task, device, dtype of the run)."""
        st = result.stats
        return cls(example_id=str(example["id"]), example_index=index, method=cell.method, k=cell.k,
                   alpha_requested=cell.alpha, schedule=cell.schedule, order=order, seconds=seconds,
                   new_tokens=st.new_tokens, tokens=result.tokens[0], target_calls=st.target_calls,
                   draft_calls=st.draft_calls, accepted=list(st.accepted), drafted=list(st.drafted),
                   rejections=st.rejections, target_seconds=st.target_seconds, draft_seconds=st.draft_seconds,
                   total_seconds=st.total_seconds, overhead_seconds=st.overhead_seconds, alpha=st.acceptance_rate,
                   output=output, reference=example.get("reference"), matches_greedy=matches,
                   timestamp=time.time(), **run)

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("schema", 1)
        known["k"] = int(known.get("k") or 0)
        known["example_id"] = str(known["example_id"])
        return cls(**known)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> tuple:
        return (self.example_id, self.method, int(self.k), self.alpha_requested)
