"""What verifying m tokens costs under each float32 kernel path this machine offers (issue 30, point 4).

The target's cached forward of m tokens (the verification of k = m − 1 drafts) is timed against its one-token step,
as `timing.measure_cost_ratio` does for v(m), but under several ways of running the same forward:

- `default`: transformers' forward as loaded (MKL's sgemm for `nn.Linear`, torch's SDPA choice for attention);
- `sdpa_math`: the same forward with torch's math SDPA backend (`torch.nn.attention.sdpa_kernel`) instead of the
  CPU's fused (flash) kernel;
- `onednn_linear`: every float32 `F.linear` through oneDNN (`mkldnn_linear`, the weight converted once);
- `split<s>`: the m tokens fed through the cache in consecutive calls of at most s tokens (each call's rows stay on
  the kernel's cheap small-M path; the calls add up).

Each path's m-token time is divided by the *default* one-token step of the same round (greedy runs that step), so a
path that also speeds up the one-token step is not credited here for that; `own_step` gives its one-token step
relative to the default one. Exactness: for each path and m, the largest |Δ logit| between its m-token forward and
m default one-token steps over the same cache, and whether every argmax agrees. No path here is used by the
methods: this is the measurement that would justify adopting one (scripts/verify_kernels.py).
"""
from __future__ import annotations

import contextlib
import statistics
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .compat import output_cache, with_cache
from .timing import Clock, model_devices, ratio_curve

PATHS = ("default", "sdpa_math", "onednn_linear", "split2", "split3")


@contextlib.contextmanager
def onednn_linear() -> Iterator[None]:
    """`F.linear` on float32 CPU tensors through oneDNN for the duration (nn.Linear calls F.linear); weights are
    converted to oneDNN's layout once and kept while the context lasts."""
    original = F.linear
    converted: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def linear(x, weight, bias=None):
        if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
            return original(x, weight, bias)
        key = id(weight)
        if key not in converted:
            converted[key] = (weight, weight.contiguous().to_mkldnn())
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch._C._nn.mkldnn_linear(flat.to_mkldnn(), converted[key][1], bias).to_dense()
        return out.reshape(*x.shape[:-1], weight.shape[0])

    F.linear = linear
    try:
        yield
    finally:
        F.linear = original


def path_context(path: str):
    """The context a path's forward runs in (the split paths run the default kernels)."""
    if path == "sdpa_math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    if path == "onednn_linear":
        return onednn_linear()
    return contextlib.nullcontext()


def _chunk(path: str) -> int | None:
    return int(path[len("split"):]) if path.startswith("split") else None


