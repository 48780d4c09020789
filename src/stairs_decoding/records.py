"""The one record type: one `Record` per (example, cell) of a run, written as one line of results.jsonl by every
runner and read back by the summary and the report. `SCHEMA` is its version; a record of an older version is read
with the fields it lacks at their defaults."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

SCHEMA = 5          # 1: records written before the schema was versioned (no alpha_requested, no schema field);
                    # 2: before batches (no batch_size, batch_id, batch_seconds, ragged, fallback_round);
                    # 3: before sampling (no temperature); 4: before method options (no options, branches)


@dataclass(frozen=True)
class Cell:
    """One (method, k, α, schedule, batch size, temperature) combination of a run. k = 0 for methods that take no
    k; `alpha` is the controlled draft's acceptance rate (None without a controlled draft); `batch_size`: examples
    per `generate()` call (task.batch_size); `temperature`: 0 = greedy, else sampling at it (the `decoding` group)."""

    method: str
    k: int = 0
    alpha: float | None = None
    schedule: str = "constant"
    batch_size: int = 1
    temperature: float = 0.0

    @property
    def label(self) -> str:
        extra = ([f"k={self.k}"] if self.k else []) + ([f"alpha={self.alpha:g}"] if self.alpha is not None else []) \
            + ([f"batch={self.batch_size}"] if self.batch_size != 1 else []) \
            + ([f"schedule={self.schedule}"] if self.schedule != "constant" else []) \
            + ([f"T={self.temperature:g}"] if self.temperature else [])
        return self.method + (f"@{','.join(extra)}" if extra else "")

    def key(self, example_id) -> tuple:
        return (str(example_id), self.method, int(self.k), self.alpha, int(self.batch_size), self.schedule,
                float(self.temperature))

    def ref(self, example_id) -> tuple:
        """The reference of this cell on an example: greedy (the target alone) at the same batch size and
        temperature."""
        return (str(example_id), int(self.batch_size), float(self.temperature))


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
    batch_size: int = 1                 # examples in its generate() call; `seconds` is that call's time / batch_size
    batch_id: str | None = None         # the call's first example (None at batch size 1): the bootstrap's unit
    batch_seconds: float | None = None  # the whole call's time
    ragged: bool | None = None          # rows advanced each by its own accepted length (per-row acceptance)
    fallback_round: int | None = None   # schedule=auto: where the call fell back to greedy (stats.DecodingStats)
    temperature: float = 0.0            # 0 = greedy; else sampled at this temperature (do_sample=True)
    options: dict | None = None         # the method's options (methods.OPTION_DEFAULTS), defaults included
    branches: list = field(default_factory=list)   # stairs_tree: branches verified per row, each round
    schema: int = SCHEMA

    @classmethod
    def of(cls, result, seconds: float, cell: Cell, example: dict, *, index: int, order: int, output, matches,
           run: dict, row: int = 0, batch_id: str | None = None, options: dict | None = None) -> "Record":
        """The record of row `row` of one `generate()` result (`run`: model, draft, task, device, dtype of the run;
        `seconds`: the call's time). With a batch, times and call counts are the call's, divided by its rows;
        tokens, accepted drafts and rejections are the row's own."""
        from .metrics import acceptance_rate

        st = result.stats
        n = len(result.tokens)
        if options and "draft_forward" in options and st.draft_forward is not None:
            options = {**options, "draft_forward": st.draft_forward}     # what "auto" resolved to
        accepted, rejections = st.row(row)
        alpha = acceptance_rate(accepted, rejections) if accepted else None
        return cls(example_id=str(example["id"]), example_index=index, method=cell.method, k=cell.k,
                   alpha_requested=cell.alpha, schedule=cell.schedule, order=order, seconds=seconds / n,
                   new_tokens=len(result.tokens[row]), tokens=result.tokens[row], target_calls=st.target_calls,
                   draft_calls=st.draft_calls, accepted=accepted, drafted=list(st.drafted),
                   rejections=rejections, target_seconds=st.target_seconds / n, draft_seconds=st.draft_seconds / n,
                   total_seconds=st.total_seconds / n, overhead_seconds=st.overhead_seconds / n,
                   alpha=None if alpha is None or alpha != alpha else alpha,
                   output=output, reference=example.get("reference"), matches_greedy=matches,
                   timestamp=time.time(), batch_size=cell.batch_size, batch_id=batch_id,
                   batch_seconds=seconds if n > 1 else None, ragged=st.ragged if n > 1 else None,
                   fallback_round=st.fallback_round, temperature=float(cell.temperature), options=options,
                   branches=list(st.branches), **run)

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
        return (self.example_id, self.method, int(self.k), self.alpha_requested, int(self.batch_size or 1),
                self.schedule or "constant", float(self.temperature or 0.0))

    @property
    def ref(self) -> tuple:
        """(example, batch size, temperature): what its greedy reference shares with it (Cell.ref)."""
        return (self.example_id, int(self.batch_size or 1), float(self.temperature or 0.0))
