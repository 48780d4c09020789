"""What an experiment checks before any expensive work (models, data): its cells, counts, resume state and outputs.

`plan(cfg, run_dir)` runs every check and returns the run's cells; each failure is one `HarnessError` line.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import config as _config
from .errors import HarnessError
from .methods import METHODS, OPTION_DEFAULTS, SCHEDULES
from .models import check_available, check_pair_config, is_none_node, node_label, node_name
from .records import Cell, Record
from .run_files import CONFIG_FILE, RESULTS_FILE, has_results, write_summary


def _int(value, where: str, *, minimum: int, none_ok: bool = False, hint: str = ""):
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HarnessError(f"{where} must be an integer >= {minimum}{hint}, got {value!r}")
    return value


def check_counts(cfg: DictConfig) -> None:
    """task.num_examples (null = all), task.max_new_tokens, warmup_examples and warmup_max_new_tokens."""
    _int(cfg.task.get("num_examples"), "task.num_examples", minimum=1, none_ok=True, hint=" (or null for the whole "
         "task)")
    _int(cfg.task.get("max_new_tokens"), "task.max_new_tokens", minimum=1)
    _int(cfg.get("warmup_examples", 0), "warmup_examples", minimum=0, none_ok=True)
    _int(cfg.get("warmup_max_new_tokens"), "warmup_max_new_tokens", minimum=1, none_ok=True)


def _alpha(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise HarnessError(f"{where}: the controlled draft's acceptance rate alpha must be a number in [0, 1], "
                           f"got {value!r}")
    return float(value)


def _list(value, where: str) -> list:
    if value is None or isinstance(value, (str, int, float, bool)) or not hasattr(value, "__iter__"):
        raise HarnessError(f"{where} must be a list, got {value!r}")
    return list(value)


def check_controlled_draft(cfg: DictConfig):
    """The draft's alpha (None without a controlled draft); a controlled draft must be encoder-decoder (its
    positions are decoder positions)."""
    if is_none_node(cfg.get("draft")) or cfg.draft.get("alpha") is None:
        return None
    alpha = _alpha(cfg.draft.alpha, "draft.alpha")
    if cfg.draft.get("arch", "encoder_decoder") != "encoder_decoder":
        raise HarnessError(f"draft.alpha: a controlled draft must be an encoder-decoder model, draft "
                           f"{node_name(cfg.draft)!r} is {cfg.draft.get('arch')}")
    return alpha


AXES = ("num_draft_tokens", "alphas", "schedule")      # sweep.per_method keys that are lists (axes of the cells)


def _per_method(sweep, controlled) -> dict:
    per = sweep.get("per_method")
    per = OmegaConf.to_container(per, resolve=True) if per is not None else {}
    if not isinstance(per, dict):
        raise HarnessError(f"sweep.per_method must map method names to {{num_draft_tokens, alphas}}, got {per!r}")
    for name, own in per.items():
        where = f"sweep.per_method.{name}"
        if not isinstance(own, dict) or set(own) - set(AXES) - set(OPTION_DEFAULTS):
            raise HarnessError(f"{where} may set {', '.join(AXES)} (lists) and the method options "
                               f"{', '.join(OPTION_DEFAULTS)} (values), got {own!r}")
        if own.get("alphas") is not None and controlled is None:
            raise HarnessError(f"{where}.alphas needs a controlled draft (a draft node with alpha, e.g. "
                               "draft=controlled)")
        for key, value in own.items():
            if key in AXES:
                _list(value, f"{where}.{key}")
    return per


def method_options(cfg: DictConfig, name: str) -> dict:
    """The generate() options (methods.OPTION_DEFAULTS) set for method `name` in this run: the `method` node's when it
    is that method (method=stairs_tree method.num_branches=2), then sweep.per_method.<name>'s; unset ones are left
    out (the method's defaults apply)."""
    given = {}
    if cfg.get("method") is not None and cfg.method.get("name") == name:
        given.update({o: cfg.method.get(o) for o in OPTION_DEFAULTS if cfg.method.get(o) is not None})
    sweep = cfg.get("sweep")
    own = sweep.get("per_method", {}).get(name) if sweep and sweep.get("per_method") else None
    if own is not None:
        given.update({o: own.get(o) for o in OPTION_DEFAULTS if own.get(o) is not None})
    return given


def cell_options(cfg: DictConfig, cell: Cell) -> dict:
    """The options a cell's generate() call gets: the method's (`method_options`), schedule="confidence"'s threshold
    only in its confidence cells."""
    given = method_options(cfg, cell.method)
    if cell.schedule != "confidence":
        given.pop("confidence_threshold", None)
    return given


def check_options(cfg: DictConfig, cells: list[Cell]) -> None:
    """Every option set for a method is one it reads, with a valid value, and applies to some cell of it."""
    from .generation import validate_options

    for name in dict.fromkeys(c.method for c in cells):
        given = method_options(cfg, name)
        schedules = {c.schedule for c in cells if c.method == name}
        if "confidence_threshold" in given and "confidence" not in schedules:
            raise HarnessError(f"{name}: confidence_threshold={given['confidence_threshold']!r} applies to "
                               "schedule=confidence only, and no cell of it runs that schedule")
        for schedule in schedules:
            validate_options(METHODS[name], schedule, **cell_options(cfg, Cell(name, schedule=schedule)))


def _axes(cfg: DictConfig) -> tuple[list, list, list, str, dict, str]:
    """methods, ks, alphas, schedule, per-method overrides, and where they came from (for messages)."""
    schedule = cfg.method.get("schedule", "constant") or "constant"
    controlled = check_controlled_draft(cfg)
    sweep = cfg.get("sweep")
    if not sweep:
        return ([cfg.method.name], [cfg.method.get("num_draft_tokens")], [controlled], schedule, {}, "method")
    ks, alphas = sweep.get("num_draft_tokens"), sweep.get("alphas")
    if alphas is not None and controlled is None:
        raise HarnessError("sweep.alphas needs a controlled draft (a draft node with alpha, e.g. draft=controlled)")
    per = _per_method(sweep, controlled)
    methods = _list(sweep.get("methods"), "sweep.methods") if sweep.get("methods") is not None else [cfg.method.name]
    for name in per:
        if name not in METHODS:
            raise HarnessError(f"sweep.per_method.{name}: unknown method {name!r}; valid methods: "
                               f"{', '.join(METHODS)}")
    per = {name: own for name, own in per.items() if name in methods}   # a method left out: its entry has no cell
    return (methods, _list(ks, "sweep.num_draft_tokens") if ks is not None else [cfg.method.get("num_draft_tokens")],
            _list(alphas, "sweep.alphas") if alphas is not None else [controlled],
            sweep.get("schedule", schedule) or schedule, per, "sweep")


def plan_cells(cfg: DictConfig) -> list[Cell]:
    """The cells of one run: greedy first (the reference), then each method at each k and α (k = 0 for methods
    without k; α only for speculative methods with a controlled draft). `sweep.per_method.<name>` may give a
    method its own `num_draft_tokens` / `alphas`."""
    methods, ks, alphas, schedule, per, where = _axes(cfg)
    schedules = [schedule] if isinstance(schedule, str) else _list(schedule, f"{where}.schedule")
    for schedule in schedules:
        if schedule not in SCHEDULES:
            raise HarnessError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
    for m in list(methods) + list(per):
        if m not in METHODS:
            raise HarnessError(f"unknown method {m!r}; valid methods: {', '.join(METHODS)}")
    cells = [Cell("greedy")]
    batch_sizes = check_batch_sizes(cfg, methods)
    for name in methods:
        m = METHODS[name]
        own = per.get(name, {})
        m_ks = [_int(k, f"{where}: num_draft_tokens (k)", minimum=1) for k in own.get("num_draft_tokens", ks)] \
            if m.uses_k else [0]
        m_alphas = [None if a is None else _alpha(a, where) for a in own.get("alphas", alphas)] \
            if m.speculative and m.needs_draft else [None]        # α is the draft's: not an axis of lookup
        if schedules[0] not in m.schedules and where == "method":
            raise HarnessError(f"method {name!r} does not support schedule={schedules[0]!r} (it supports: "
                               f"{', '.join(m.schedules)})")
        for sched in own.get("schedule", schedules):   # applied where supported; the record says which one ran
            for a in m_alphas:
                for k in m_ks:
                    cell = Cell(name, k, a, sched if sched in m.schedules else "constant")
                    if cell not in cells:
                        cells.append(cell)
    temperatures = check_decoding(cfg, methods)
    check_options(cfg, cells)
    return [replace(c, batch_size=b, temperature=t) for t in temperatures for b in batch_sizes for c in cells]


def check_batch_sizes(cfg: DictConfig, methods: list[str]) -> list[int]:
    """task.batch_size: examples per generate() call, one size or a list (a sweep axis: every cell at each size).
    A method that takes one prompt per call, or a controlled draft (one reference per call), needs size 1."""
    value = cfg.task.get("batch_size", 1)
    value = 1 if value is None else value
    sizes = [value] if isinstance(value, int) and not isinstance(value, bool) else _list(value, "task.batch_size")
    sizes = [_int(b, "task.batch_size", minimum=1, hint=" (or a list of them)") for b in sizes]
    if len(set(sizes)) != len(sizes):
        raise HarnessError(f"task.batch_size lists a size twice: {sizes}")
    if max(sizes) > 1:
        single = [m for m in methods if m in METHODS and not METHODS[m].batch]
        if single:
            raise HarnessError(f"task.batch_size={max(sizes)}: {', '.join(single)} take(s) one prompt per call; "
                               "leave them out of sweep.methods or use task.batch_size=1")
        if check_controlled_draft(cfg) is not None:
            raise HarnessError(f"task.batch_size={max(sizes)}: a controlled draft (draft.alpha) follows one "
                               "reference per call; use task.batch_size=1")
    return sizes


def check_decoding(cfg: DictConfig, methods: list[str]) -> list[float]:
    """The `decoding` group: greedy (do_sample false: temperature 0), or sampling at decoding.temperature, one
    value or a list (a sweep axis: every cell at each; 0 in the list = greedy), with its top_k/top_p for all."""
    dec = cfg.get("decoding") or {}
    do_sample, value = dec.get("do_sample", False), dec.get("temperature")
    if do_sample not in (True, False):
        raise HarnessError(f"decoding.do_sample must be true or false, got {do_sample!r}")
    extra = {k: dec.get(k) for k in ("top_k", "top_p") if dec.get(k) is not None}
    if not do_sample:
        if extra or value not in (None, 0, 0.0):
            given = {**({"temperature": value} if value not in (None, 0, 0.0) else {}), **extra}
            raise HarnessError(f"decoding: {', '.join(f'{k}={v!r}' for k, v in given.items())} only applies to "
                               "sampling; set decoding.do_sample=true (or decoding=sample)")
        return [0.0]
    scalar = value is None or isinstance(value, (str, int, float, bool))
    temps = [1.0 if value is None else value] if scalar else _list(value, "decoding.temperature")
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
            raise HarnessError(f"decoding.temperature must be numbers >= 0 (0 = greedy), got {t!r}")
    if len(set(temps)) != len(temps):
        raise HarnessError(f"decoding.temperature lists a value twice: {list(temps)}")
    if "top_k" in extra:
        _int(extra["top_k"], "decoding.top_k", minimum=0)
    if "top_p" in extra and (isinstance(extra["top_p"], bool) or not isinstance(extra["top_p"], (int, float))
                             or not 0 < extra["top_p"] <= 1):
        raise HarnessError(f"decoding.top_p must be in (0, 1], got {extra['top_p']!r}")
    greedy_only = [m for m in methods if m in METHODS and not METHODS[m].sampling]
    if greedy_only and any(temps):
        raise HarnessError(f"decoding.do_sample=true: {', '.join(greedy_only)} decode(s) greedily only; leave them "
                           "out of sweep.methods")
    if any(temps) and check_controlled_draft(cfg) is not None:
        raise HarnessError("decoding.do_sample=true: a controlled draft (draft.alpha) follows the greedy output; "
                           "use a real draft")
    return [float(t) for t in temps]


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
        if (va is missing and (vb is None or vb is False)) or (vb is missing and (va is None or va is False)):
            continue                 # a key added to the config later, null or false (off) by default: not a change
        if va != vb:
            show = lambda v: "unset" if v is missing else repr(v)  # noqa: E731
            out.append(f"{key} ({show(va)} -> {show(vb)})")
    return out


def check_resume(cfg: DictConfig, run_dir: Path) -> None:
    """A results.jsonl in `run_dir` may only be continued (resume=true) by the configuration that made it; a resumed
    directory's config.yaml is compared even before its first record."""
    results_path, saved_path = run_dir / RESULTS_FILE, run_dir / CONFIG_FILE
    recorded = has_results(results_path)
    again = f"python scripts/run.py resume={run_dir}"
    if recorded and not cfg.get("resume", False):
        raise HarnessError(f"{results_path} already exists; continue it with {again} (or resume=true), or choose "
                           "another hydra.run.dir")
    if not cfg.get("resume", False) or not (recorded or saved_path.exists()):
        return
    root = _config.repo_root()
    current = portable(OmegaConf.to_container(cfg, resolve=True), root)
    if saved_path.exists():
        saved = portable(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False), root)
        diff = config_differences(saved, current)
        if diff:
            more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
            raise HarnessError(f"resume: {run_dir} was made by another configuration: {'; '.join(diff[:4])}{more}; "
                               f"continue it with its own settings ({again}), or choose another hydra.run.dir")
        return
    names = (node_label(cfg.model), node_label(cfg.draft), str(cfg.task.name))
    for line in results_path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if (r.get("model"), r.get("draft"), r.get("task")) not in (names, (node_name(cfg.model),
                                                                            node_name(cfg.draft), names[2])):
            raise HarnessError(f"{results_path} holds results of model={r.get('model')} draft={r.get('draft')} "
                               f"task={r.get('task')}, not of this configuration; choose another hydra.run.dir")
        break


