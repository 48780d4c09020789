"""The percentile bootstrap behind every speed-up interval (summary.py): examples resampled with replacement,
the method and its greedy reference together (paired), a fixed seed so a summary is reproducible."""
from __future__ import annotations

import math

RESAMPLES = 2000
SEED = 0
_NAN2 = (math.nan, math.nan)


def _percentiles(values, q=(2.5, 97.5)) -> tuple[float, float]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return tuple(float(x) for x in np.percentile(v, q)) if v.size else _NAN2


def paired_ratio_ci(reference, method, *, accepted=None, rejections=None, bound=None, c=math.nan,
                    c_ci=_NAN2, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """95 % intervals over examples of Σreference / Σmethod ("ratio"), of the pooled acceptance
    Σaccepted / (Σaccepted + Σrejections) ("alpha") and of `bound(alpha, c)` ("bound": the lower end at c's upper
    end and the upper end at c's lower end, so the interval covers both uncertainties; c's point value where its
    interval is unknown). Fewer than 2 examples: NaN intervals."""
    import numpy as np

    out = {"ratio": _NAN2, "alpha": _NAN2, "bound": _NAN2}
    n = len(method)
    if n < 2:
        return out
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ref, met = np.asarray(reference, dtype=float)[idx].sum(1), np.asarray(method, dtype=float)[idx].sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = _percentiles(ref / met)
        if accepted is not None:
            acc = np.asarray(accepted, dtype=float)[idx].sum(1)
            rej = np.asarray(rejections, dtype=float)[idx].sum(1)
            alphas = acc / (acc + rej)
            out["alpha"] = _percentiles(alphas)
            if bound is not None:
                c_lo, c_hi = (c if math.isnan(x) else x for x in c_ci)
                out["bound"] = (_percentiles([bound(a, c_hi) for a in alphas])[0],
                                _percentiles([bound(a, c_lo) for a in alphas])[1])
    return out
