"""Honest timing: device sync around timed calls, warm-up, interleaved cell order, summary statistics."""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from .compat import output_cache, with_cache


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        torch.cuda.synchronize(dev)


class Clock:
    """The one timing primitive: perf_counter read after waiting for queued GPU work on every device given (the
    target's and the draft's, which may differ; no device: the current CUDA device), so that a difference of two
    readings is the real time of what ran between them."""

    def __init__(self, *devices: torch.device | str | None):
        devs = [torch.device(d) for d in devices if d is not None]
        cuda = list(dict.fromkeys(d for d in devs if d.type == "cuda")) if devs else [None]
        if not torch.cuda.is_available() or not cuda:
            self._sync = None
        elif len(cuda) == 1:
            self._sync = lambda: torch.cuda.synchronize(cuda[0])
        else:
            self._sync = lambda: [torch.cuda.synchronize(d) for d in cuda]

    def __call__(self) -> float:
        if self._sync is not None:
            self._sync()
        return time.perf_counter()


def model_devices(model) -> list[torch.device]:
    """Every device holding a parameter of `model` (several with a device_map); [] for None."""
    if model is None:
        return []
    return list(dict.fromkeys(p.device for p in model.parameters())) or [model.device]


def timed(fn: Callable, device=None):
    """Run `fn()` between two synchronisations; returns (result, seconds)."""
    clock = Clock(device)
    t0 = clock()
    out = fn()
    return out, clock() - t0


def interleaved_order(cells: Sequence, example_index: int, *, rotate: bool = True, pinned: int = 0) -> list:
    """The order in which to run `cells` on one example.

    The first `pinned` cells always run first (the greedy reference); the rest are rotated by one position per
    example so that no method always runs right after another, and machine drift hits all methods alike.
    """
    head, rest = list(cells[:pinned]), list(cells[pinned:])
    if rotate and rest:
        shift = example_index % len(rest)
        rest = rest[shift:] + rest[:shift]
    return head + rest


# Student-t 97.5 % quantiles for 1..30 degrees of freedom (to 9 decimals); beyond 30 the Cornish-Fisher
# expansion below is within 3e-8 of the exact value. No scipy: this is all the package needs of it.
_T975 = (12.706204736, 4.30265273, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252, 2.306004135,
         2.262157163, 2.228138852, 2.20098516, 2.17881283, 2.160368656, 2.144786688, 2.131449546, 2.119905299,
         2.109815578, 2.10092204, 2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.06865761, 2.063898562,
         2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided 95 % interval)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054    # Abramowitz & Stegun 26.7.5
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def summarize(seconds: Sequence[float]) -> dict:
    """n, median, mean and a 95 % t-interval of the mean."""
    xs = [float(s) for s in seconds]
    n = len(xs)
    if n == 0:
        return {"n": 0, "median_s": math.nan, "mean_s": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}
    mean = statistics.fmean(xs)
    half = t975(n - 1) * statistics.stdev(xs) / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "median_s": statistics.median(xs), "mean_s": mean, "ci95_low": mean - half,
            "ci95_high": mean + half}


# -- direct cost-ratio measurement -------------------------------------------------------------------------
@torch.inference_mode()
def decoder_step_seconds(model, input_ids: torch.Tensor, *, context: int = 32, steps: int = 16,
                         repeats: int = 3, lean: bool = False, tokens: int = 1) -> float:
    """Median time of one decoder forward of `tokens` new tokens (1: a single-token step; m: the cached
    verification of m tokens) with a KV cache of about `context` tokens.

    Encoder (T5) or prompt (decoder-only) is run once outside the timed region; the cache is cropped back to
    `context` tokens after every step so every timed step sees the same length. `lean`: the step is
    methods/_lean.py's (a T5-family draft as our methods run it with draft_forward="lean").
    """
    device = model.device
    input_ids = input_ids.to(device)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    filler = torch.randint(2, vocab, (1, context), generator=gen).to(device)
    if model.config.is_encoder_decoder:
        enc = model.get_encoder()(input_ids=input_ids)
        base = dict(encoder_outputs=enc)
        out = model(decoder_input_ids=filler, use_cache=True, **base)

        if lean:
            from .methods._lean import LeanT5Step

            lean_step = LeanT5Step(model)

            def step(tok, cache):
                return lean_step(tok, cache, enc.last_hidden_state, None, None)
        else:
            def step(tok, cache):
                return model(decoder_input_ids=tok, use_cache=True, **with_cache(model, cache), **base)
    else:
        out = model(input_ids=torch.cat([input_ids, filler], 1), use_cache=True)

        def step(tok, cache):
            return model(input_ids=tok, use_cache=True, **with_cache(model, cache))
    cache = output_cache(out)
    length = cache.get_seq_length()
    tok = filler[:, -tokens:]
    times = []
    clock = Clock(*model_devices(model))
    for _ in range(repeats):
        for _ in range(steps):
            t0 = clock()
            step(tok, cache)
            times.append(clock() - t0)
            cache.crop(length - cache.get_seq_length())   # negative = positions to drop
    return statistics.median(times[min(4, len(times) - 1):])   # the first steps of a burst run cold


