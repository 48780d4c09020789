"""Quality and speed-up metrics: sacrebleu BLEU/chrF, acceptance rate α, cost ratio c, the Leviathan bound."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import sacrebleu


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults); 100.0 when every hypothesis equals its reference exactly."""
    if not hypotheses:
        return math.nan
    if list(hypotheses) == list(references):
        return 100.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    if not hypotheses:
        return math.nan
    if list(hypotheses) == list(references):
        return 100.0
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def acceptance_rate(accepted: Iterable[int], rejections: int) -> float:
    """Per-token acceptance α = accepted / (accepted + rejected rounds), pooled; NaN without any round."""
    acc = sum(accepted)
    total = acc + rejections
    return acc / total if total else math.nan


def cost_ratio_from_stats(draft_seconds: float, draft_calls: int, target_seconds: float,
                          target_calls: int) -> float:
    """c estimated from decoding stats: seconds per draft call / seconds per target call."""
    if not draft_calls or not target_calls or target_seconds <= 0:
        return math.nan
    return (draft_seconds / draft_calls) / (target_seconds / target_calls)


def speedup_bound(alpha: float, c: float, k: int) -> float:
    """Expected speed-up of k-token speculation over greedy (Leviathan et al., 2023):
    (1 − α^(k+1)) / ((1 − α)(k·c + 1)); the α → 1 limit is (k+1)/(k·c+1)."""
    if alpha is None or c is None or k is None or math.isnan(alpha) or math.isnan(c) or k < 1:
        return math.nan
    if alpha >= 1.0:
        return (k + 1) / (k * c + 1)
    return (1 - alpha ** (k + 1)) / ((1 - alpha) * (k * c + 1))
