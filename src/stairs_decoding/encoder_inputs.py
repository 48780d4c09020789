"""Encoder inputs that are not token ids (speech features, images), and Whisper's decoder prompt.

A model's encoder input is the tensor its `main_input_name` names: `input_ids` for text models, `input_features` for
Whisper and Speech2Text, `pixel_values` for vision encoder-decoders. `generate()` takes it as `model.generate` does:
as the first positional input, or by that keyword. Every method then runs the model's encoder on it once and decodes
as usual; only `lookup` (and stairs_tree's lookup branches) changes: with no source tokens to search, it looks up the
output so far alone (`stats.lookup_source`).

Whisper's own `generate()` decodes short-form audio (at most one 30-second window) greedily from a decoder prompt of
start, language, task and no-timestamps tokens, with its suppress-token processors starting after that prompt.
`whisper_prompt` builds that prompt with Whisper's own code (language detection included, which runs the target once
more, as transformers does); the modes we do not reproduce are refused by name (`WHISPER_REFUSED`).
"""
from __future__ import annotations

import torch

from .errors import GenerationInputError, SettingError

# Whisper generate()'s arguments we honour: they choose the decoder prompt.
WHISPER_ARGS = ("language", "task", "is_multilingual")
# Whisper generate()'s arguments (and generation-config fields) for modes we do not reproduce, with the values that
# mean "off".
WHISPER_REFUSED = {
    "return_timestamps": (None, False), "return_token_timestamps": (None, False), "prompt_ids": (None,),
    "prompt_condition_type": (None,), "condition_on_prev_tokens": (None, False),
    "compression_ratio_threshold": (None,), "logprob_threshold": (None,), "no_speech_threshold": (None,),
    "num_segment_frames": (None,), "return_segments": (None, False), "monitor_progress": (None,),
    "force_unique_generate_call": (None, False, True), "time_precision": (None, 0.02),
    "time_precision_features": (None, 0.01),
}
_WHISPER_SAMPLING = "Whisper's generate() samples only through its temperature fallback"


def is_whisper(model) -> bool:
    return hasattr(model, "_retrieve_init_tokens") and hasattr(model, "detect_language")


def input_name(model) -> str:
    """The keyword of `model`'s encoder input (its `main_input_name`)."""
    return getattr(model, "main_input_name", "input_ids") or "input_ids"


def take(target, inputs, kwargs: dict) -> tuple[torch.Tensor | None, dict]:
    """The encoder input (given positionally or by the target's own keyword, which is popped from `kwargs`) and the
    model-specific arguments taken out of `kwargs` (Whisper's language/task; its unsupported modes refused)."""
    name = input_name(target)
    if name != "input_ids" and name in kwargs:
        given = kwargs.pop(name)
        if inputs is not None:
            raise GenerationInputError(f"the encoder input was given twice: positionally and as {name}=")
        inputs = given
    args = {}
    if is_whisper(target):
        args = {n: kwargs.pop(n) for n in WHISPER_ARGS if n in kwargs}
        for n, off in WHISPER_REFUSED.items():
            value = kwargs.pop(n, None)
            if not _is_off(value, off):
                raise SettingError(f"{n}={value!r}: Whisper's {n} mode is not reproduced by speculative decoding "
                                   "(short-form greedy transcription only); unset it")
        sampling = [n for n in ("do_sample", "temperature") if kwargs.get(n) not in (None, False, 0, 0.0)]
        if sampling:
            raise SettingError(f"{sampling[0]}={kwargs[sampling[0]]!r}: {_WHISPER_SAMPLING}, which is not "
                               "reproduced; Whisper decodes greedily here")
    return inputs, args


def _is_off(value, off: tuple) -> bool:
    if value is None:
        return True
    if torch.is_tensor(value) or callable(value):
        return False
    return any(type(value) is type(o) and value == o for o in off if o is not None)


def check(target, inputs, attention_mask) -> None:
    """A non-token encoder input: a floating tensor with a batch dimension; the mask, if any, one row per input."""
    name = input_name(target)
    if not target.config.is_encoder_decoder:
        raise GenerationInputError(f"{name}: only encoder-decoder models take a non-token encoder input")
    if not torch.is_tensor(inputs) or not inputs.is_floating_point() or inputs.dim() < 3:
        shape = tuple(inputs.shape) if torch.is_tensor(inputs) else type(inputs).__name__
        raise GenerationInputError(f"{name} must be a floating-point tensor [batch, ...] of 3 or more dimensions, "
                                   f"got {shape}")
    if inputs.shape[0] == 0:
        raise GenerationInputError(f"empty batch: {name} has shape {tuple(inputs.shape)}")
    if attention_mask is not None and attention_mask.shape[0] != inputs.shape[0]:
        raise GenerationInputError(f"attention_mask has {attention_mask.shape[0]} rows but {name} has "
                                   f"{inputs.shape[0]}")


def whisper_prompt(model, features: torch.Tensor, config, args: dict, max_new_tokens: int) -> torch.Tensor:
    """Whisper's decoder prompt [B, P] for short-form greedy transcription, as its generate() builds it (its own
    `_set_language_and_task` and `_retrieve_init_tokens`); `config` (the resolved generation config) is updated as
    Whisper updates it (language, task, return_timestamps=False; the consumed forced_decoder_ids cleared)."""
    for name, off in WHISPER_REFUSED.items():
        value = getattr(config, name, None)
        if not _is_off(value, off):
            raise SettingError(f"{name}={value!r} is set in the generation config: Whisper's {name} mode is not "
                               "reproduced by speculative decoding; unset it")
    encoder = model.get_encoder()
    stride = encoder.conv1.stride[0] * encoder.conv2.stride[0]
    segment = stride * model.config.max_source_positions
    if features.shape[-1] > segment:
        raise SettingError(f"input_features has {features.shape[-1]} frames, more than one {segment}-frame window: "
                           "Whisper's long-form transcription (timestamps, segments) is not reproduced")
    try:
        model._set_language_and_task(language=args.get("language"), task=args.get("task"),
                                     is_multilingual=args.get("is_multilingual"), generation_config=config)
        config.return_timestamps = False
        with torch.inference_mode():
            prompt = model._retrieve_init_tokens(features, batch_size=features.shape[0], generation_config=config,
                                                 config=model.config, num_segment_frames=segment, kwargs={})
    except (ValueError, TypeError) as e:
        raise SettingError(f"Whisper: {str(e).splitlines()[0]}") from None
    config.forced_decoder_ids = None
    limit = model.config.max_target_positions
    if max_new_tokens + prompt.shape[1] > limit:
        raise SettingError(f"max_new_tokens={max_new_tokens} + the {prompt.shape[1]}-token decoder prompt exceeds "
                           f"Whisper's {limit} decoder positions")
    return prompt.clone()
