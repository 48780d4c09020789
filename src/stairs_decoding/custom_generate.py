"""Our methods behind transformers' own `model.generate(custom_generate=...)` (issue 33).

transformers 5.x loads a decoding method from a folder (or a Hub repo) holding `custom_generate/generate.py`:
`target.generate(**inputs, assistant_model=draft, custom_generate=<folder>, trust_remote_code=True,
num_assistant_tokens=k, max_new_tokens=n)` calls that file's `generate(model=target, **every generate argument)`.
`export(out_dir)` (scripts/export_custom_generate.py) writes one such folder per exported method; each folder's
generate.py is two lines that call `run` below, so the folders never hold a copy of the engine.

`run` maps model.generate's arguments onto our `generate()` and returns what model.generate returns: the sequences
tensor (an encoder-decoder's decoder start, or the prompt exactly as passed, then the new tokens, finished rows padded
with the pad id), or with return_dict_in_generate=True a GenerateEncoderDecoderOutput / GenerateDecoderOnlyOutput
holding those sequences. Lengths come as model.generate takes them (max_new_tokens, else max_length, from the call,
else the generation config); k is num_assistant_tokens (lookup: prompt_lookup_num_tokens too) and its schedule
num_assistant_tokens_schedule; an attention mask that is not given is inferred from the pad id as model.generate
infers it. Every other generation argument goes to our generate(), which honours it or refuses it by name; what
model.generate accepts and we cannot honour (logits_processor, stopping_criteria, scores and attentions in the
output, ...) is refused by name before any model runs.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from .errors import GenerationInputError
from .methods import METHODS

# model.generate's own arguments that only its loop can honour: refused unless left at "nothing".
_LOOP_ONLY = ("logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "negative_prompt_ids",
              "negative_prompt_attention_mask", "synced_gpus")
_OUTPUT_FLAGS = ("output_scores", "output_logits", "output_attentions", "output_hidden_states")
# Special-token settings model.generate reads from its generation config: set on a copy of it for our generate().
_TOKENS = ("pad_token_id", "bos_token_id", "decoder_start_token_id")


def exported() -> list[str]:
    """The methods shipped as custom_generate folders: our own exact speculative methods (transformers' own
    assisted generation is what `model.generate(assistant_model=...)` already is)."""
    return [m.name for m in METHODS.values() if m.speculative and m.exact and not m.caller_mask]


def _fail(msg: str):
    raise GenerationInputError(f"custom_generate: {msg}")


def _config(model, generation_config, kwargs: dict):
    """The generation config model.generate would use: the one given (or the model's), with the call's
    special-token settings on a copy."""
    gc = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
    for name in _TOKENS:
        if kwargs.get(name) is not None:
            setattr(gc, name, kwargs.pop(name))
        else:
            kwargs.pop(name, None)
    return gc


def _eos_list(gc, eos) -> list[int]:
    eos = gc.eos_token_id if eos is None else eos
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _pad_id(gc, eos: list[int]) -> int | None:
    """model.generate's pad id: the config's, else the first EOS id."""
    if gc.pad_token_id is not None:
        return int(gc.pad_token_id)
    return eos[0] if eos else None


def _infer_mask(input_ids: torch.Tensor, pad: int | None, eos: list[int]) -> torch.Tensor | None:
    """model.generate's attention mask when none is given: from the pad id when the prompt holds it and the pad id
    is not an EOS id, else none (all ones)."""
    if pad is None or pad in eos or not bool((input_ids == pad).any()):
        return None
    return input_ids.ne(pad).long()


def _max_new_tokens(model, gc, kwargs: dict, prompt_len: int) -> int:
    """max_new_tokens as model.generate derives it: the call's max_new_tokens, else its max_length, else the
    config's max_new_tokens, else its max_length (counted with the prompt, or with the decoder start), else
    transformers' model-agnostic default of 20 new tokens (within the model's position table)."""
    new, total = kwargs.pop("max_new_tokens", None), kwargs.pop("max_length", None)
    if new is None and total is None:
        new, total = gc.max_new_tokens, gc.max_length
    if new is not None:
        return new
    used = 1 if model.config.is_encoder_decoder else prompt_len
    if total is None:
        limit = getattr(model.config, "max_position_embeddings", None)
        return 20 if limit is None else max(1, min(20, limit - used))
    if total - used < 1:
        _fail(f"max_length={total!r} leaves no room for a new token after {used} input position(s); "
              "pass max_new_tokens")
    return total - used


def _draft_arguments(method: str, assistant_model, gc, kwargs: dict) -> dict:
    """draft, k and schedule from model.generate's assisted-generation arguments."""
    spec = METHODS[method]
    lookup_k = kwargs.pop("prompt_lookup_num_tokens", None)
    ngram = kwargs.pop("max_matching_ngram_size", None)
    k = kwargs.pop("num_assistant_tokens", None)
    schedule = kwargs.pop("num_assistant_tokens_schedule", None)
    if spec.needs_draft and assistant_model is None:
        _fail(f"{method!r} needs a draft model: pass assistant_model=")
    if not spec.needs_draft and assistant_model is not None:
        _fail(f"{method!r} uses no draft model: leave assistant_model out")
    if lookup_k is not None and spec.needs_draft:
        _fail(f"prompt_lookup_num_tokens applies to lookup only; {method!r} takes num_assistant_tokens")
    if ngram is not None and "max_ngram" not in spec.options:
        _fail(f"max_matching_ngram_size does not apply to {method!r}")
    k = next((v for v in (k, lookup_k, gc.num_assistant_tokens) if v is not None), 4)
    schedule = schedule if schedule is not None else (gc.num_assistant_tokens_schedule or "constant")
    out = dict(draft=assistant_model, num_draft_tokens=k, schedule=schedule)
    if ngram is not None:
        out["max_ngram"] = ngram
    return out