def check_outputs(run_dir: Path) -> None:
    """What would otherwise fail only after the last example: the run directory is writable, and the summary,
    table and summary.csv can be made (rehearsed on made-up records)."""
    from .summary import format_table, summary_rows

    probe = run_dir / ".write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise HarnessError(f"run directory {run_dir} is not writable: {e.strerror or e}") from None
    fake = [Record(example_id=str(i), method=m, k=k, seconds=1.0 + i, new_tokens=3, tokens=[1, 2, 3],
                   target_calls=2, target_seconds=0.5, draft_calls=2 if k else 0, draft_seconds=0.1,
                   accepted=[1] if k else [], rejections=1 if k else 0, output="a b c", reference="a b d",
                   matches_greedy=True) for i in range(2) for m, k in (("greedy", 0), ("stairs_cached", 2))]
    probe = run_dir / ".summary-test.csv"
    try:
        __import__("tqdm")   # the progress bar
        rows = summary_rows(fake, cost_ratio_c=0.5)
        format_table(rows)
        write_summary(probe, rows)
    except ImportError as e:
        raise HarnessError(f"{e.name or e} is not installed, but the run's summary needs it; "
                           "pip install -e . installs every dependency") from None
    finally:
        probe.unlink(missing_ok=True)


def check_architecture_task(cfg: DictConfig) -> None:
    """An architecture-only model (random weights, no tokenizer) runs token-id prompts only: a text task is refused
    with the command that times that architecture."""
    node = cfg.model
    if not node.get("architecture") or node.get("tokenizer"):
        return
    if "random_token_examples" in str(cfg.task.loader.get("_target_")):
        return
    name = node_name(node)
    experiment = f"paper_scale_{name.removesuffix('_arch')}"
    known = (Path(_config.conf_dir()) / "experiment" / f"{experiment}.yaml").is_file()
    command = f"experiment={experiment}" if known else f"experiment=paper_scale_t5_large model={name}"
    raise HarnessError(f"model={name} is the {node.architecture} architecture with random weights and no tokenizer: "
                       f"it cannot run the text task {cfg.task.name!r}. Time it with its random prompts and a draft "
                       f"of set acceptance: python scripts/run.py {command}")


