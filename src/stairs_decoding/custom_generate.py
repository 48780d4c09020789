"""Our methods behind transformers' own `model.generate(custom_generate=...)` (issue 33).

transformers 5.x loads a decoding method from a folder (or a Hub repo) holding `custom_generate/generate.py`:
`target.generate(**inputs, assistant_model=draft, custom_generate=<folder>, trust_remote_code=True,
num_assistant_tokens=k, max_new_tokens=n)` calls that file's `generate(model=target, **every generate argument)`.
`export(out_dir)` (scripts/export_custom_generate.py) writes one such folder per exported method; each folder's
generate.py is two lines that call `run` below, so the folders never hold a copy of the engine.

`run` maps model.generate's arguments onto our `generate()` and returns what model.generate returns: the sequences
tensor (an encoder-decoder's decoder start, or the prompt exactly as passed, then the new tokens, finished rows padded
with the pad id), or with return_dict_in_generate=True a GenerateEncoderDecoderOutput / GenerateDecoderOnlyOutput
holding those sequences. The settings are merged as model.generate merges them (transformers' own
`_prepare_generation_config`, then the call's arguments) and read from the result: lengths, EOS and pad ids,
do_sample, beams (refused by name). k is num_assistant_tokens (lookup: prompt_lookup_num_tokens too) and its
schedule num_assistant_tokens_schedule; a decoder-only prompt without a mask gets the mask model.generate infers
from the pad id. What model.generate accepts and we cannot honour (logits_processor, stopping_criteria, scores and
attentions in the output, right-padded decoder-only prompts, model inputs such as decoder_input_ids, ...) is refused
by name before any model runs.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .errors import GenerationInputError, StairsError
from .methods import METHODS, OPTION_DEFAULTS
from .settings import _eos

# model.generate's own arguments that only its loop can honour: refused unless left at "nothing".
_LOOP_ONLY = ("logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "negative_prompt_ids",
              "negative_prompt_attention_mask", "synced_gpus")
_OUTPUT_FLAGS = ("output_scores", "output_logits", "output_attentions", "output_hidden_states")
# Our schedules for transformers' num_assistant_tokens_schedule values (ours start every call at k: "transient").
_SCHEDULES = {"constant": "constant", "heuristic": "heuristic", "heuristic_transient": "heuristic"}


def exported() -> list[str]:
    """The methods shipped as custom_generate folders: our own exact speculative methods (transformers' own
    assisted generation is what `model.generate(assistant_model=...)` already is)."""
    return [m.name for m in METHODS.values() if m.speculative and m.exact and not m.caller_mask]


def _fail(msg: str):
    raise GenerationInputError(f"custom_generate: {msg}")


def _given(name: str, kwargs: dict, generation_config, model):
    """A setting as the caller or a config set it: the call's, else the given config's, else the model's (None)."""
    for source in (kwargs.get(name), getattr(generation_config, name, None),
                   getattr(model.generation_config, name, None)):
        if source is not None:
            return source
    return None


def _config(model, generation_config, kwargs: dict):
    """The generation config model.generate decodes with: the given one (or a blank one) over the model's and
    transformers' defaults (its own `_prepare_generation_config`), then the call's generation settings; returns it
    with the call's arguments that are not settings."""
    gc, _ = model._prepare_generation_config(copy.deepcopy(generation_config))
    rest = gc.update(**kwargs)
    return gc, rest


def _max_new_tokens(model, gc, default_length: bool, used: int) -> int:
    """max_new_tokens as model.generate derives it (_prepare_generated_length): max_new_tokens wherever it was set;
    else an explicit max_length (counted with the prompt, or with the decoder start); else transformers' default of
    20 new tokens, within the model's position table."""
    if gc.max_new_tokens is not None:
        return gc.max_new_tokens
    if default_length:
        limit = getattr(model.config, "max_position_embeddings", None)
        return 20 if limit is None else max(1, min(20, limit - used))
    if gc.max_length - used < 1:
        _fail(f"max_length={gc.max_length!r} leaves no room for a new token after {used} input position(s); "
              "pass max_new_tokens")
    return gc.max_length - used