class CachedForward:
    """A model's decoder over a fixed context of `context` random tokens per row (batch `batch`), cropped back to it
    after every forward, so that every timed call sees the same cache length."""

    def __init__(self, model, batch: int, context: int, source_len: int = 48):
        self.model = model
        gen = torch.Generator().manual_seed(0)
        vocab = model.config.vocab_size
        device = model.device
        self.filler = torch.randint(2, vocab, (batch, context + 16), generator=gen).to(device)
        source = torch.randint(2, vocab, (batch, source_len), generator=gen).to(device)
        if model.config.is_encoder_decoder:
            self.base = {"encoder_outputs": model.get_encoder()(input_ids=source)}
            out = model(decoder_input_ids=self.filler[:, :context], use_cache=True, **self.base)
            self.key = "decoder_input_ids"
        else:
            self.base = {}
            out = model(input_ids=torch.cat([source, self.filler[:, :context]], 1), use_cache=True)
            self.key = "input_ids"
        self.cache = output_cache(out)
        self.length = self.cache.get_seq_length()
        self.context = context

    def tokens(self, m: int) -> torch.Tensor:
        return self.filler[:, self.context:self.context + m]

    def forward(self, tokens: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Logits of `tokens` [B, m] fed after the context (in calls of ≤ `chunk` tokens), then the crop."""
        parts = [tokens] if chunk is None else list(tokens.split(chunk, dim=1))
        logits = []
        for part in parts:
            out = self.model(**{self.key: part}, use_cache=True, **with_cache(self.model, self.cache), **self.base)
            logits.append(out.logits)
        self.cache.crop(self.length - self.cache.get_seq_length())    # negative = positions to drop
        return torch.cat(logits, dim=1)


def _burst(run: Callable[[], object], clock: Clock, steps: int) -> float:
    times = []
    for _ in range(steps):
        t0 = clock()
        run()
        times.append(clock() - t0)
    return statistics.median(times[min(3, len(times) - 1):])     # the first calls of a burst run cold


@torch.inference_mode()
def measure_paths(model, *, batch: int = 1, max_tokens: int = 9, paths=PATHS, context: int = 32, steps: int = 12,
                  rounds: int = 5) -> dict:
    """Per path: v(m) for m = 1..max_tokens against the default one-token step of the same round (median over
    `rounds` interleaved rounds, 95 % interval as in timing.verify_cost_curve), and its exactness against m
    default one-token steps. Returns {"default_step_s", "paths": {path: {"m", "v", "ci95_low", "ci95_high",
    "step_s", "own_step", "max_abs_dlogit", "max_rel_dlogit", "argmax_agrees"}}}."""
    fwd = CachedForward(model, batch, context)
    clock = Clock(*model_devices(model))
    ms = list(range(1, max_tokens + 1))
    one = fwd.tokens(1)
    t_one: list[float] = []
    t_path = {p: {m: [] for m in ms} for p in paths}
    for _ in range(rounds):
        t_one.append(_burst(lambda: fwd.forward(one), clock, steps))
        for p in paths:
            with path_context(p):
                for m in ms:
                    tok = fwd.tokens(m)
                    t_path[p][m].append(_burst(lambda: fwd.forward(tok, _chunk(p)), clock, steps))
    out = {"default_step_s": statistics.median(t_one), "batch": batch, "context": context, "steps": steps,
           "rounds": rounds, "paths": {}}
    for p in paths:
        curve = ratio_curve(t_one, t_path[p])
        curve["own_step"] = curve["v"][0]
        curve.update(_exactness(fwd, p, ms))
        out["paths"][p] = curve
    return out


def _exactness(fwd: CachedForward, path: str, ms: list[int]) -> dict:
    """Largest |Δ logit| of the path's m-token forward against m default one-token steps (the m-th step fed after
    the first m − 1 tokens), the same relative to the largest |logit|, and whether every position's argmax agrees."""
    top = fwd.tokens(max(ms))
    reference = []
    for i in range(top.shape[1]):          # the default one-token steps, growing the cache one token at a time
        out = fwd.model(**{fwd.key: top[:, i:i + 1]}, use_cache=True, **with_cache(fwd.model, fwd.cache),
                        **fwd.base)
        reference.append(out.logits)
    fwd.cache.crop(fwd.length - fwd.cache.get_seq_length())
    reference = torch.cat(reference, dim=1).float()
    scale = float(reference.abs().max())
    dmax, agrees = [], []
    with path_context(path):
        for m in ms:
            got = fwd.forward(top[:, :m], _chunk(path)).float()
            dmax.append(float((got - reference[:, :m]).abs().max()))
            agrees.append(bool((got.argmax(-1) == reference[:, :m].argmax(-1)).all()))
    return {"max_abs_dlogit": dmax, "max_rel_dlogit": [d / scale for d in dmax], "argmax_agrees": agrees}


# -- the command (scripts/verify_kernels.py) -----------------------------------------------------------------------
def load_target(name: str):
    """'tiny' (the shipped target), a T5 architecture name (random weights, paper_scale.build_architecture) or a
    local checkpoint directory."""
    from pathlib import Path

    from .errors import HarnessError
    from .paper_scale import T5_ARCHITECTURES, build_architecture, canonical_name

    root = Path(__file__).resolve().parents[2]
    label = "models/tiny-t5/target (shipped tiny target, 8+8 layers, d 192)" if name == "tiny" else name
    if name == "tiny":
        name = str(root / "models" / "tiny-t5" / "target")
    if Path(name).is_dir():
        from .models import load_pretrained

        return load_pretrained(name, dtype="float32", device="cpu"), label
    try:
        key = canonical_name(name)
    except Exception:  # noqa: BLE001 — an unknown name is the user's error, said once
        raise HarnessError(f"--model {name!r}: not 'tiny', a local checkpoint directory, or a T5 architecture "
                           f"({', '.join(k for k in T5_ARCHITECTURES if not k.startswith('tiny-test'))})") from None
    return build_architecture(key, seed=0, dtype="float32", device="cpu"), f"{key} (architecture, random weights)"


