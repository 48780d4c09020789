"""transformers' own greedy loop, `target.generate(do_sample=False)`, with the same resolved generation settings:
the reference for our greedy loop's overhead (it returns the same tokens; only the loop around the model differs)."""
from __future__ import annotations

from ..stats import DecodingStats
from ..timing import Clock
from .hf_assisted import EndAtEos, _config_for_hf, _Meter, _quiet_internal_deprecation, cut_after_eos, prompt_length


def generate_run(target, draft, input_ids, attention_mask, *, k: int, max_new_tokens: int, schedule: str, settings,
                 stats: DecodingStats, clock: Clock, streamer=None, **_) -> list[list[int]]:
    config = _config_for_hf(settings, target, max_new_tokens)
    meters = [_Meter(target, clock)]
    if target.config.is_encoder_decoder:
        meters.append(_Meter(target.get_encoder(), clock))
    try:
        with _quiet_internal_deprecation():     # Whisper's generate() passes its suppress tokens beside a config
            out = target.generate(input_ids, attention_mask=attention_mask, generation_config=config,
                                  streamer=EndAtEos.wrap(streamer, settings.eos_ids)).sequences
    finally:
        for m in meters:
            m.remove()
    prefix = prompt_length(settings, target, input_ids)
    rows = [cut_after_eos(row, settings.eos_ids) for row in out[:, prefix:].tolist()]
    stats.new_tokens = sum(len(r) for r in rows)
    stats.target_calls = meters[0].calls
    stats.target_seconds = sum(m.seconds for m in meters)
    return rows
