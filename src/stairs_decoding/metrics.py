"""Quality and speed-up metrics: sacrebleu BLEU/chrF, the acceptance rate α (defined here only), the Leviathan bound.

The cost ratio c is measured, not derived: `timing.measure_cost_ratio`."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults); 100.0 when every hypothesis equals its reference exactly."""
    if not hypotheses:
        return math.nan
    if list(hypotheses) == list(references):
        return 100.0
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    if not hypotheses:
        return math.nan
    if list(hypotheses) == list(references):
        return 100.0
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def acceptance_rate(accepted: Iterable[int], rejections: int) -> float:
    """Per-token acceptance α = accepted / (accepted + rejected rounds), pooled; NaN without any round."""
    acc = sum(accepted)
    total = acc + rejections
    return acc / total if total else math.nan


def speedup_bound(alpha: float, c: float, k: int, v: float = 1.0) -> float:
    """Expected speed-up of k-token speculation over greedy (Leviathan et al., 2023):
    (1 − α^(k+1)) / ((1 − α)(k·c + v)); the α → 1 limit is (k+1)/(k·c+v). `v`: the cost of verifying k+1 tokens in
    one target call, in one-token steps (v(k+1), measured by timing.measure_cost_ratio); 1 is the classic bound."""
    if alpha is None or c is None or k is None or v is None or math.isnan(alpha) or math.isnan(c) or math.isnan(v) \
            or k < 1:
        return math.nan
    if alpha >= 1.0:
        return (k + 1) / (k * c + v)
    return (1 - alpha ** (k + 1)) / ((1 - alpha) * (k * c + v))