def table(cells: list[dict]) -> str:
    """Markdown: per model and batch, each path's v(m) [95 % CI] and whether its argmax always agreed."""
    lines = []
    for cell in cells:
        ms = cell["paths"]["default"]["m"]
        lines += [f"### {cell['model']}, batch {cell['batch']} (one-token step {cell['default_step_s'] * 1e3:.2f} ms)",
                  "", "| path | " + " | ".join(f"m={m}" for m in ms) + " | max abs dlogit | argmax agrees |",
                  "|---|" + "---|" * (len(ms) + 2)]
        for path, c in cell["paths"].items():
            vs = " | ".join(f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(c["v"], c["ci95_low"], c["ci95_high"]))
            agrees = "yes" if all(c["argmax_agrees"]) else "no"
            lines.append(f"| {path} | {vs} | {max(c['max_abs_dlogit']):.1e} | {agrees} |")
        lines.append("")
    return "\n".join(lines)


def plot(cells: list[dict], env: dict, path) -> None:
    """v(m) per path with 95 % CI error bars, one panel per (model, batch), captioned with the machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), squeeze=False, sharey=True)
    for ax, cell in zip(axes[0], cells):
        for name, c in cell["paths"].items():
            lo = [v - x for v, x in zip(c["v"], c["ci95_low"])]
            hi = [x - v for v, x in zip(c["v"], c["ci95_high"])]
            ax.errorbar(c["m"], c["v"], yerr=[lo, hi], marker="o", ms=3, capsize=2, label=name)
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_title(f"{cell['model']}\nbatch {cell['batch']}", fontsize=8)
        ax.set_xlabel("m tokens in one cached forward")
    axes[0][0].set_ylabel("time / default one-token step")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"float32 verification paths — {env['cpu_model']}, {env['torch_threads']} threads, torch "
                 f"{env['torch']}, transformers {env['transformers']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    from .errors import HarnessError
    from .run_files import environment

    p = argparse.ArgumentParser(description="Time the target's cached m-token forward (verification) against its "
                                "one-token step under each float32 kernel path, with exactness (issue 30).")
    p.add_argument("--model", nargs="+", default=["tiny"], help="'tiny', a T5 architecture (t5-large, ...) or a "
                   "local checkpoint directory")
    p.add_argument("--batch", nargs="+", type=int, default=[1])
    p.add_argument("--max-tokens", type=int, default=9)
    p.add_argument("--paths", nargs="+", default=list(PATHS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="directory for verify_kernels.json, .md and .png")
    a = p.parse_args(argv)
    bad = [x for x in a.paths if x not in PATHS and not (x.startswith("split") and x[5:].isdigit() and int(x[5:]) > 0)]
    if bad or a.max_tokens < 1 or min(a.batch) < 1 or a.rounds < 2 or a.steps < 4:
        raise HarnessError(f"--paths must be among {', '.join(PATHS)} or split<n>; --max-tokens, --batch ≥ 1; "
                           "--rounds ≥ 2; --steps ≥ 4" + (f" (unknown path {bad[0]!r})" if bad else ""))
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(device="cpu", dtype="float32", seed=0)
    cells: list[dict] = []
    for name in a.model:
        model, label = load_target(name)
        for batch in a.batch:
            print(f"{label}, batch {batch}: {len(a.paths)} paths × m = 1..{a.max_tokens} ...", flush=True)
            cell = measure_paths(model, batch=batch, max_tokens=a.max_tokens, paths=a.paths, rounds=a.rounds,
                                 steps=a.steps)
            cells.append({"model": label, **cell})
            (out / "verify_kernels.json").write_text(json.dumps({"env": env, "cells": cells}, indent=1))
            (out / "verify_kernels.md").write_text(table(cells))
        del model
    plot(cells, env, out / "verify_kernels.png")
    print(table(cells))
    return 0