# The CPU features (as /proc/cpuinfo names them) that run a dtype's matrix multiplies in hardware.
CPU_UNITS = {"bfloat16": ("amx_bf16", "avx512_bf16"), "float16": ("amx_fp16", "avx512_fp16")}


def check_dtype_hardware(cfg: DictConfig) -> None:
    """bfloat16/float16 on a CPU without matrix units for it is emulated: slower than float32, so its timings say
    nothing about that dtype's hardware. Refused (unless allow_emulated_dtype=true), naming what runs instead."""
    from .models import resolve_device, resolve_dtype
    from .run_files import cpu_flags

    if cfg.get("allow_emulated_dtype"):
        return
    for role in ("model", "draft"):
        node = cfg.get(role)
        if node is None or is_none_node(node):
            continue
        dtype = str(resolve_dtype(node.get("dtype") or cfg.dtype)).removeprefix("torch.")
        device = node.get("device") or cfg.device
        if dtype not in CPU_UNITS or resolve_device(device).type != "cpu":
            continue
        units = CPU_UNITS[dtype]
        if not set(units) & set(cpu_flags()):
            raise HarnessError(f"dtype={dtype} on this CPU: it has no {dtype} matrix units ({' or '.join(units)}), "
                               f"so torch emulates {dtype}, slower than float32, and the timings would not show "
                               "what the dtype costs on hardware built for it. Run the same command with "
                               "dtype=float32 here, or run it on a CPU with those units or on a GPU "
                               "(allow_emulated_dtype=true runs it anyway)")


REPORTS = ("per_task",)      # figure families a run's config may name (report.run_kind); null: from its cells


def check_report(cfg: DictConfig) -> None:
    report = cfg.get("report")
    if report is not None and report not in REPORTS:
        raise HarnessError(f"report={report!r}: unknown report; valid: null (from the run's cells), "
                           f"{', '.join(REPORTS)}")


def plan(cfg: DictConfig, run_dir: Path) -> list[Cell]:
    """Every cheap check, in the order a user would want to hear about them; returns the run's cells."""
    cells = plan_cells(cfg)
    check_report(cfg)
    has_draft = not is_none_node(cfg.get("draft"))
    needing = sorted({c.method for c in cells if METHODS[c.method].needs_draft})
    if needing and not has_draft:
        raise HarnessError(f"method(s) {', '.join(needing)} need a draft model, but draft=none; "
                           "choose one, e.g. draft=tiny_draft")
    check_counts(cfg)
    check_dtype_hardware(cfg)
    check_architecture_task(cfg)
    check_pair_config(cfg.model, cfg.draft if has_draft else None)
    check_available(cfg.model)
    check_available(cfg.draft if has_draft else None)
    check_resume(cfg, run_dir)
    check_outputs(run_dir)
    return cells