def _draft_arguments(method: str, assistant_model, k, schedule, ngram) -> dict:
    """draft, k and schedule from model.generate's assisted-generation arguments."""
    spec = METHODS[method]
    if spec.needs_draft and assistant_model is None:
        _fail(f"{method!r} needs a draft model: pass assistant_model=")
    if not spec.needs_draft and assistant_model is not None:
        _fail(f"{method!r} uses no draft model: leave assistant_model out")
    if schedule not in _SCHEDULES:
        _fail(f"num_assistant_tokens_schedule={schedule!r}: use one of {', '.join(map(repr, _SCHEDULES))}")
    out = dict(draft=assistant_model, num_draft_tokens=4 if k is None else k, schedule=_SCHEDULES[schedule])
    if ngram is not None:
        if "max_ngram" not in spec.options:
            _fail(f"max_matching_ngram_size does not apply to {method!r}")
        out["max_ngram"] = ngram
    return out


def _refuse_loop_only(kwargs: dict) -> None:
    """Refuse what only transformers' loop honours, named as the caller passed it."""
    for name in _LOOP_ONLY:
        value = kwargs.pop(name, None)
        if value is not None and value is not False and not (isinstance(value, (list, tuple)) and not value):
            _fail(f"{name} is not supported (our methods run their own loop); leave it out")
    if kwargs.pop("use_cache", None) is False:
        _fail("use_cache=False is not supported: our methods decode through KV caches (the output is the same)")
    kwargs.pop("tokenizer", None)          # model.generate reads it for stop_strings only, which are refused


def _decoding_kwargs(gc, rest: dict, method: str) -> dict:
    """What our generate() takes beyond the config: sampling on or off, beam/contrastive arguments (refused there
    unless "one sequence"), the method's own options; anything else is refused by name."""
    options = {name: rest.pop(name) for name in OPTION_DEFAULTS if name in rest}
    for name in _OUTPUT_FLAGS:
        if getattr(gc, name, False):
            _fail(f"{name}=True is not supported: the output holds the sequences only")
    if rest:
        _fail(f"{', '.join(sorted(rest))}: not supported (arguments of {method!r}: model.generate's generation "
              f"settings, assistant_model, num_assistant_tokens, and {', '.join(METHODS[method].options) or 'no'} "
              "method options)")
    start = gc.decoder_start_token_id
    if isinstance(start, (list, tuple)) or (torch.is_tensor(start) and start.numel() > 1):
        _fail("a decoder_start_token_id per row is not supported; give one id")
    return dict(do_sample=bool(gc.do_sample), num_beams=gc.num_beams, num_return_sequences=gc.num_return_sequences,
                penalty_alpha=gc.penalty_alpha, **options)


def _check_left_padded(mask: torch.Tensor) -> None:
    width = mask.shape[1]
    left = torch.arange(width, device=mask.device).unsqueeze(0) >= (width - mask.sum(1, keepdim=True))
    if not bool((mask.bool() == left).all()):
        _fail("decoder-only prompts must be left-padded (model.generate would generate after right padding); "
              "tokenize with padding_side='left'")


