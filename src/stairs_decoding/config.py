"""Hydra glue: where the repository (and its conf/, data/, models/) is, and the resolvers configs use."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def repo_root() -> str:
    """$STAIRS_ROOT if set, else the checkout this package lives in (editable install), else the cwd."""
    env = os.environ.get("STAIRS_ROOT")
    if env:
        return str(Path(env).resolve())
    for parent in Path(__file__).resolve().parents:
        if (parent / "conf" / "config.yaml").is_file() and (parent / "src" / "stairs_decoding").is_dir():
            return str(parent)
    return os.getcwd()


def conf_dir() -> str:
    return str(Path(repo_root()) / "conf")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", repo_root)


register_resolvers()


# -- before Hydra: the command line checked and (for resume=<run dir>) completed -------------------------------------
_EXPERT_FLAGS = ("-h", "--help", "--hydra-help", "--info", "-i", "-cn", "--config-name", "-cp", "--config-path",
                 "-cd", "--config-dir", "--shell-completion", "-sc", "--version", "--experimental-rerun")
_EXPERT_PREFIXES = ("--config-name=", "--config-path=", "--config-dir=", "--info=")   # another config: Hydra checks
_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p")      # Hydra flags followed by a value
RESUME_DROPS = ("resume", "hydra.run.dir", "hydra.output_subdir")   # saved overrides that a resume replaces
RESUME_SUBDIR = ".hydra/resumed"   # where a resumed session's Hydra files go: .hydra/ keeps the run's own command


def _fail(message: str):
    from .errors import HarnessError

    raise HarnessError(message)


def _groups() -> dict[str, list[str]]:
    """The config groups of conf/ (hydra/ aside) and their options."""
    root = Path(conf_dir())
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(root.iterdir())
            if d.is_dir() and d.name != "hydra"}


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def _is_dir_value(value: str) -> bool:
    return value.strip().lower() not in ("true", "false", "yes", "no", "1", "0", "null", "")


def expand_resume(args: list[str]) -> list[str]:
    """`resume=<run dir>` → that run's own overrides (its .hydra/overrides.yaml), then this command line's others,
    then `resume=true hydra.run.dir=<run dir>`: the run continues with the configuration that made it. A resumed
    session's Hydra files go to RESUME_SUBDIR, so that .hydra/overrides.yaml stays the run's own command."""
    given = [a for a in args if _key(a) == "resume" and "=" in a and _is_dir_value(a.split("=", 1)[1])]
    if not given:
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser()
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    if not run_dir.is_dir():
        _fail(f"resume={run_dir}: no such run directory")
    if not saved_file.is_file():
        _fail(f"resume={run_dir}: not a run directory of scripts/run.py (it has no .hydra/overrides.yaml); "
              "continue a run with resume=true hydra.run.dir=<dir> and the run's own settings")
    from omegaconf import OmegaConf

    saved = [str(a) for a in OmegaConf.load(saved_file)]
    overrides, flags = split_args(args)
    mine = [a for a in overrides if _key(a) != "resume"]
    keys = {_key(a) for a in mine} | set(RESUME_DROPS)
    return [a for a in saved if _key(a) not in keys] + mine + ["resume=true", f"hydra.run.dir={run_dir}",
                                                               f"hydra.output_subdir={RESUME_SUBDIR}"] + flags


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(overrides, Hydra's flags with their values)."""
    overrides, flags, it = [], [], iter(args)
    for a in it:
        if a.startswith("-"):
            flags.append(a)
            if a in _VALUE_FLAGS:
                value = next(it, None)
                flags.extend([value] if value is not None else [])
        else:
            overrides.append(a)
    return overrides, flags


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as e:
        _fail(f"cannot read the command line: {str(e).splitlines()[0]}")


def _values(o) -> list[str]:
    return [str(v) for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.get_value_element_as_str()]


def check_group_options(parsed, multirun: bool) -> None:
    """Every `group=option` names an option that exists (listing the valid ones); a sweep needs -m."""
    groups = _groups()
    for o in parsed:
        if o.is_sweep_override() and not multirun:
            _fail(f"{o.input_line} is a sweep (several values): add -m to run each, or give one value "
                  f"(a list is written [a,b])")
        if o.key_or_group in groups and not o.is_delete():
            for value in _values(o):
                if value not in groups[o.key_or_group] and value != "null":
                    _fail(f"unknown {o.key_or_group} {value!r}; valid options: "
                          f"{', '.join(groups[o.key_or_group])}")


