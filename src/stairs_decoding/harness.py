"""The experiment loop behind scripts/run.py.

Loads the target/draft pair once, then for every example runs every (method, k) cell, interleaved per example
(greedy first: it is the reference for time and for `matches_greedy`; the other cells rotate by one per
example), timing each `generate()` call between device synchronisations. Each cell's JSON line is appended to
results.jsonl as soon as it exists; `resume=true` skips finished cells. summary.csv, env.json, config.yaml and
cost_ratio.json are written next to it.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import config as _config  # noqa: F401  (registers resolvers)
from . import metrics, timing
from .errors import USER_ERRORS, HarnessError
from .generation import generate
from .methods import METHODS, NEEDS_DRAFT, SCHEDULES, SPECULATIVE
from .models import (build_model, check_available, check_pair_config, check_pair_models, is_none_node, load_tokenizer,
                     resolve_device, resolve_dtype, share_encoder)
from .results import (CONFIG_FILE, COST_FILE, ENV_FILE, RESULTS_FILE, SUMMARY_FILE, ResultsWriter, environment,
                      write_json, write_summary)
from .tasks import load_task

NO_K = ("greedy", "draft_greedy")   # k is irrelevant: recorded as k = 0


@dataclass(frozen=True)
class Cell:
    method: str
    k: int
    schedule: str | None

    @property
    def label(self) -> str:
        return self.method if self.k == 0 else f"{self.method}@k={self.k}"


def _as_int_k(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HarnessError(f"{where}: num_draft_tokens (k) must be an integer >= 1, got {value!r}")
    return value


def check_counts(cfg: DictConfig) -> None:
    """task.num_examples (null = all), task.max_new_tokens and warmup_examples, before any work."""
    n = cfg.task.get("num_examples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise HarnessError(f"task.num_examples must be an integer >= 1 (or null for the whole task), got {n!r}")
    m = cfg.task.get("max_new_tokens")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise HarnessError(f"task.max_new_tokens must be an integer >= 1, got {m!r}")
    w = cfg.get("warmup_examples", 0)
    if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
        raise HarnessError(f"warmup_examples must be an integer >= 0, got {w!r}")


# Keys a resumed run may change: where output goes and how it is shown, where the checkout is.
RESUME_MAY_CHANGE = ("logger", "resume", "progress", "paths")


def portable(obj, root: str):
    """`obj` (a resolved config container) with paths inside the checkout `root` made relative to it, so that
    config.yaml and env.json name no directory of the machine that wrote them."""
    root = str(Path(root).resolve())
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str) and (obj == root or obj.startswith(root + os.sep)):
        return os.path.relpath(obj, root)
    return obj


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: obj}


def config_differences(saved: dict, current: dict, ignore=RESUME_MAY_CHANGE) -> list[str]:
    """Dotted keys whose values differ between two resolved configs ("key (saved -> now)"), ignored top-level
    keys left out."""
    a = {k: v for k, v in _flat(saved).items() if k.split(".")[0] not in ignore}
    b = {k: v for k, v in _flat(current).items() if k.split(".")[0] not in ignore}
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            show = lambda v: "unset" if v is missing else repr(v)  # noqa: E731
            out.append(f"{key} ({show(va)} -> {show(vb)})")
    return out


def check_resume(cfg: DictConfig, run_dir: Path) -> None:
    """A results.jsonl in `run_dir` may only be continued (resume=true) by the configuration that made it."""
    import json

    results_path = run_dir / RESULTS_FILE
    if not (results_path.exists() and results_path.stat().st_size > 0):
        return
    if not cfg.get("resume", False):
        raise HarnessError(f"{results_path} already exists; pass resume=true to continue it, or choose another "
                           "hydra.run.dir")
    root = _config.repo_root()
    current = portable(OmegaConf.to_container(cfg, resolve=True), root)
    saved_path = run_dir / CONFIG_FILE
    if saved_path.exists():
        saved = portable(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False), root)
        diff = config_differences(saved, current)
        if diff:
            more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
            raise HarnessError(f"resume: {run_dir} was made by another configuration: {'; '.join(diff[:4])}{more}; "
                               "resume with the same settings, or choose another hydra.run.dir")
        return
    names = (_name(cfg.model), _name(cfg.draft), str(cfg.task.name))
    for line in results_path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if (r.get("model"), r.get("draft"), r.get("task")) != names:
            raise HarnessError(f"{results_path} holds results of model={r.get('model')} draft={r.get('draft')} "
                               f"task={r.get('task')}, not of this configuration; choose another hydra.run.dir")
        break


def plan_cells(cfg: DictConfig) -> list[Cell]:
    """The cells of one run: greedy first, then each requested method at each k (k=0 for greedy/draft_greedy)."""
    schedule = cfg.method.get("schedule", "constant") or "constant"
    sweep = cfg.get("sweep")
    if sweep:
        methods = list(sweep.get("methods") or [cfg.method.name])
        ks = sweep.get("num_draft_tokens")
        ks = list(ks) if ks is not None else [cfg.method.num_draft_tokens]
        schedule = sweep.get("schedule", schedule) or schedule
        where = "sweep"
    else:
        methods, ks, where = [cfg.method.name], [cfg.method.get("num_draft_tokens")], "method"
    if schedule not in SCHEDULES:
        raise HarnessError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    for m in methods:
        if m not in METHODS:
            raise HarnessError(f"unknown method {m!r}; valid methods: {', '.join(METHODS)}")
    cells = [Cell("greedy", 0, None)]
    for m in methods:
        if m in NO_K:
            cell = Cell(m, 0, None)
            if cell not in cells:
                cells.append(cell)
            continue
        for k in ks:
            k = _as_int_k(k, where)
            cell = Cell(m, k, schedule if m in ("stairs", "stairs_cached") else "constant")
            if cell not in cells:
                cells.append(cell)
    return cells


# -- encoding / decoding ----------------------------------------------------------------------------------
def encode(tokenizer, source: str, *, max_source_tokens: int | None, chat_template: bool) -> torch.Tensor:
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": source}], tokenize=False,
                                             add_generation_prompt=True)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    else:
        enc = tokenizer(source, return_tensors="pt", truncation=max_source_tokens is not None,
                        max_length=max_source_tokens)
    return enc["input_ids"]


def decode(tokenizer, tokens: list[int]) -> str:
    return tokenizer.decode(tokens, skip_special_tokens=True).strip()


# -- summary ----------------------------------------------------------------------------------------------
def _nan_to_none(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def summary_rows(records: list[dict], *, cost_ratio_c: float, device: str, model: str, draft: str,
                 task: str) -> list[dict]:
    """One row per (method, k) of the records, in first-seen order; time reduction/speed-up are paired with
    greedy on the same examples (ratio of total seconds)."""
    by_cell: dict[tuple, list[dict]] = {}
    for r in records:
        by_cell.setdefault((r["method"], int(r["k"] or 0)), []).append(r)
    greedy = {r["example_id"]: r for r in by_cell.get(("greedy", 0), [])}
    greedy_step = (sum(r["target_seconds"] for r in greedy.values()) /
                   max(1, sum(r["target_calls"] for r in greedy.values()))) if greedy else math.nan
    rows = []
    for (method, k), recs in by_cell.items():
        s = timing.summarize([r["seconds"] for r in recs])
        paired = [r for r in recs if r["example_id"] in greedy]
        t_m = sum(r["seconds"] for r in paired)
        t_g = sum(greedy[r["example_id"]]["seconds"] for r in paired)
        speedup = t_g / t_m if paired and t_m > 0 else math.nan
        accepted = [a for r in recs for a in (r.get("accepted") or [])]
        rejections = sum(r.get("rejections") or 0 for r in recs)
        spec = method in SPECULATIVE
        alpha = metrics.acceptance_rate(accepted, rejections) if spec else math.nan
        bound = metrics.speedup_bound(alpha, cost_ratio_c, k) if spec else (1.0 if method == "greedy" else math.nan)
        d_calls = sum(r.get("draft_calls") or 0 for r in recs)
        c_rounds = ((sum(r.get("draft_seconds") or 0.0 for r in recs) / d_calls) / greedy_step
                    if d_calls and greedy_step and not math.isnan(greedy_step) else math.nan)
        hyps = [r["output"] for r in paired]
        refs_g = [greedy[r["example_id"]]["output"] for r in paired]
        refs = [r.get("reference") or "" for r in recs]
        mism = sum(1 for r in recs if r.get("matches_greedy") is False)
        rows.append({
            "method": method, "k": k, **s,
            "tokens_per_s": (sum(r["new_tokens"] for r in recs) / sum(r["seconds"] for r in recs)
                             if sum(r["seconds"] for r in recs) > 0 else math.nan),
            "time_reduction_pct": 100.0 * (1.0 - t_m / t_g) if paired and t_g > 0 else math.nan,
            "speedup": speedup,
            "mean_accepted": (sum(accepted) / len(accepted)) if accepted else math.nan,
            "alpha": alpha,
            "cost_ratio_c": cost_ratio_c if method in NEEDS_DRAFT else math.nan,
            "bound_speedup": bound,
            "achieved_over_bound": speedup / bound if bound and not math.isnan(bound) else math.nan,
            "bleu_vs_greedy": metrics.bleu(hyps, refs_g) if paired else math.nan,
            "bleu_vs_ref": metrics.bleu([r["output"] for r in recs], refs) if any(refs) else math.nan,
            "exact_match_rate": sum(1 for r in recs if r.get("matches_greedy")) / len(recs),
            "model": model, "draft": draft, "task": task, "device": device,
            "cost_ratio_c_rounds": c_rounds,
            "chrf_vs_ref": metrics.chrf([r["output"] for r in recs], refs) if any(refs) else math.nan,
            "mismatches": mism,
        })
    return rows


TABLE_COLUMNS = {"method": "method", "k": "k", "n": "n", "median_s": "median s/ex", "tokens_per_s": "tok/s",
                 "time_reduction_pct": "time red. %", "speedup": "speed-up", "mean_accepted": "acc/round",
                 "alpha": "alpha", "cost_ratio_c": "c", "bound_speedup": "bound", "achieved_over_bound": "ach/bound",
                 "bleu_vs_greedy": "BLEU vs greedy", "bleu_vs_ref": "BLEU vs ref", "exact_match_rate": "exact"}


def format_table(rows: list[dict]) -> str:
    import pandas as pd

    if not rows:
        return "(no results)"
    df = pd.DataFrame(rows)[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    fmt = {"median s/ex": "{:.4f}", "tok/s": "{:.1f}", "time red. %": "{:+.1f}", "speed-up": "{:.3f}",
           "acc/round": "{:.2f}", "alpha": "{:.3f}", "c": "{:.3f}", "bound": "{:.3f}", "ach/bound": "{:.3f}",
           "BLEU vs greedy": "{:.1f}", "BLEU vs ref": "{:.1f}", "exact": "{:.2f}"}
    for col, f in fmt.items():
        df[col] = df[col].map(lambda v, f=f: "-" if v is None or (isinstance(v, float) and math.isnan(v))
                              else f.format(v))
    return df.to_string(index=False)


# -- the run ----------------------------------------------------------------------------------------------
def _name(node) -> str:
    if is_none_node(node):
        return "none"
    return str(node.get("name") or node.get("checkpoint"))


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _relative_run_dir(run_dir: Path, root: str) -> str:
    """The run directory relative to the checkout, or "." (the run itself) when it lies outside it."""
    try:
        return str(Path(run_dir).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return "."


def check_outputs(cfg: DictConfig, run_dir: Path) -> None:
    """What would otherwise fail only after the last example: the run directory is writable, the table and
    summary can be made (pandas), the logger can be built, the progress bar exists."""
    probe = run_dir / ".write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise HarnessError(f"run directory {run_dir} is not writable: {e.strerror or e}") from None
    # Rehearse the end of the run (summary statistics, BLEU/chrF, table, summary.csv) on made-up records, so a
    # missing module or an unwritable file shows now, not after the last example.
    fake = [{"example_id": str(i), "method": m, "k": k, "seconds": 1.0 + i, "new_tokens": 3, "target_calls": 2,
             "target_seconds": 0.5, "draft_calls": 2 if k else 0, "draft_seconds": 0.1, "accepted": [1] if k else [],
             "rejections": 1 if k else 0, "output": "a b c", "reference": "a b d", "matches_greedy": True}
            for i in range(2) for m, k in (("greedy", 0), ("stairs_cached", 2))]
    probe = run_dir / ".summary-test.csv"
    try:
        __import__("tqdm")   # the progress bar

        rows = summary_rows(fake, cost_ratio_c=0.5, device="cpu", model="m", draft="d", task="t")
        format_table(rows)
        write_summary(probe, rows)
    except ImportError as e:
        raise HarnessError(f"{e.name or e} is not installed, but the run's summary needs it; "
                           "pip install -e . installs every dependency") from None
    finally:
        probe.unlink(missing_ok=True)


def run_experiment(cfg: DictConfig, run_dir: str | os.PathLike) -> list[dict]:
    """Run (or resume) one experiment into `run_dir`; returns the summary rows."""
    from hydra.utils import instantiate

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run_dir / RESULTS_FILE

    # 1. Cheap checks first: cells, draft presence, vocabularies from config metadata, resume state.
    cells = plan_cells(cfg)
    has_draft = not is_none_node(cfg.get("draft"))
    needing = sorted({c.method for c in cells if c.method in NEEDS_DRAFT})
    if needing and not has_draft:
        raise HarnessError(f"method(s) {', '.join(needing)} need a draft model, but draft=none; "
                           "choose one, e.g. draft=tiny_draft")
    check_counts(cfg)
    check_pair_config(cfg.model, cfg.draft if has_draft else None)
    check_available(cfg.model)
    check_available(cfg.draft if has_draft else None)
    check_resume(cfg, run_dir)
    check_outputs(cfg, run_dir)
    device, dtype = resolve_device(cfg.get("device", "auto")), resolve_dtype(cfg.get("dtype", "float32"))
    model_name, draft_name, task_name = _name(cfg.model), _name(cfg.draft), str(cfg.task.name)

    # 2. Determinism and threads.
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))

    # 3. Data (before the heavy models), then models and tokenizer.
    warmup_n = int(cfg.get("warmup_examples", 0) or 0)
    examples = load_task(cfg.task, extra=warmup_n)
    n_timed = int(cfg.task.num_examples) if cfg.task.get("num_examples") is not None else len(examples)
    timed_examples = examples[:n_timed]
    warm_examples = examples[n_timed:n_timed + warmup_n] or timed_examples[:warmup_n]
    writer = ResultsWriter(results_path)     # repairs a torn last line; `done` = finished cells
    records = list(writer.existing)
    todo = [ex for ex in timed_examples if any((ex["id"], c.method, c.k) not in writer.done for c in cells)]
    if resume_skipped := len(timed_examples) - len(todo):
        _warn(f"resume: {resume_skipped} of {len(timed_examples)} example(s) already complete in {results_path}")
    target = draft = tokenizer = None
    shared_encoder = False
    try:
        if todo:   # nothing left to run: no need to load the models (summary only)
            target = build_model(cfg.model, dtype=str(cfg.dtype), device=str(device))
            draft = build_model(cfg.draft, dtype=str(cfg.dtype), device=str(device)) if has_draft else None
            check_pair_models(target, draft, model_name, draft_name)
            shared_encoder = share_encoder(target, draft)
            tokenizer = load_tokenizer(cfg.model)
    except BaseException:
        writer.close()
        raise

    # 4. Files describing the run, tracker.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    root = _config.repo_root()
    OmegaConf.save(OmegaConf.create(portable(resolved, root)), run_dir / CONFIG_FILE)
    env = environment(device=device, dtype=str(cfg.dtype), seed=seed, repo=root)
    env.update(model=model_name, draft=draft_name, task=task_name, run_dir=_relative_run_dir(run_dir, root),
               draft_shares_target_encoder=shared_encoder)
    if records and (run_dir / ENV_FILE).exists():      # a resume: keep the earlier sessions' environments
        import json

        try:
            old = json.loads((run_dir / ENV_FILE).read_text())
            env["previous_sessions"] = old.pop("previous_sessions", []) + [old]
        except (OSError, ValueError):
            pass
    write_json(run_dir / ENV_FILE, env)
    tracker = instantiate(cfg.logger) if cfg.get("logger") and cfg.logger.get("_target_") else None
    if tracker is not None:
        tracker.start(config=resolved, run_dir=str(run_dir), name=cfg.get("run_name"))

    max_new = int(cfg.task.max_new_tokens)
    max_src = cfg.task.get("max_source_tokens")
    chat = bool(cfg.model.get("chat_template", False))
    ignore_eos = bool(cfg.get("ignore_eos", False))

    def run_cell(cell: Cell, input_ids):
        return timing.timed(lambda: generate(target, input_ids, draft=draft, method=cell.method,
                                             num_draft_tokens=max(cell.k, 1), max_new_tokens=max_new,
                                             schedule=cell.schedule or "constant", ignore_eos=ignore_eos),
                            device)

    greedy_tokens = {r["example_id"]: r["tokens"] for r in records if r["method"] == "greedy"}
    cost = {"cost_ratio_c": math.nan}
    try:
        encoded = {}

        def ids_for(ex):
            if ex["id"] not in encoded:
                encoded[ex["id"]] = encode(tokenizer, ex["source"], max_source_tokens=max_src, chat_template=chat)
            return encoded[ex["id"]]

        # Warm-up: every cell once per warm-up example, nothing recorded.
        if todo:
            for ex in warm_examples:
                for cell in cells:
                    run_cell(cell, ids_for(ex))
        # Direct cost ratio c (draft decoder step / target decoder step, KV cache, typical length).
        if draft is not None and todo:
            cc = cfg.get("cost_ratio") or {}
            cost = timing.measure_cost_ratio(target, draft, ids_for(timed_examples[0]),
                                             context=max(1, max_new // 2), rounds=int(cc.get("rounds", 5)),
                                             steps=int(cc.get("steps", 24)))
            write_json(run_dir / COST_FILE, cost)

        from tqdm import tqdm

        bar = tqdm(todo, desc=f"examples ({len(cells)} cells each)", unit="ex", file=sys.stderr,
                   disable=not cfg.get("progress", True))
        for ex in bar:
            i = next(j for j, e in enumerate(timed_examples) if e["id"] == ex["id"])
            ids = ids_for(ex)
            for pos, cell in enumerate(timing.interleaved_order(cells, i, rotate=cfg.get("rotate", True),
                                                                pinned=1)):
                if (ex["id"], cell.method, cell.k) in writer.done:
                    continue
                res, seconds = run_cell(cell, ids)
                tokens = res.tokens[0]
                if cell.method == "greedy":
                    greedy_tokens[ex["id"]] = tokens
                ref = greedy_tokens.get(ex["id"])
                matches = None if ref is None else tokens == ref
                if matches is False and cell.method != "draft_greedy":
                    _warn(f"WARNING: {cell.label} output differs from greedy on example {ex['id']} "
                          f"({len(tokens)} vs {len(ref)} tokens)")
                st = res.stats
                record = {
                    "example_id": ex["id"], "example_index": i, "method": cell.method, "k": cell.k,
                    "schedule": cell.schedule, "order": pos, "seconds": seconds,
                    "new_tokens": st.new_tokens, "target_calls": st.target_calls, "draft_calls": st.draft_calls,
                    "accepted": list(st.accepted), "drafted": list(st.drafted), "rejections": st.rejections,
                    "target_seconds": st.target_seconds, "draft_seconds": st.draft_seconds,
                    "total_seconds": st.total_seconds, "overhead_seconds": st.overhead_seconds,
                    "alpha": st.acceptance_rate, "output": decode(tokenizer, tokens), "tokens": tokens,
                    "reference": ex["reference"], "matches_greedy": matches,
                    "model": model_name, "draft": draft_name, "task": task_name,
                    "device": str(device), "timestamp": time.time(),
                }
                writer.write(record)
                records.append(record)
                if tracker is not None:
                    tracker.log_example(record)
    finally:
        writer.close()
        if math.isnan(cost.get("cost_ratio_c", math.nan)) and (run_dir / COST_FILE).exists():
            import json

            cost = json.loads((run_dir / COST_FILE).read_text())
        rows = summary_rows(records, cost_ratio_c=cost.get("cost_ratio_c", math.nan), device=str(device),
                            model=model_name, draft=draft_name, task=task_name)
        rows = [{k: _nan_to_none(v) for k, v in r.items()} for r in rows]
        write_summary(run_dir / SUMMARY_FILE, rows)
        if tracker is not None:
            tracker.log_summary(rows)
            tracker.log_files([str(run_dir / f) for f in (RESULTS_FILE, SUMMARY_FILE, ENV_FILE, CONFIG_FILE)])
            tracker.finish()
    mism = sum(r.get("mismatches") or 0 for r in rows if r["method"] != "draft_greedy")
    print(f"\n{model_name} + draft {draft_name} on {task_name} ({len(timed_examples)} examples, device {device}, "
          f"{torch.get_num_threads()} threads, {cfg.dtype}); c measured = {cost.get('cost_ratio_c', math.nan):.3f}")
    print(format_table(rows))
    if mism:
        print(f"WARNING: {mism} output(s) differ from greedy (see matches_greedy in results.jsonl)")
    print(f"run dir: {run_dir}")
    return rows


def cli_main(cfg: DictConfig) -> None:
    """Entry point for scripts/run.py: one `error: ...` line and exit status 2 for user errors."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        run_experiment(cfg, run_dir)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished cells are in {Path(run_dir) / RESULTS_FILE}; continue with "
              f"resume=true hydra.run.dir={run_dir}", file=sys.stderr, flush=True)
        sys.exit(130)
