"""Finding and loading run directories: which kind of run each is, its env.json, its summary and records as tidy
DataFrames tagged with their pair, and which pairs are the paper's checkpoints."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import NoRunsError
from ..methods import METHODS

# The paper's abstract (its stairs method, T5-small assistant): time reduction vs greedy, per target checkpoint.
PAPER_REDUCTION_PCT = {"t5-large": 17.24, "t5-3b": 9.58}
# Labels of the paper's checkpoints as records name what was loaded (a hub id, "@<revision>" stripped).
PAPER_TARGETS = {"google-t5/t5-large": "t5-large", "t5-large": "t5-large", "google-t5/t5-3b": "t5-3b",
                 "t5-3b": "t5-3b"}
PAPER_DRAFTS = ("google-t5/t5-small", "t5-small")
# Speculative methods (draft proposes, target verifies), in registry order.
SPEC_METHODS = tuple(m.name for m in METHODS.values() if m.speculative)
# The target alone: our greedy (the reference of every speed-up) and transformers' own greedy loop.
BASELINES = tuple(m.name for m in METHODS.values() if not m.speculative and m.uses_target)
# The draft alone: the quality/speed floor.
FLOORS = tuple(m.name for m in METHODS.values() if not m.uses_target)


def is_exact(method: str) -> bool:
    """Whether the method returns the target's greedy output (the registry's `exact`; unknown names: yes)."""
    return METHODS[method].exact if method in METHODS else True


def read_env(run_dir) -> dict:
    p = Path(run_dir) / "env.json"
    return json.loads(p.read_text()) if p.exists() else {}


def environment_caption(envs: list[dict]) -> str:
    """'device; torch X, transformers Y; dtype; date' from the env.json of the runs (distinct values joined)."""
    def distinct(key):
        vals = []
        for e in envs:
            v = e.get(key)
            if v is not None and str(v) not in vals:
                vals.append(str(v))
        return "/".join(vals) if vals else "?"

    device = distinct("device_name") if any(e.get("device_name") for e in envs) else distinct("device")
    threads = distinct("torch_threads")
    dates = sorted({str(e.get("date", ""))[:10] for e in envs if e.get("date")})
    return (f"{device} ({distinct('device')}, {threads} threads), {distinct('dtype')}; torch {distinct('torch')}, "
            f"transformers {distinct('transformers')}; {', '.join(dates) or '?'}")


def arch_key(model: str) -> str:
    """A config name as a T5 size: "t5_large_arch" → "t5-large" (for the architecture-only α sweeps)."""
    m = str(model).lower().replace("_", "-")
    return m[:-5] if m.endswith("-arch") else m


def model_size(model: str) -> float:
    from ..paper_scale import T5_ARCHITECTURES

    shape = T5_ARCHITECTURES.get(arch_key(model))
    return float(shape.params or 0) if shape is not None else math.inf


def _loaded(label) -> str:
    """A record's model/draft label without its "@<revision>"."""
    return str(label).split("@", 1)[0].strip()


def paper_pair(model, draft) -> str | None:
    """"t5-large" or "t5-3b" when the pair is the paper's checkpoints (the target google-t5/t5-large or t5-3b, the
    draft google-t5/t5-small, by hub id, with or without a revision); None for anything else: a local or shipped
    checkpoint, a config name, random weights (`*_arch`)."""
    target = PAPER_TARGETS.get(_loaded(model))
    return target if target and _loaded(draft) in PAPER_DRAFTS else None


def run_dirs(runs) -> list[Path]:
    from ..run_files import has_results

    if isinstance(runs, (str, Path)):
        runs = [runs]
    dirs = []
    for r in runs:
        r = Path(r)
        if has_results(r / "results.jsonl") or (r / "summary.csv").exists():
            dirs.append(r)
        else:                                   # a folder of runs (multirun, results/): every run below it
            dirs.extend(sorted(p.parent for p in r.rglob("summary.csv")))
    if not dirs:
        raise NoRunsError(f"no run directories (with summary.csv or results.jsonl) under {list(map(str, runs))}")
    return dirs