def run(method: str, model, inputs=None, generation_config=None, assistant_model=None, streamer=None, **kwargs):
    """`model.generate(**kwargs, custom_generate=<method's folder>)`: see the module docstring."""
    from transformers.generation import GenerateDecoderOnlyOutput, GenerateEncoderDecoderOutput

    from . import encoder_inputs
    from .generation import generate

    kwargs = dict(kwargs)
    name = encoder_inputs.input_name(model)
    input_ids = kwargs.pop(name, None) if inputs is None else inputs
    if input_ids is None or not torch.is_tensor(input_ids):
        _fail(f"pass the model's input as the first argument or {name}= (a tensor [batch, ...])")
    if encoder_inputs.is_whisper(model):
        _fail("Whisper's own generate() builds its prompt and calls generate() again per segment: call "
              "stairs_decoding.generate(model, input_features, ...) instead")
    _refuse_loop_only(kwargs)
    default_length = _given("max_length", kwargs, generation_config, model) is None
    k = _given("num_assistant_tokens", kwargs, generation_config, model)
    if kwargs.get("prompt_lookup_num_tokens") is not None:
        if METHODS[method].needs_draft:
            _fail(f"prompt_lookup_num_tokens applies to lookup only; {method!r} takes num_assistant_tokens")
        k = kwargs["prompt_lookup_num_tokens"] if k is None else k
    schedule = _given("num_assistant_tokens_schedule", kwargs, generation_config, model) or "constant"
    ngram = kwargs.pop("max_matching_ngram_size", None)
    for name in ("num_assistant_tokens", "num_assistant_tokens_schedule", "prompt_lookup_num_tokens"):
        kwargs.pop(name, None)
    mask = kwargs.pop("attention_mask", None)
    gc, rest = _config(model, generation_config, kwargs)
    enc_dec = bool(model.config.is_encoder_decoder)
    eos = _eos(gc.eos_token_id)
    pad = int(gc.pad_token_id) if gc.pad_token_id is not None else (eos[0] if eos else None)
    if mask is None and not enc_dec:          # model.generate infers a mask for decoder-only prompts only
        mask = _infer_mask(input_ids, pad, eos)
    if mask is not None and not enc_dec:
        _check_left_padded(mask)
    max_new = _max_new_tokens(model, gc, default_length, 1 if enc_dec else input_ids.shape[1])
    result = generate(model, input_ids, attention_mask=mask, method=method, max_new_tokens=max_new,
                      generation_config=gc, streamer=streamer, **_decoding_kwargs(gc, rest, method),
                      **_draft_arguments(method, assistant_model, k, schedule, ngram))
    return _output(model, gc, input_ids, result.tokens, pad, enc_dec,
                   GenerateEncoderDecoderOutput if enc_dec else GenerateDecoderOnlyOutput)


def _infer_mask(input_ids: torch.Tensor, pad: int | None, eos: list[int]) -> torch.Tensor | None:
    """model.generate's attention mask when none is given: from the pad id when the prompt holds it and the pad id
    is not an EOS id, else none (all ones)."""
    if pad is None or pad in eos or not bool((input_ids == pad).any()):
        return None
    return input_ids.ne(pad).long()


def _output(model, gc, input_ids, tokens, pad, enc_dec, output_class):
    """model.generate's return value: decoder start (or the prompt as passed), then each row's new tokens, finished
    rows padded with the pad id; the output class when return_dict_in_generate."""
    if enc_dec:
        start = gc.decoder_start_token_id if gc.decoder_start_token_id is not None else gc.bos_token_id
        if start is None:
            _fail("the model's generation config has no decoder_start_token_id or bos_token_id")
        head = torch.full((input_ids.shape[0], 1), int(start), dtype=torch.long, device=input_ids.device)
    else:
        head = input_ids
    width = max(len(t) for t in tokens)
    new = torch.full((len(tokens), width), pad if pad is not None else 0, dtype=torch.long)
    for b, row in enumerate(tokens):
        new[b, :len(row)] = torch.tensor(row, dtype=torch.long)
    sequences = torch.cat([head, new.to(head.device)], dim=1)
    return output_class(sequences=sequences) if gc.return_dict_in_generate else sequences


# -- the folders ------------------------------------------------------------------------------------------------
GENERATE_PY = '''"""{summary}

stairs_decoding's `{method}` as a transformers custom_generate method. Generated by
scripts/export_custom_generate.py from stairs-decoding {version}; do not edit (re-export instead).
"""
from stairs_decoding.custom_generate import run


def generate(model, **kwargs):
    return run({method!r}, model, **kwargs)
'''