def _check_loop_only(kwargs: dict, gc) -> bool:
    """Refuse what only transformers' loop honours; returns return_dict_in_generate."""
    for name in _LOOP_ONLY:
        value = kwargs.pop(name, None)
        if value is not None and value is not False and not (isinstance(value, (list, tuple)) and not value):
            _fail(f"{name} is not supported (our methods run their own loop); leave it out")
    for name in _OUTPUT_FLAGS:
        value = kwargs.pop(name, None)
        if value if value is not None else getattr(gc, name, False):
            _fail(f"{name}=True is not supported: the output holds the sequences only")
    if kwargs.pop("use_cache", None) is False or gc.use_cache is False:
        _fail("use_cache=False is not supported: our methods decode through KV caches (the output is the same)")
    value = kwargs.pop("return_dict_in_generate", None)
    return bool(value if value is not None else getattr(gc, "return_dict_in_generate", False))


def run(method: str, model, inputs=None, generation_config=None, assistant_model=None, streamer=None, **kwargs):
    """`model.generate(**kwargs, custom_generate=<method's folder>)`: see the module docstring."""
    from transformers.generation import GenerateDecoderOnlyOutput, GenerateEncoderDecoderOutput

    from .generation import generate

    kwargs = dict(kwargs)
    input_ids = kwargs.pop("input_ids", None) if inputs is None else inputs
    if input_ids is None or not torch.is_tensor(input_ids):
        _fail("pass the token ids as the first argument or input_ids= (a LongTensor [batch, seq])")
    gc = _config(model, generation_config, kwargs)
    return_dict = _check_loop_only(kwargs, gc)
    eos = _eos_list(gc, kwargs.get("eos_token_id"))
    pad = _pad_id(gc, eos)
    mask = kwargs.pop("attention_mask", None)
    if mask is None:
        mask = _infer_mask(input_ids, pad, eos)
    max_new = _max_new_tokens(model, gc, kwargs, input_ids.shape[1])
    draft_args = _draft_arguments(method, assistant_model, gc, kwargs)
    result = generate(model, input_ids, attention_mask=mask, method=method, max_new_tokens=max_new,
                      generation_config=gc, streamer=streamer, **draft_args, **kwargs)
    enc_dec = bool(model.config.is_encoder_decoder)
    if enc_dec:
        start = gc.decoder_start_token_id if gc.decoder_start_token_id is not None else gc.bos_token_id
        head = torch.full((input_ids.shape[0], 1), int(start), dtype=torch.long, device=input_ids.device)
    else:
        head = input_ids
    width = max(len(t) for t in result.tokens)
    new = torch.full((len(result.tokens), width), pad if pad is not None else 0, dtype=torch.long)
    for b, row in enumerate(result.tokens):
        new[b, :len(row)] = torch.tensor(row, dtype=torch.long)
    sequences = torch.cat([head, new.to(head.device)], dim=1)
    if not return_dict:
        return sequences
    return (GenerateEncoderDecoderOutput if enc_dec else GenerateDecoderOnlyOutput)(sequences=sequences)


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

Output is exactly what `model.generate(do_sample=False)` returns for the same arguments (greedy), or a sample from
the target's own sampling distribution where the method samples ({sampling}).

## Base model

Any {models} model that stairs-decoding's `generate()` accepts (T5, BART, Llama, GPT-2, ... families;
see the project's architecture matrix).

## Model compatibility

- {draft_line}
- Batches of any size; `streamer=` at batch size 1.

## Additional arguments

- `num_assistant_tokens` (k, default the generation config's, else 4){lookup_args}
- `num_assistant_tokens_schedule`: `"constant"` or `"heuristic"`, where the method takes it ({schedules}).
- Method options of stairs-decoding's `generate()`: {options}.
- Everything else as `model.generate`: `max_new_tokens`/`max_length`, `eos_token_id`, `pad_token_id`, the
  generation settings that change greedy output, `return_dict_in_generate` (the output then holds `sequences` only).
- Refused by name, before any model runs: `logits_processor`, `stopping_criteria`, `prefix_allowed_tokens_fn`,
  `output_scores`/`output_logits`/`output_attentions`/`output_hidden_states`, `use_cache=False`, beam search.

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
    from importlib.metadata import version as installed

    version = version or installed("stairs-decoding")
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
            method=name, summary=spec.summary, sampling="do_sample=True" if spec.sampling else "greedy only",
            models="encoder-decoder or decoder-only",
            draft_line=("A draft (`assistant_model=`) that shares the target's tokenizer (the same vocabulary)."
                        if spec.needs_draft else "No draft model: leave `assistant_model` out."),
            lookup_args=("" if spec.needs_draft else "; `prompt_lookup_num_tokens` means the same"
                         + (", `max_matching_ngram_size` the longest n-gram matched" if "max_ngram" in spec.options
                            else "")),
            schedules=", ".join(spec.schedules), options=", ".join(f"`{o}`" for o in spec.options) or "none",
            call="assistant_model=draft, " if spec.needs_draft else "", folder=folder.as_posix()))
        folders.append(folder)
    return folders

