"""The experiment loop behind scripts/run.py, as named phases:

    plan cells (checks.plan) → load examples → load models → describe the run → warm up → measure c
    → run each batch of examples (task.batch_size; one example by default) across its cells (each record appended
    as it exists) → summarise → write.

Greedy runs first on every example: it is the reference for time, for `matches_greedy` and for a controlled draft
(paper_scale.ControlledDraft). The other cells rotate by one position per example so that drift hits all alike.
Each `generate()` call is timed between device synchronisations (timing.timed). `resume=true` skips finished
cells. results.jsonl, summary.csv, env.json, config.yaml and cost_ratio.json are written in the run directory.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import cli, timing
from . import config as _config
from .checks import cell_options, plan, portable
from .generation import generate
from .methods import METHODS
from .models import (build_model, check_pair_models, describe_loaded, is_none_node, load_tokenizer, node_label,
                     node_name, resolve_device, resolve_dtype, share_encoder)
from .records import Cell, Record
from .run_files import (CONFIG_FILE, COST_FILE, ENV_FILE, RESULTS_FILE, SUMMARY_FILE, ResultsWriter, environment,
                      write_json, write_summary)
from .summary import clean, format_table, summary_rows, verify_costs
from .tasks import load_task


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- examples and models --------------------------------------------------------------------------------------
def load_examples(cfg: DictConfig) -> tuple[list[dict], list[dict]]:
    """(timed examples, warm-up examples): warm-up uses examples past the timed ones when the task has them —
    warmup_examples × the largest batch size of them, so that a warm-up batch holds distinct examples."""
    sizes = cfg.task.get("batch_size", 1) or 1
    largest = max(sizes) if not isinstance(sizes, int) else sizes
    warmup_n = int(cfg.get("warmup_examples", 0) or 0) * int(largest)
    examples = load_task(cfg.task, extra=warmup_n)
    n_timed = int(cfg.task.num_examples) if cfg.task.get("num_examples") is not None else len(examples)
    timed = examples[:n_timed]
    return timed, examples[n_timed:n_timed + warmup_n] or timed[:warmup_n]


@dataclass
class Pair:
    """The loaded models of a run. `controlled`: the draft's acceptance controller, when the draft node sets alpha."""

    target: object
    draft: object | None
    tokenizer: object | None
    controlled: object | None = None
    shared_encoder: bool = False
    loaded: dict = field(default_factory=dict)     # env.json "loaded": per role, what was loaded (describe_loaded)


def load_pair(cfg: DictConfig, device, examples: list[dict]) -> Pair:
    """The tokenizer (only for text examples; first: it is the cheap one to fail), then target and draft."""
    has_draft = not is_none_node(cfg.get("draft"))
    tokenizer = load_tokenizer(cfg.model) if any("input_ids" not in ex for ex in examples) else None
    target = build_model(cfg.model, dtype=str(cfg.dtype), device=str(device))
    draft = build_model(cfg.draft, dtype=str(cfg.dtype), device=str(device)) if has_draft else None
    check_pair_models(target, draft, node_label(cfg.model), node_label(cfg.draft))
    loaded = {"target": describe_loaded(target, cfg.model), "draft": describe_loaded(draft, cfg.draft)}
    pair = Pair(target, draft, tokenizer, shared_encoder=share_encoder(target, draft), loaded=loaded)
    if has_draft and cfg.draft.get("alpha") is not None:
        from .paper_scale import ControlledDraft

        pair.controlled = ControlledDraft(draft, float(cfg.draft.alpha), seed=int(cfg.draft.get("alpha_seed", 0)))
    return pair