def incomplete(run_dir) -> str | None:
    """Why a run's figures would show less than it was meant to measure (cells with fewer examples than its
    task.num_examples: an interrupted run), or None."""
    import pandas as pd
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    try:
        want = OmegaConf.load(run_dir / "config.yaml").task.get("num_examples")
        n = pd.read_csv(run_dir / "summary.csv")["n"]
    except Exception:  # noqa: BLE001 — no config or summary: nothing to compare
        return None
    if want is None or n.empty or int(n.min()) >= int(want):
        return None
    return (f"{run_dir} is incomplete: some cells have {int(n.min())} of {int(want)} examples; its figures show "
            f"what was finished (continue it: python scripts/run.py resume={run_dir})")


def _any_above(run_dir, column: str, value: float) -> bool:
    """Whether a row of the run's summary.csv has `column` above `value` (a missing file, column or cell: no)."""
    import pandas as pd

    p = Path(run_dir) / "summary.csv"
    if not p.exists():
        return False
    df = pd.read_csv(p)
    return column in df.columns and bool((df[column].fillna(value) > value).any())


def is_alpha_sweep(run_dir) -> bool:
    """A run with a controlled draft (its summary rows have a requested α), e.g. experiment=paper_scale_t5_large."""
    import pandas as pd

    p = Path(run_dir) / "summary.csv"
    if not p.exists():
        return False
    df = pd.read_csv(p)
    return "alpha_requested" in df.columns and bool(df["alpha_requested"].notna().any())


def is_batch_sweep(run_dir) -> bool:
    """A run with cells at batch size > 1 (task.batch_size, e.g. experiment=tiny_batch_cpu): it gets the
    throughput figure and table, not the batch-size-1 figures (its batch-1 cells would repeat a pair's run)."""
    return _any_above(run_dir, "batch_size", 1)


def is_sampling_sweep(run_dir) -> bool:
    """A run with cells that sample (temperature > 0, e.g. experiment=tiny_sampling_cpu): it gets the sampling figure
    and table, not the greedy ones."""
    return _any_above(run_dir, "temperature", 0)


def is_schedule_sweep(run_dir) -> bool:
    """A run with schedule="cost" cells (experiment=cost_k_cpu, paper_scale_t5_large_cost): it gets the cost_schedule
    figure (every fixed k beside k chosen by measured cost) and no other, whatever else it sweeps."""
    import pandas as pd

    p = Path(run_dir) / "summary.csv"
    if not p.exists():
        return False
    df = pd.read_csv(p)
    return "schedule" in df.columns and bool((df["schedule"] == "cost").any())


def report_of(run_dir) -> str | None:
    """The figure family a run's config names (`report`, e.g. "per_task" for experiment=per_task_cpu), or None."""
    from omegaconf import OmegaConf

    p = Path(run_dir) / "config.yaml"
    return OmegaConf.load(p).get("report") if p.exists() else None


def run_kind(run_dir) -> str:
    """The family its config names (`report`: "per_task"), else "schedule" (cells under schedule="cost"), "alpha" (a
    controlled-draft α sweep), "sampling" (cells at a temperature > 0), "batched" (batch size > 1), or "plain": each
    kind has its figures (report.FIGURES)."""
    if (named := report_of(run_dir)) is not None:
        return str(named)
    if is_schedule_sweep(run_dir):
        return "schedule"
    if is_alpha_sweep(run_dir):
        return "alpha"
    return "sampling" if is_sampling_sweep(run_dir) else "batched" if is_batch_sweep(run_dir) else "plain"


def run_device(run_dir) -> str:
    """The device type a run measured on ("cpu", "cuda", ...), from its env.json."""
    return str(read_env(run_dir).get("device") or "cpu").split(":")[0]


def pair_label(model: str, draft: str) -> str:
    return f"{model} ← {draft}"


