"""The target's generation settings, resolved as `model.generate` resolves them, and its logits processors.

`resolve()` merges the model's own `generation_config` (what a checkpoint ships: BART's `forced_bos_token_id`,
Marian's `bad_words_ids`, ...) with a `generation_config` and keyword settings given to `generate()`, in
transformers' own order of precedence, and builds transformers' own logits processors from the result (its
`_get_logits_processor`, the very list `model.generate(do_sample=False)` uses). The methods apply that list to every
position they score, each with its own prefix (committed tokens + the drafts before it), so every method returns
what `model.generate` returns with the same settings.

Only processors that are a function of (prefix, scores) can be applied to a position out of order; anything else
(classifier-free guidance, a custom processor, stop strings, ...) is refused before any work, by name.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation import logits_process as lp

from . import encoder_inputs
from .errors import SettingError  # noqa: F401  (raised here; defined with the other user errors)

# Keyword settings of `generate()` that change greedy output and are honoured (through transformers' processors).
GREEDY_SETTINGS = ("forced_bos_token_id", "forced_eos_token_id", "no_repeat_ngram_size", "min_length",
                   "min_new_tokens", "repetition_penalty", "bad_words_ids", "suppress_tokens",
                   "begin_suppress_tokens", "encoder_repetition_penalty", "encoder_no_repeat_ngram_size",
                   "sequence_bias", "exponential_decay_length_penalty", "remove_invalid_values",
                   "renormalize_logits")

# Processors that depend only on (the prefix they are given, the scores): safe at any verified position.
STATELESS = tuple(getattr(lp, name) for name in (
    "ForcedBOSTokenLogitsProcessor", "ForcedEOSTokenLogitsProcessor", "NoRepeatNGramLogitsProcessor",
    "MinLengthLogitsProcessor", "MinNewTokensLengthLogitsProcessor", "RepetitionPenaltyLogitsProcessor",
    "NoBadWordsLogitsProcessor", "SuppressTokensLogitsProcessor", "SuppressTokensAtBeginLogitsProcessor",
    "EncoderRepetitionPenaltyLogitsProcessor", "EncoderNoRepeatNGramLogitsProcessor", "SequenceBiasLogitsProcessor",
    "ExponentialDecayLengthPenalty", "InfNanRemoveLogitsProcessor", "LogitNormalization") if hasattr(lp, name))
# The sampling warpers (do_sample=True) and the others that read the scores alone, never the prefix: they do not stop
# rows of a batch from advancing by different counts (a padded, re-aligned prefix is never seen).
SCORES_ONLY = tuple(getattr(lp, name) for name in (
    "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper",
    "EpsilonLogitsWarper", "EtaLogitsWarper", "TopHLogitsWarper", "InfNanRemoveLogitsProcessor",
    "LogitNormalization") if hasattr(lp, name))
STATELESS = tuple(dict.fromkeys(STATELESS + SCORES_ONLY))

# Keyword settings of `generate()` that select and shape sampling (as in `model.generate`; the warpers are
# transformers' own, built by its `_get_logits_processor`). Any of them but do_sample needs do_sample=True.
SAMPLING_SETTINGS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff",
                     "eta_cutoff", "top_h")

# Settings that are not logits processors but would change what model.generate returns: refused when set.
_REFUSED = {"stop_strings": None, "max_time": None, "guidance_scale": (None, 1, 1.0), "watermarking_config": None,
            "forced_decoder_ids": None, "constraints": None, "force_words_ids": None, "token_healing": (None, False),
            "dola_layers": None, "prompt_lookup_num_tokens": None, "assistant_early_exit": None}




@dataclass
class Settings:
    """What a `generate()` call decodes with: special tokens and the processors of its greedy decoding."""

    eos_ids: list[int]
    pad_id: int
    decoder_start_id: int | None
    processors: LogitsProcessorList
    config: GenerationConfig | None   # the resolved generation config (for hf_assisted, which hands it on)
    sampling: bool = False            # do_sample=True: tokens are drawn from softmax(processed scores)
    decoder_prompt: torch.Tensor | None = None   # an encoder-decoder's decoder prompt [B, P] (Whisper: P > 1)

    def prompt(self, batch: int, device) -> torch.Tensor:
        """The committed tokens an encoder-decoder's decoding starts from, [batch, P]: the decoder start token, or
        the model's own longer prompt (Whisper's start, language, task and no-timestamps tokens)."""
        if self.decoder_prompt is not None:
            return self.decoder_prompt.to(device)
        return torch.full((batch, 1), self.decoder_start_id, dtype=torch.long, device=device)

    @classmethod
    def plain(cls, pad_id: int = 0) -> "Settings":
        """No processors: the plain argmax."""
        return cls(eos_ids=[], pad_id=pad_id, decoder_start_id=None, processors=LogitsProcessorList(), config=None)

    @property
    def reads_prefix(self) -> bool:
        """Whether a processor reads the tokens before the position it scores (all but the warpers do)."""
        return any(not isinstance(p, SCORES_ONLY) for p in self.processors)

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """The next token [B, 1] from processed scores [B, V]: the argmax, or with sampling a draw from their softmax
        (torch's global RNG, one `torch.multinomial` per step, as `model.generate(do_sample=True)` draws it)."""
        if not self.sampling:
            return scores.argmax(-1, keepdim=True)
        return torch.multinomial(scores.float().softmax(-1), num_samples=1)

    def __call__(self, prefix: torch.Tensor, scores: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Processed scores [B, V] of the position after `prefix` [B, L] (+ uncommitted `extra` [B, m])."""
        if not self.processors:
            return scores
        if extra is not None and extra.shape[1]:
            prefix = torch.cat([prefix, extra], dim=1)
        return self.processors(prefix, scores.float())

    def positions(self, prefix: torch.Tensor, drafts: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Processed logits [B, n, V] of the n positions after prefix, prefix+d1, …, prefix+d1..d(n-1)."""
        if not self.processors:
            return logits
        if not self.reads_prefix:       # the warpers alone: every position in one call
            batch, n, vocab = logits.shape
            return self.processors(prefix.repeat_interleave(n, 0), logits.reshape(batch * n, vocab).float()
                                   ).view(batch, n, vocab)
        rows = [self(prefix, logits[:, i], drafts[:, :i]) for i in range(logits.shape[1])]
        return torch.stack(rows, dim=1)


def _eos(value) -> list[int]:
    if value is None:
        return []
    if torch.is_tensor(value):
        return [int(v) for v in value.flatten().tolist()]
    return [int(e) for e in (value if isinstance(value, (list, tuple)) else [value])]


def resolve(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, *, max_new_tokens: int,
            eos_token_id=None, ignore_eos: bool = False, generation_config: GenerationConfig | None = None,
            settings: dict | None = None, model_args: dict | None = None) -> Settings:
    """The settings `model.generate(input_ids, num_beams=1, ...)` would decode with: greedy (do_sample=False), or
    sampling when `settings` has do_sample=True (the model's own temperature/top-k/top-p then apply, as in
    `model.generate`, unless given; temperature=0 is greedy). `model_args`: a model's own generate() arguments
    (Whisper's language/task: encoder_inputs.whisper_prompt builds its decoder prompt from them)."""
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    sampling = bool(settings.pop("do_sample", False))
    try:
        config, _ = model._prepare_generation_config(copy.deepcopy(generation_config))
    except ValueError as e:
        raise SettingError(f"the model's generation settings cannot be used: {str(e).splitlines()[0]}") from None
    config.update(**({"do_sample": True} if sampling else {}), **settings)   # with it, the sampling settings validate
    prompt = None
    if encoder_inputs.is_whisper(model):
        prompt = encoder_inputs.whisper_prompt(model, input_ids, config, model_args or {}, max_new_tokens)
    for name, allowed in _REFUSED.items():
        value = getattr(config, name, None)
        ok = allowed if isinstance(allowed, tuple) else (allowed,)
        if value not in ok:
            raise SettingError(f"{name}={value!r} is set (in the {_origin(name, settings, generation_config)}) but "
                               "cannot be honoured by speculative decoding; unset it")
    if sampling and config.temperature is not None and float(config.temperature) == 0.0:
        sampling = False            # temperature 0: the argmax (transformers would refuse it; greedy is its limit)
        config.temperature = None
    config.do_sample, config.num_beams, config.num_return_sequences = sampling, 1, 1
    if eos_token_id is not None:
        config.eos_token_id = eos_token_id
    eos_ids = [] if ignore_eos else _eos(config.eos_token_id)
    config.eos_token_id = eos_ids or None
    enc_dec = bool(model.config.is_encoder_decoder)
    input_len = (prompt.shape[1] if prompt is not None else 1) if enc_dec else input_ids.shape[1]
    config.max_new_tokens = max_new_tokens
    config.max_length = max_new_tokens + input_len
    if config.min_new_tokens is not None:
        config.min_length = config.min_new_tokens + input_len
    try:
        model._prepare_special_tokens(config, kwargs_has_attention_mask=attention_mask is not None,
                                      device=input_ids.device, batch_size=input_ids.shape[0])
    except ValueError as e:
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise SettingError(f"{kind}: {str(e).splitlines()[0]} (set decoder_start_token_id or bos_token_id in the "
                           "model's generation_config)") from None
    model_kwargs = {} if enc_dec else {"attention_mask": attention_mask}
    procs = model._get_logits_processor(generation_config=config, input_ids_seq_length=input_len,
                                        encoder_input_ids=input_ids, prefix_allowed_tokens_fn=None,
                                        logits_processor=LogitsProcessorList(), device=input_ids.device,
                                        model_kwargs=model_kwargs)
    for p in procs:
        if not isinstance(p, STATELESS):
            raise SettingError(f"{type(p).__name__} (from the generation settings) cannot be applied to drafted "
                               "positions exactly; unset the setting that adds it")
    start = config._decoder_start_token_tensor
    pad = config._pad_token_tensor
    return Settings(eos_ids=eos_ids, pad_id=int(pad.flatten()[0]) if pad is not None else 0,
                    decoder_start_id=int(start.flatten()[0]) if enc_dec and start is not None else None,
                    processors=procs, config=config, sampling=sampling, decoder_prompt=prompt)


def _origin(name: str, settings: dict, generation_config) -> str:
    if name in settings:
        return "arguments to generate()"
    if generation_config is not None and getattr(generation_config, name, None) is not None:
        return "generation_config passed to generate()"
    return "model's generation_config"