# -- one generation ---------------------------------------------------------------------------------------------
@dataclass
class Runner:
    """Runs cells on examples with the run's settings: encodes once per example, times each `generate()`."""

    cfg: DictConfig
    pair: Pair
    device: torch.device
    _ids: dict = field(default_factory=dict)

    def input_ids(self, ex: dict) -> torch.Tensor:
        if ex["id"] not in self._ids:
            if "input_ids" in ex:
                self._ids[ex["id"]] = torch.tensor([ex["input_ids"]], dtype=torch.long)
            else:
                self._ids[ex["id"]] = encode(self.pair.tokenizer, ex["source"],
                                             max_source_tokens=self.cfg.task.get("max_source_tokens"),
                                             chat_template=bool(self.cfg.model.get("chat_template", False)))
        return self._ids[ex["id"]]

    def batch(self, exs: list[dict]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The examples' inputs as one padded batch (right-padded for an encoder-decoder, left-padded for a
        decoder-only model, as their tokenizers pad them) and its attention mask (None for one example)."""
        rows = [self.input_ids(ex)[0] for ex in exs]
        if len(rows) == 1:
            return rows[0].unsqueeze(0), None
        width = max(len(r) for r in rows)
        pad = getattr(self.pair.tokenizer, "pad_token_id", None)
        pad = pad if pad is not None else self.pair.target.generation_config.pad_token_id
        ids = torch.full((len(rows), width), int(pad or 0), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        left = not self.pair.target.config.is_encoder_decoder
        for b, r in enumerate(rows):
            cols = slice(width - len(r), width) if left else slice(0, len(r))
            ids[b, cols], mask[b, cols] = r, 1
        return ids, mask

    def run(self, cell: Cell, exs: list[dict], max_new_tokens: int | None = None):
        """(GenerationResult, seconds) of one cell on a batch of examples (one `generate()` call). A sampling cell
        (temperature > 0) draws with torch's RNG seeded from the run's seed and the batch's first example, so a
        run is reproducible and every cell of a batch starts from the same seed."""
        if self.pair.controlled is not None:      # a cell without its own α runs at the draft node's
            self.pair.controlled.alpha = cell.alpha if cell.alpha is not None else float(self.cfg.draft.alpha)
        ids, mask = self.batch(exs)
        sampling = {}
        if cell.temperature:
            dec = self.cfg.decoding
            sampling = dict(do_sample=True, temperature=float(cell.temperature), top_k=dec.get("top_k"),
                            top_p=dec.get("top_p"))
            torch.manual_seed(zlib.crc32(f"{self.cfg.get('seed', 0)}:{exs[0]['id']}".encode()))
        return timing.timed(lambda: generate(
            self.pair.target, ids, attention_mask=mask, draft=self.pair.draft, method=cell.method,
            num_draft_tokens=max(cell.k, 1), max_new_tokens=max_new_tokens or int(self.cfg.task.max_new_tokens),
            schedule=cell.schedule, ignore_eos=bool(self.cfg.get("ignore_eos", False)), **sampling,
            **cell_options(self.cfg, cell)), self.device)

    def options(self, cell: Cell) -> dict | None:
        """The method options a cell ran with, defaults included (None for a method without options)."""
        spec = METHODS[cell.method]
        values = spec.option_values(cell_options(self.cfg, cell))
        if cell.schedule != "confidence":
            values.pop("confidence_threshold", None)
        return values or None

    def set_reference(self, tokens: list[int], example_seed: int) -> None:
        """The target's greedy tokens of the example, for the controlled draft (no-op without one)."""
        if self.pair.controlled is not None:
            self.pair.controlled.set_reference(tokens, example_seed=example_seed)

    def text(self, tokens: list[int]) -> str | None:
        return decode(self.pair.tokenizer, tokens) if self.pair.tokenizer is not None else None


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