def _first_values(parsed) -> list[str]:
    out = []
    for o in parsed:
        if o.key_or_group.startswith("hydra"):
            continue
        out.append(f"{o.get_key_element()}={_values(o)[0]}" if o.is_sweep_override() else o.input_line)
    return out


def _compose(overrides: list[str]):
    """The configuration these overrides compose to (Hydra's own composition); its errors as one line."""
    import re

    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except HydraException as e:
        unknown = re.match(r"Could not override '([^']+)'", str(e))
        if unknown:
            _fail(_unknown_key(unknown.group(1), [o for o in overrides if _key(o) != unknown.group(1)]))
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        _fail(" ".join(lines[:2]) if lines else type(e).__name__)
    except Exception as e:  # noqa: BLE001 — omegaconf's errors for a bad key or value
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


def _unknown_key(key: str, others: list[str]) -> str:
    """"unknown key a.b" with the nearest keys that exist (the configuration without it)."""
    import difflib

    from omegaconf import OmegaConf

    try:
        cfg = _compose(others)
    except Exception:  # noqa: BLE001 — another bad override: name this one alone
        return f"unknown key {key}; add it with +{key}=... only if you mean a new key"
    keys, stack = [], [("", OmegaConf.to_container(cfg, resolve=False))]
    while stack:
        prefix, node = stack.pop()
        for k, v in node.items():
            keys.append(prefix + str(k))
            if isinstance(v, dict):
                stack.append((f"{prefix}{k}.", v))
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    return f"unknown key {key}" + (f"; did you mean {' or '.join(near)}?" if near else
                                   "; python scripts/run.py --cfg job lists the keys")


def check_method_vs_sweep(cfg, parsed) -> None:
    """`method=<m>` / `method.num_draft_tokens=` / `method.schedule=` are not silently ignored by a run whose
    cells come from `sweep` (an experiment, or a hub T5 target's paper setting)."""
    sweep = cfg.get("sweep")
    if not sweep:
        return
    for o in parsed:
        key = o.key_or_group
        if key == "method" and sweep.get("methods") is not None and cfg.method.name not in sweep.methods:
            _fail(f"{o.input_line}: this run's cells come from sweep.methods={list(sweep.methods)}; choose its "
                  f"methods with sweep.methods=[greedy,{cfg.method.name}], or add sweep=null to run method= alone")
        if key in ("method.num_draft_tokens", "method.schedule") and sweep.get(key.split(".")[1]) is not None:
            _fail(f"{o.input_line}: this run's cells come from sweep.{key.split('.')[1]}; set that instead, or add "
                  "sweep=null to run the method group alone")


def check_run_dir(path: str) -> None:
    """The run directory can be made and written, checked before Hydra makes it."""
    import tempfile

    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        _fail(f"run directory {p} exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        _fail(f"run directory {p} cannot be made: {parent} is a file")
    try:
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as e:
        _fail(f"run directory {p} is not writable: {e.strerror or e}")


def preflight(args: list[str]) -> list[str]:
    """The command line of scripts/run.py, checked before Hydra runs (one `error:` line instead of Hydra's report):
    group options, keys and values compose, a sweep has -m, method= is not shadowed by a sweep, the run directory
    can be written. Returns it with `resume=<run dir>` expanded (expand_resume)."""
    if any(a in _EXPERT_FLAGS or a.startswith(_EXPERT_PREFIXES) for a in args):
        return args
    args = expand_resume(args)
    overrides, flags = split_args(args)
    multirun = any(a in ("-m", "--multirun") for a in flags)
    parsed = _parse(overrides)
    check_group_options(parsed, multirun)
    cfg = _compose(_first_values(parsed))
    check_method_vs_sweep(cfg, parsed)
    if any(a in _VALUE_FLAGS for a in flags):           # --cfg job: shows the configuration, runs nothing
        return args
    run_dir = ([o.get_value_element_as_str() for o in parsed
                if o.key_or_group == ("hydra.sweep.dir" if multirun else "hydra.run.dir")] or [None])[-1]
    if run_dir is None or "${" not in run_dir:
        check_run_dir(run_dir or os.getcwd())
    return args
