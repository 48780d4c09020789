"""Experiment tracking behind one small interface. W&B is a mirror, never the source of truth: every W&B call
is wrapped, a failure is reported as one line on stderr and the run goes on."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _notice(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Tracker:
    """No-op tracker (logger=none)."""

    def start(self, *, config: dict, run_dir: str, name: str | None = None) -> None: ...
    def log_example(self, record: dict) -> None: ...
    def log_summary(self, rows: list[dict]) -> None: ...
    def log_files(self, paths: list[str]) -> None: ...
    def finish(self) -> None: ...


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbTracker(Tracker):
    """Weights & Biases: online when credentials exist, else offline (one-line notice); `mode` forces one."""

    def __init__(self, project: str = "stairs-decoding", entity: str | None = None, mode: str | None = None,
                 group: str | None = None, tags: list | None = None, job_type: str = "benchmark",
                 log_every_example: bool = True):
        self.project, self.entity, self.mode, self.group = project, entity, mode, group
        self.tags, self.job_type, self.log_every_example = list(tags or []), job_type, log_every_example
        self.run = None
        self._failed = set()
        self._rows: list[dict] = []

    def _guard(self, what: str, fn, *args, **kwargs):
        if what != "init" and self.run is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 — a tracker must never stop a run
            if what not in self._failed:
                self._failed.add(what)
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                _notice(f"warning: W&B {what} failed ({type(e).__name__}: {msg}); continuing without it")
            return None

    def _resolve_mode(self) -> str:
        mode = self.mode or os.environ.get("WANDB_MODE")
        if mode:
            return mode
        if _has_wandb_credentials():
            return "online"
        _notice("notice: no W&B credentials found; logging to W&B in offline mode (sync later with `wandb sync`)")
        return "offline"

    def start(self, *, config: dict, run_dir: str, name: str | None = None) -> None:
        def _init():
            import wandb

            wandb_dir = os.environ.get("WANDB_DIR") or run_dir
            Path(wandb_dir).mkdir(parents=True, exist_ok=True)
            return wandb.init(project=self.project, entity=self.entity, mode=self._resolve_mode(),
                              group=self.group, tags=self.tags, job_type=self.job_type, name=name,
                              dir=wandb_dir, config=config, reinit="finish_previous")

        self.run = self._guard("init", _init)

    def log_example(self, record: dict) -> None:
        row = {k: record.get(k) for k in ("example_id", "method", "k", "seconds", "new_tokens", "target_calls",
                                          "draft_calls", "rejections", "matches_greedy", "output", "reference")}
        row["accepted_sum"] = sum(record.get("accepted") or [])
        self._rows.append(row)
        if self.log_every_example:
            self._guard("log", self.run.log if self.run else None,
                        {f"{record['method']}/k{record['k']}/seconds": record["seconds"],
                         f"{record['method']}/k{record['k']}/new_tokens": record["new_tokens"]})

    def log_summary(self, rows: list[dict]) -> None:
        def _log():
            import wandb

            if self._rows:
                cols = list(self._rows[0])
                self.run.log({"examples": wandb.Table(columns=cols, data=[[r[c] for c in cols] for r in self._rows])})
            if rows:
                cols = list(rows[0])
                self.run.log({"summary": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
            for r in rows:
                prefix = f"{r['method']}/k{r['k']}"
                for key in ("median_s", "tokens_per_s", "time_reduction_pct", "speedup", "alpha", "bound_speedup",
                            "bleu_vs_greedy", "bleu_vs_ref", "exact_match_rate"):
                    if r.get(key) is not None:
                        self.run.summary[f"{prefix}/{key}"] = r[key]

        self._guard("summary", _log)

    def log_files(self, paths: list[str]) -> None:
        def _art():
            import wandb

            art = wandb.Artifact(name=f"results-{self.run.id}", type="results")
            for p in paths:
                if Path(p).exists():
                    art.add_file(str(p))
            self.run.log_artifact(art)

        self._guard("artifact", _art)

    def finish(self) -> None:
        self._guard("finish", self.run.finish if self.run else None)
        self.run = None
