"""Run-directory files: append-only results.jsonl (resumable), summary.csv, env.json, config.yaml.

results.jsonl holds one `records.Record` per (example, method, k, requested α) cell, written and fsync'ed as soon as
it exists, so a crash, Ctrl-C or a tracker outage loses nothing already written. Methods without k use k = 0.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

from .summary_columns import COLUMNS as SUMMARY_COLUMN_MEANINGS

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.csv"
ENV_FILE = "env.json"
CONFIG_FILE = "config.yaml"
COST_FILE = "cost_ratio.json"

# summary.csv's columns in the order it writes them (each one's meaning: summary_columns.COLUMNS,
# docs/summary_columns.md); a row's other keys, if any, follow them.
SUMMARY_COLUMNS = list(SUMMARY_COLUMN_MEANINGS)


def cell_key(record: dict) -> tuple:
    """(example, method, k, requested α, batch size, schedule, temperature): what makes a line of results.jsonl
    unique (and resumable)."""
    return (str(record["example_id"]), record["method"], int(record["k"] or 0), record.get("alpha_requested"),
            int(record.get("batch_size") or 1), record.get("schedule") or "constant",
            float(record.get("temperature") or 0.0))


def read_records(path: str | os.PathLike):
    """The results file as `records.Record`s (older schema versions included)."""
    from .records import Record

    return [Record.from_dict(d) for d in read_results(path)]


def compressed(path: str | os.PathLike) -> Path:
    """Where a results file is kept gzip-compressed (a committed run: `gzip results.jsonl`); read as the file itself
    while the plain file is absent, and turned back into it when the run is continued."""
    return Path(f"{path}.gz")


def has_results(path: str | os.PathLike) -> bool:
    """A non-empty results file, plain or compressed."""
    return any(p.exists() and p.stat().st_size > 0 for p in (Path(path), compressed(path)))


def read_results(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """All complete lines of a results file (or of its compressed copy, `compressed`, when only that exists). A
    truncated last line (killed mid-write) is ignored, and with `repair=True` cut off so that later appends start on
    a fresh line. Unparseable middle lines are skipped with a warning."""
    import gzip

    path = Path(path)
    if not path.exists():
        return _parse_results(gzip.decompress(compressed(path).read_bytes()), path) \
            if compressed(path).exists() else []
    return _parse_results(path.read_bytes(), path, repair=repair)


def _parse_results(data: bytes, path: Path, *, repair: bool = False) -> list[dict]:
    """`read_results` on the content `data` of the file at `path`."""
    records = []
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}: skipping unreadable line {i + 1}")
    if tail.strip():
        try:
            records.append(json.loads(tail))   # complete object, only the newline missing
            if repair:
                with open(path, "ab") as f:
                    f.write(b"\n")
        except json.JSONDecodeError:
            if repair:
                with open(path, "r+b") as f:
                    f.truncate(len(data) - len(tail))
    return records


class ResultsWriter:
    """Append-only JSONL writer: one line per call, flushed and fsync'ed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        packed = compressed(self.path)
        if packed.exists() and not self.path.exists():      # continuing a compressed run: the plain file again
            import gzip

            self.path.write_bytes(gzip.decompress(packed.read_bytes()))
            packed.unlink()
        self.existing = read_results(self.path, repair=True)
        self.done = {cell_key(r) for r in self.existing}
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record) -> None:
        """Append one record (a `records.Record` or its dict)."""
        record = record.to_dict() if hasattr(record, "to_dict") else record
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(cell_key(record))

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_json(path: str | os.PathLike, obj: dict) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_summary(path: str | os.PathLike, rows: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in SUMMARY_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[SUMMARY_COLUMNS + [c for c in df.columns if c not in SUMMARY_COLUMNS]]
    tmp = Path(str(path) + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def git_sha(repo: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's matrix and vector features that decide what a small matrix multiply costs (AMX, AVX-512 BF16/FP16,
    AVX-512, AVX2), as /proc/cpuinfo names them."""
    wanted = ("amx_bf16", "amx_tile", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_fp16", "avx512f", "avx2")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def kernels(device) -> dict:
    """What torch reports of the kernels a matrix multiply runs on: CPU capability and flags, MKL and oneDNN, the
    BLAS it was built with; on CUDA the device's compute capability."""
    import torch

    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_flags": cpu_flags(),
           "mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available(),
           "blas": (re.findall(r"BLAS_INFO=([\w-]+)", torch.__config__.show()) or [None])[0]}
    dev = torch.device(device)
    if dev.type == "cuda":
        out["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
    return out


def environment(*, device, dtype: str, seed: int, repo: str | os.PathLike | None = None) -> dict:
    import torch
    import transformers

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_model()
    return {
        "git_sha": git_sha(repo),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": str(dev),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "dtype": dtype,
        "seed": seed,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "kernels": kernels(dev),
    }
