"""Hugging Face assisted generation as a user gets it: `target.generate(assistant_model=draft)` with k set where
transformers 5.x reads it (the assistant's `generation_config.num_assistant_tokens`) and nothing else changed: its
default confidence stop (`assistant_confidence_threshold` 0.4, adapted during a call when scikit-learn is
installed), no decoder mask for encoder-decoder drafts (so a T5 draft is re-fed its whole decoder prefix each
round, see hf_assisted.py). The baseline users compare with; hf_assisted is the same loop set up as our methods."""
from __future__ import annotations

from ..stats import DecodingStats
from ..timing import Clock
from .hf_assisted import assisted_run


def generate_run(target, draft, input_ids, attention_mask, *, k: int, max_new_tokens: int, schedule: str, settings,
                 stats: DecodingStats, clock: Clock, streamer=None, **_) -> list[list[int]]:
    return assisted_run(target, draft, input_ids, attention_mask, k=k, max_new_tokens=max_new_tokens,
                        settings=settings, stats=stats, clock=clock, defaults=True, streamer=streamer)