# -- phases -------------------------------------------------------------------------------------------------------
def _relative_run_dir(run_dir: Path, root: str) -> str:
    """The run directory relative to the checkout, or "." (the run itself) when it lies outside it."""
    try:
        return str(Path(run_dir).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return "."


def describe_run(cfg: DictConfig, run_dir: Path, device, pair: Pair | None, resumed: bool) -> dict:
    """config.yaml (portable; a resumed run keeps the one that made it) and env.json (versions, device, the pair as
    loaded; earlier sessions kept on resume)."""
    root = _config.repo_root()
    if not (resumed and (run_dir / CONFIG_FILE).exists()):
        OmegaConf.save(OmegaConf.create(portable(OmegaConf.to_container(cfg, resolve=True), root)),
                       run_dir / CONFIG_FILE)
    env = environment(device=device, dtype=str(cfg.dtype), seed=int(cfg.get("seed", 0)), repo=root)
    env.update(model=node_label(cfg.model), draft=node_label(cfg.draft), task=str(cfg.task.name),
               configs={"model": node_name(cfg.model), "draft": node_name(cfg.draft)},
               loaded=pair.loaded if pair is not None else None,
               run_dir=_relative_run_dir(run_dir, root),
               draft_shares_target_encoder=pair.shared_encoder if pair is not None else None,   # None: not loaded
               architecture_only=bool(cfg.model.get("architecture")),
               controlled_draft=not is_none_node(cfg.get("draft")) and cfg.draft.get("alpha") is not None)
    if pair is not None:              # where each model sits, when that is not simply the run's device
        from .timing import model_devices

        for role, model in (("target", pair.target), ("draft", pair.draft)):
            devs = model_devices(model)
            dev = torch.device(device)
            if dev.type == "cuda" and dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
            if devs and devs != [dev]:
                env[f"{role}_devices"] = [str(d) for d in devs]
    if resumed and (run_dir / ENV_FILE).exists():
        try:
            old = json.loads((run_dir / ENV_FILE).read_text())
            env["previous_sessions"] = old.pop("previous_sessions", []) + [old]
        except (OSError, ValueError):
            pass
    write_json(run_dir / ENV_FILE, env)
    return env


def finish_env(run_dir: Path, env: dict, started: float, device) -> None:
    """env.json gains this session's wall time and peak memory (resident set; CUDA when used)."""
    import resource

    env.update(run_seconds=round(time.perf_counter() - started, 1),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1))
    if torch.device(device).type == "cuda":
        env["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    write_json(run_dir / ENV_FILE, env)


def start_tracker(cfg: DictConfig, run_dir: Path):
    from hydra.utils import instantiate

    if not (cfg.get("logger") and cfg.logger.get("_target_")):
        return None
    tracker = instantiate(cfg.logger)
    config = {**OmegaConf.to_container(cfg, resolve=True), "loaded": {"target": node_label(cfg.model),
                                                                       "draft": node_label(cfg.draft)}}
    tracker.start(config=config, run_dir=str(run_dir),
                  name=cfg.get("run_name") or f"{node_label(cfg.model)} <- {node_label(cfg.draft)}")
    return tracker


def warm_up(runner: Runner, cells: list[Cell], examples: list[dict]) -> None:
    """Every (method, k, batch size, schedule, temperature) warmup_examples times (greedy first: the controlled draft's
    reference), call j on the j-th batch of the warm-up examples at the cell's batch size (cycled where there are
    too few); nothing recorded. `warmup_max_new_tokens` shortens these generations."""
    n = min(int(runner.cfg.get("warmup_max_new_tokens") or runner.cfg.task.max_new_tokens),
            int(runner.cfg.task.max_new_tokens))            # never longer than the timed generations
    calls = int(runner.cfg.get("warmup_examples", 0) or 0)
    for j in range(calls if examples else 0):
        seen = set()
        for cell in cells:
            what = (cell.method, cell.k, cell.batch_size, cell.schedule, cell.temperature)
            if what in seen:   # another α: the same computation
                continue
            seen.add(what)
            size = cell.batch_size
            batch = [examples[(j * size + i) % len(examples)] for i in range(size)]
            res, _ = runner.run(cell, batch, n)
            if cell.method == "greedy" and not cell.temperature:
                runner.set_reference(res.tokens[0], example_seed=-1 - j)


def verify_tokens(cells: list[Cell]) -> int:
    """The largest verification the run's batch-1 cells make in one cached row (k + 1), for the verify-cost curve."""
    return max([c.k + 1 for c in cells if METHODS[c.method].verify_row and c.batch_size == 1] or [1])


def measure_cost(runner: Runner, example: dict, run_dir: Path, cells: list[Cell]) -> dict:
    """c = draft decoder step / target decoder step (timing.measure_cost_ratio: the draft's own forward, and its lean
    step where it has one), written to cost_ratio.json."""
    pair, cc = runner.pair, runner.cfg.get("cost_ratio") or {}
    if pair.draft is None:
        return {"cost_ratio_c": math.nan}
    if pair.controlled is not None:
        pair.controlled.remove()       # the real forward pass, without the logit rewrite
    try:
        cost = timing.measure_cost_ratio(pair.target, pair.draft, runner.input_ids(example),
                                         context=max(1, int(runner.cfg.task.max_new_tokens) // 2),
                                         rounds=int(cc.get("rounds", 5)), steps=int(cc.get("steps", 24)),
                                         verify_tokens=verify_tokens(cells))
    finally:
        if pair.controlled is not None:
            pair.controlled.attach()
    if (run_dir / COST_FILE).exists():     # a resumed run: earlier sessions' measurements are kept, not replaced
        try:
            old = json.loads((run_dir / COST_FILE).read_text())
            cost["previous_sessions"] = old.pop("previous_sessions", []) + [old]
        except (OSError, ValueError):
            pass
    write_json(run_dir / COST_FILE, cost)
    return cost


def run_batch(runner: Runner, cells: list[Cell], batch: list[dict], index: int, writer: ResultsWriter,
              greedy_tokens: dict, run_info: dict) -> list[Record]:
    """Every unfinished cell on one batch of examples (one example at batch size 1), in its rotated order; each
    cell's records (one per example) appended as soon as they exist."""
    out = []
    order = timing.interleaved_order(cells, index, rotate=runner.cfg.get("rotate", True), pinned=1)
    for pos, cell in enumerate(order):
        if all(cell.key(ex["id"]) in writer.done for ex in batch):
            continue
        if cell.method != "greedy" and cell.ref(batch[0]["id"]) in greedy_tokens:
            runner.set_reference(greedy_tokens[cell.ref(batch[0]["id"])], example_seed=index)
        res, seconds = runner.run(cell, batch)
        batch_id = str(batch[0]["id"]) if len(batch) > 1 else None
        for row, ex in enumerate(batch):
            tokens = res.tokens[row]
            if cell.method == "greedy":
                greedy_tokens[cell.ref(ex["id"])] = tokens
            ref = greedy_tokens.get(cell.ref(ex["id"])) if not cell.temperature else None   # samples differ
            matches = None if ref is None else tokens == ref
            if matches is False and METHODS[cell.method].exact:
                _warn(f"WARNING: {cell.label} output differs from greedy on example {ex['id']} "
                      f"({len(tokens)} vs {len(ref)} tokens)")
            record = Record.of(res, seconds, cell, ex, index=index * cell.batch_size + row, order=pos,
                               output=runner.text(tokens), matches=matches, run=run_info, row=row, batch_id=batch_id,
                               options=runner.options(cell))
            writer.write(record)
            out.append(record)
    return out


def batches(timed: list[dict], size: int) -> list[list[dict]]:
    """The timed examples in consecutive batches of `size` (the last may be smaller): the same batches on resume."""
    return [timed[i:i + size] for i in range(0, len(timed), size)]


def run_examples(runner: Runner, cells: list[Cell], todo: list[dict], timed: list[dict], writer: ResultsWriter,
                 records: list[Record], tracker) -> None:
    """Each (batch size, temperature) in turn (task.batch_size, decoding.temperature), its batches one by one, every
    cell of that size and temperature on each (greedy at that temperature, the target alone, first)."""
    from tqdm import tqdm

    cfg = runner.cfg
    run_info = {"model": node_label(cfg.model), "draft": node_label(cfg.draft), "task": str(cfg.task.name),
                "device": str(runner.device), "dtype": str(cfg.dtype)}
    greedy_tokens = {r.ref: r.tokens for r in records if r.method == "greedy"}
    todo_ids = {ex["id"] for ex in todo}
    work = []
    for size, temperature in dict.fromkeys((c.batch_size, c.temperature) for c in cells):
        group = [c for c in cells if (c.batch_size, c.temperature) == (size, temperature)]
        for i, batch in enumerate(batches(timed, size)):
            if any(ex["id"] in todo_ids and c.key(ex["id"]) not in writer.done for ex in batch for c in group):
                work.append((group, batch, i))
    bar = tqdm(work, desc=f"batches ({len(cells)} cells in all)", unit="batch", file=sys.stderr,
               disable=not cfg.get("progress", True))
    for group, batch, i in bar:
        for record in run_batch(runner, group, batch, i, writer, greedy_tokens, run_info):
            records.append(record)
            if tracker is not None:
                tracker.log_example(record.to_dict())


def summarise(run_dir: Path, records: list[Record], cost: dict, tracker) -> list[dict]:
    """summary.csv from every record of the run (earlier sessions' included); the tracker gets rows and files."""
    if math.isnan(cost.get("cost_ratio_c", math.nan)) and (run_dir / COST_FILE).exists():
        cost = json.loads((run_dir / COST_FILE).read_text())
    rows = clean(summary_rows(records, cost_ratio_c=cost.get("cost_ratio_c", math.nan),
                              cost_ratio_ci=cost.get("cost_ratio_ci95"),
                              lean=(cost["cost_ratio_c_lean"], cost.get("cost_ratio_ci95_lean"))
                              if "cost_ratio_c_lean" in cost else None, verify=verify_costs(cost)))
    write_summary(run_dir / SUMMARY_FILE, rows)
    if tracker is not None:
        tracker.log_summary(rows)
        tracker.log_files([str(run_dir / f) for f in (RESULTS_FILE, SUMMARY_FILE, ENV_FILE, CONFIG_FILE)])
        tracker.finish()
    return rows


def _draft_forward(row: dict) -> str:
    return "lean" if "draft_forward=lean" in str(row.get("options") or "") else "transformers"


def print_report(cfg: DictConfig, rows: list[dict], n_examples: int, device, run_dir: Path) -> None:
    cs = []
    for forward in ("transformers", "lean"):       # each cell's c is that of the draft step it ran (summary.py)
        c_row = next((r for r in rows if r.get("cost_ratio_c") is not None and _draft_forward(r) == forward), None)
        if c_row is not None:
            ci = (f" (95 % CI {c_row['cost_ratio_ci95_low']:.3f}–{c_row['cost_ratio_ci95_high']:.3f})"
                  if c_row.get("cost_ratio_ci95_low") is not None else "")
            cs.append(f"{c_row['cost_ratio_c']:.3f}{ci}" + (" with the lean draft step" if forward == "lean" else ""))
    print(f"\n{node_label(cfg.model)} + draft {node_label(cfg.draft)} on {cfg.task.name} ({n_examples} examples, "
          f"device {device}, {torch.get_num_threads()} threads, {cfg.dtype}); c measured = "
          f"{'; '.join(cs) or 'nan'}")
    print(format_table(rows))
    for r in rows:
        if r.get("above_bound"):
            _warn(f"WARNING: {r['method']} k={r['k']}"
                  + (f" alpha={r['alpha_requested']}" if r.get("alpha_requested") is not None else "")
                  + f": speed-up {r['speedup']:.3f} (95 % CI from {r['speedup_ci95_low']:.3f}) is above the ideal "
                  f"bound's interval (up to {r['bound_ci95_high']:.3f}): not a possible result, look for the cause")
    mism = sum(r.get("mismatches") or 0 for r in rows if METHODS[r["method"]].exact)
    if mism:
        print(f"WARNING: {mism} output(s) differ from greedy (see matches_greedy in results.jsonl)")
    print(f"run dir: {run_dir}")


# -- the run ------------------------------------------------------------------------------------------------------
def _phase(cfg: DictConfig, what: str) -> None:
    """One line on stderr as a long phase before the first record starts (with progress=true)."""
    if cfg.get("progress", True):
        _warn(what)


def run_experiment(cfg: DictConfig, run_dir: str | os.PathLike, progress: dict | None = None) -> list[dict]:
    """Run (or resume) one experiment into `run_dir`; returns the summary rows. `progress` (a dict) is kept
    up to date with the run's `cells`, `examples` and `done` (finished cell keys), for the interrupt message."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cells = plan(cfg, run_dir)
    device, _ = resolve_device(cfg.get("device", "auto")), resolve_dtype(cfg.get("dtype", "float32"))
    for role in ("model", "draft"):                   # a node's own device (draft.device=cuda:1): checked up front
        node = cfg.get(role)
        if node is not None and node.get("device") is not None:
            resolve_device(str(node.device))
    torch.manual_seed(int(cfg.get("seed", 0)))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    timed, warm = load_examples(cfg)
    writer = ResultsWriter(run_dir / RESULTS_FILE)   # repairs a torn last line; `done` = finished cells
    records = [Record.from_dict(d) for d in writer.existing]
    todo = [ex for ex in timed if any(c.key(ex["id"]) not in writer.done for c in cells)]
    if progress is not None:
        progress.update(cells=cells, examples=timed, done=writer.done)
    if cfg.get("resume"):
        total = len(cells) * len(timed)
        finished = sum(c.key(ex["id"]) in writer.done for c in cells for ex in timed)
        _warn(f"resume: {finished} of {total} cell runs (cells x examples) finished in {run_dir / RESULTS_FILE}; "
              f"{total - finished} remain")
    pair = tracker = None
    env, rows, cost = {}, [], {"cost_ratio_c": math.nan}
    try:
        if todo:
            _phase(cfg, f"loading {node_label(cfg.model)} and draft {node_label(cfg.draft)} ...")
        pair = load_pair(cfg, device, timed + warm) if todo else None   # nothing left to run: summary only
        env = describe_run(cfg, run_dir, device, pair, resumed=bool(cfg.get("resume")))
        tracker = start_tracker(cfg, run_dir)
        if todo:
            runner = Runner(cfg, pair, device)
            _phase(cfg, f"warming up every cell ({int(cfg.get('warmup_examples', 0) or 0)} call(s) each, nothing "
                        "recorded) ...")
            warm_up(runner, cells, warm)
            _phase(cfg, "measuring the cost ratio c and the verify-cost curve v(m) ...")
            cost = measure_cost(runner, timed[0], run_dir, cells)
            env["verify_cost"] = cost.get("verify_cost")      # v(m): also in cost_ratio.json
            run_examples(runner, cells, todo, timed, writer, records, tracker)
    finally:
        writer.close()
        if pair is not None and pair.controlled is not None:
            pair.controlled.remove()
        if env:          # the run got as far as describing itself: summarise what exists (also after Ctrl-C)
            rows = summarise(run_dir, records, cost, tracker)
            finish_env(run_dir, env, started, device)
    print_report(cfg, rows, len(timed), device, run_dir)
    return rows


def finished_cells(progress: dict) -> str:
    """"N of M cell runs finished" (cells x examples) from run_experiment's progress dict."""
    if not progress:
        return "no cell run finished yet"
    keys = [c.key(ex["id"]) for c in progress["cells"] for ex in progress["examples"]]
    return f"{sum(k in progress['done'] for k in keys)} of {len(keys)} cell runs (cells x examples) finished"


def resume_command(run_dir) -> str:
    """The command that continues the run in `run_dir` (printed after Ctrl-C): this script, as it was invoked."""
    import shlex

    return f"python {shlex.quote(sys.argv[0])} resume={shlex.quote(str(run_dir))}"


# What a run directory holds when its run failed before anything of its own was written (Hydra's files, our probes).
_EMPTY_RUN_FILES = {".hydra", CONFIG_FILE, ENV_FILE, COST_FILE, RESULTS_FILE, SUMMARY_FILE}


def remove_if_empty(run_dir: Path) -> bool:
    """Delete a run directory that holds no record (only Hydra's files, empty logs, this run's own description) so
    that a failed run leaves no empty folder behind; anything else in it keeps it. True when removed."""
    import shutil

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    for entry in run_dir.iterdir():
        if entry.name in (RESULTS_FILE, SUMMARY_FILE) and entry.stat().st_size > 0:
            return False
        if entry.name not in _EMPTY_RUN_FILES and not (entry.suffix == ".log" and entry.stat().st_size == 0):
            return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def cli_main(cfg: DictConfig) -> None:
    """Entry point for scripts/run.py (user errors: one line, exit 2 — see cli.run). A run that fails before its
    first record leaves no run directory behind."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = HydraConfig.get().runtime.output_dir
    progress: dict = {}
    code = cli.run(lambda: run_experiment(cfg, run_dir, progress) and None,
                   on_interrupt=lambda: f"{finished_cells(progress)} in {Path(run_dir) / RESULTS_FILE}; continue "
                                        f"with: {resume_command(run_dir)}")
    if code == 2 and not cfg.get("resume"):
        remove_if_empty(Path(run_dir))
    if code:
        sys.exit(code)