README = '''---
library_name: transformers
tags:
  - custom_generate
---

# stairs_decoding: `{method}`

{summary}

Output is exactly what `model.generate(do_sample=False)` returns for the same arguments{sampling}.

## Base model

Any {models} model that stairs-decoding's `generate()` accepts (T5, BART, Llama, GPT-2, ... families;
see the project's architecture matrix).

## Model compatibility

- {draft_line}
- Batches of any size; `streamer=` at batch size 1.

## Additional arguments

- `num_assistant_tokens` (k, default the generation config's, else 4){lookup_args}
- `num_assistant_tokens_schedule`: {schedules}.
- Method options of stairs-decoding's `generate()`: {options}.
- Everything else as `model.generate`: `max_new_tokens`/`max_length`, `eos_token_id`, `pad_token_id`, the
  generation settings that change greedy output, `return_dict_in_generate` (the output then holds `sequences` only).
- Refused by name, before any model runs: `logits_processor`, `stopping_criteria`, `prefix_allowed_tokens_fn`,
  `output_scores`/`output_logits`/`output_attentions`/`output_hidden_states`, `use_cache=False`, beam search,
  right-padded decoder-only prompts, model inputs such as `decoder_input_ids`.

## Output type changes

None: a `torch.LongTensor` of sequences, or a `GenerateEncoderDecoderOutput` / `GenerateDecoderOnlyOutput` whose
`sequences` is that tensor (scores, attentions and `past_key_values` are not returned).

## Example usage

This folder runs stairs-decoding's engine: install it first (`pip install -e .` in a clone of the repository).
`custom_generate=` takes this folder's path, or the Hub repository it was pushed to.

```python
out = target.generate(**inputs, {call}custom_generate="{folder}", trust_remote_code=True,
                      num_assistant_tokens=4, max_new_tokens=64)
```
'''


def export(out_dir: str | Path, version: str | None = None) -> list[Path]:
    """Write one custom_generate folder per exported method under `out_dir` (out_dir/<method>/README.md,
    custom_generate/generate.py, custom_generate/requirements.txt); returns the folders."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        version = version or installed("stairs-decoding")
    except PackageNotFoundError:
        raise StairsError("stairs-decoding is not installed here: pip install -e . first (the folders run it)") \
            from None
    folders = []
    for name in exported():
        spec = METHODS[name]
        folder = Path(out_dir) / name
        (folder / "custom_generate").mkdir(parents=True, exist_ok=True)
        (folder / "custom_generate" / "generate.py").write_text(
            GENERATE_PY.format(summary=spec.summary, method=name, version=version))
        (folder / "custom_generate" / "requirements.txt").write_text(
            f"stairs-decoding>={version}\ntransformers>=5.23\ntorch\n")
        (folder / "README.md").write_text(README.format(
            method=name, summary=spec.summary,
            sampling=("; with `do_sample=True`, a sample from the target's own sampling distribution (speculative "
                      "sampling)" if spec.sampling else " (greedy only)"),
            models="encoder-decoder or decoder-only",
            draft_line=("A draft (`assistant_model=`) that shares the target's tokenizer (the same vocabulary)."
                        if spec.needs_draft else "No draft model: leave `assistant_model` out."),
            lookup_args=("" if spec.needs_draft else "; `prompt_lookup_num_tokens` means the same"
                         + (", `max_matching_ngram_size` the longest n-gram matched" if "max_ngram" in spec.options
                            else "")),
            schedules=("`\"constant\"` only" if "heuristic" not in spec.schedules else
                       "`\"constant\"`, or `\"heuristic\"`/`\"heuristic_transient\"` (k +2 after a fully accepted "
                       "round, −1 otherwise; every call starts at k)"), options=", ".join(f"`{o}`" for o in spec.options) or "none",
            call="assistant_model=draft, " if spec.needs_draft else "", folder=folder.as_posix()))
        folders.append(folder)
    return folders