def _load_runs(runs, filename: str, read, *, batched: bool = False, sampling: bool = False, schedule: bool = False,
               kind: str | None = None):
    """`read(path)` of `filename` in every scripts/run.py run, tagged with its pair, run dir and device: greedy runs
    at batch size 1 only, or (`batched`) only greedy runs with batches (task.batch_size > 1), or (`sampling`) only
    runs that sample (decoding.do_sample), or only the runs of `kind` (run_kind); α sweeps never."""
    import pandas as pd

    from ..run_files import has_results

    want = kind or ("schedule" if schedule else "sampling" if sampling else "batched" if batched else "plain")
    frames = []
    for d in run_dirs(runs):
        if not has_results(d / filename) or run_kind(d) != want:
            continue
        df = read(d / filename)
        df["run_dir"] = str(d)
        df["device_name"] = read_env(d).get("device_name")
        df["pair"] = [pair_label(m, dr) for m, dr in zip(df["model"], df["draft"])]
        frames.append(df)
    if not frames:
        what = {"schedule": "with schedule=cost cells", "sampling": "that samples", "batched": "with batches",
                "plain": "without a controlled draft, batches or sampling"}.get(want, f"of the {want} report")
        raise NoRunsError(f"no {filename} of a run {what} in the given runs")
    return pd.concat(frames, ignore_index=True)


def load_results(runs):
    """One tidy row per example × cell × model pair: every run's results.jsonl read as `records.Record`s (records
    of an older schema get the fields they lack at their defaults)."""
    import pandas as pd

    from ..run_files import read_records

    return _load_runs(runs, "results.jsonl", lambda p: pd.DataFrame([r.to_dict() for r in read_records(p)]))


def load_summaries(runs, *, batched: bool = False, sampling: bool = False, schedule: bool = False,
                   kind: str | None = None):
    """Every run's summary.csv (one row per method × k × model pair), runs with a controlled draft left out; runs
    with batches (task.batch_size > 1) only with `batched` (then only they), runs that sample only with `sampling`
    (then only they), runs with schedule="cost" cells only with `schedule` (then only they, α sweeps included);
    with `kind` ("per_task"), only the runs whose config names that report."""
    import pandas as pd

    return _load_runs(runs, "summary.csv", pd.read_csv, batched=batched, sampling=sampling, schedule=schedule,
                      kind=kind)


def load_alpha_sweep(runs) -> tuple:
    """A summary DataFrame (the summary.csv rows of controlled-draft runs, e.g. experiment=paper_scale_t5_large) and
    the runs' env.json dicts.
    `runs`: a DataFrame, one run directory, or a list of run directories."""
    import pandas as pd

    if isinstance(runs, pd.DataFrame):
        return runs.copy(), []
    if isinstance(runs, (str, Path)):
        runs = [runs]
    frames, envs = [], []
    for d in runs:
        frames.append(pd.read_csv(Path(d) / "summary.csv"))
        envs.append(read_env(d))
    return pd.concat(frames, ignore_index=True), envs


def best_k(summary):
    """Per pair and speculative method, the k with the largest speed-up (summary.best_k: the one definition the
    table, every figure and the README use)."""
    from ..summary import best_k as _best

    return _best(summary[summary["method"].isin(SPEC_METHODS)])


def best_k_per_alpha(df):
    """For each (target model, method, α): the row of the k with the largest speed-up (summary.best_k)."""
    from ..summary import best_k as _best

    spec = df[(df.method != "greedy") & df.alpha_requested.notna()]
    return _best(spec).sort_values(["model", "method", "alpha_requested"])


def pull_wandb(project: str, out_dir) -> list[Path]:
    """Download the `results` artifact (results.jsonl, summary.csv, env.json, config) of every run of a W&B
    project into out_dir/<run id>/, for the notebooks; local files stay the source of truth."""
    import wandb

    dirs = []
    for run in wandb.Api().runs(project):
        for art in run.logged_artifacts():
            if art.type == "results":
                dirs.append(Path(art.download(root=str(Path(out_dir) / run.id))))
    if not dirs:
        raise NoRunsError(f"no 'results' artifacts in W&B project {project!r}")
    return dirs