def measure_cost_ratio(target, draft, input_ids: torch.Tensor, *, context: int = 32, steps: int = 24,
                       rounds: int = 5, verify_tokens: int = 1) -> dict:
    """c = (draft decoder step time) / (target decoder step time), both with a KV cache and the models' own forward.
    Where the draft can run methods/_lean.py's step, that step is timed too, in the same rounds: `cost_ratio_c_lean`
    (and `draft_step_s_lean`, `cost_ratio_ci95_lean`), the c of cells whose records say draft_forward=lean.

    The two models alternate in `rounds` short bursts (so machine drift affects both alike); each round gives one
    ratio of the two bursts' median step times. c is the median of those ratios; `cost_ratio_ci95` is the 95 %
    t-interval of their geometric mean (computed on log ratios, so it stays positive; NaN with a single round).

    `verify_tokens` M > 1: in the same rounds, the target's cached forward of m = 2..M tokens as well, and
    `verify_cost` = v(m) = (its time) / (the one-token step's), per m with the same kind of interval: what verifying
    k+1 tokens costs on this hardware, dtype and kernel library, in one-token steps (verify_cost_curve)."""
    from .methods._lean import unsupported

    lean = unsupported(draft) is None
    t_target, t_draft, t_lean = [], [], []
    t_verify = {m: [] for m in range(2, int(verify_tokens) + 1)}
    for _ in range(rounds):
        t_target.append(decoder_step_seconds(target, input_ids, context=context, steps=steps, repeats=1))
        t_draft.append(decoder_step_seconds(draft, input_ids, context=context, steps=steps, repeats=1))
        if lean:
            t_lean.append(decoder_step_seconds(draft, input_ids, context=context, steps=steps, repeats=1, lean=True))
        for m, times in t_verify.items():
            times.append(decoder_step_seconds(target, input_ids, context=context, steps=steps, repeats=1, tokens=m))

    def ratio(times: list[float], suffix: str = "") -> dict:
        ratios = [d / t for d, t in zip(times, t_target) if t > 0]
        s = summarize([math.log(r) for r in ratios if r > 0])
        return {f"draft_step_s{suffix}": statistics.median(times),
                f"cost_ratio_c{suffix}": statistics.median(ratios) if ratios else math.nan,
                f"cost_ratio_ci95{suffix}": [math.exp(s["ci95_low"]), math.exp(s["ci95_high"])],
                f"cost_ratio_rounds{suffix}": ratios}

    return {"target_step_s": statistics.median(t_target), **ratio(t_draft), **(ratio(t_lean, "_lean") if lean else {}),
            **({"verify_cost": verify_cost_curve(t_target, t_verify)} if t_verify else {}),
            "context": context, "steps": steps, "rounds": rounds}


def verify_cost_curve(t_one: list[float], t_verify: dict[int, list[float]]) -> dict:
    """v(m) per m (1 included, = 1): the median over rounds of (m-token forward time / one-token step time) of the
    same round, with the 95 % t-interval of their geometric mean, and the median seconds of each."""
    curve = {"m": [1], "v": [1.0], "ci95_low": [1.0], "ci95_high": [1.0], "step_s": [statistics.median(t_one)]}
    for key, values in ratio_curve(t_one, t_verify).items():
        curve[key].extend(values)
    return curve


def ratio_curve(t_one: list[float], times: dict[int, list[float]]) -> dict:
    """For each m of `times` (its per-round seconds), in order: the median over rounds of (its time / `t_one` of
    the same round), the 95 % t-interval of their geometric mean, and its median seconds."""
    curve = {"m": [], "v": [], "ci95_low": [], "ci95_high": [], "step_s": []}
    for m, ts in sorted(times.items()):
        ratios = [t / one for t, one in zip(ts, t_one) if one > 0 and t > 0]
        s = summarize([math.log(r) for r in ratios])
        curve["m"].append(m)
        curve["v"].append(statistics.median(ratios) if ratios else math.nan)
        curve["ci95_low"].append(math.exp(s["ci95_low"]))
        curve["ci95_high"].append(math.exp(s["ci95_high"]))
        curve["step_s"].append(statistics.median(ts))
    return curve
