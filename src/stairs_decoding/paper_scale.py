"""Paper-scale timing without checkpoints: architecture-true T5 models with random weights, and a draft whose
acceptance rate α is set by us.

Speed does not depend on the weights' values, only on the architecture (layers, widths, heads, vocabulary) and
on how often the draft is accepted. `build_architecture("t5-large")` builds a `T5ForConditionalGeneration` with
the published t5-large dimensions and seeded random weights: it costs what the real checkpoint costs per forward
pass, but it is NOT the checkpoint (its outputs are meaningless; names carry "_arch" everywhere to say so).

`ControlledDraft` wraps a real draft-sized model (its real forward pass runs, so it costs what T5-small costs) and
rewrites the draft's logits so that its greedy proposal for new token j is the target's own greedy token ref[j]
with probability α and a different token otherwise. The decisions are drawn once per example from a seeded
generator, so a position gets the same decision in every round and in every method; the target still decides
every emitted token, so every method's output remains the target's greedy output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .compat import hook_cache
from .errors import ArchitectureError
from .models import resolve_dtype

# -- architectures -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class T5Shape:
    """The published dimensions of one T5 checkpoint's config.json (google-t5/*, google/flan-t5-*)."""

    checkpoint: str          # the hub checkpoint whose shape this is (never loaded)
    d_model: int
    d_ff: int
    d_kv: int
    num_heads: int
    num_layers: int
    num_decoder_layers: int
    feed_forward_proj: str   # "relu" (original T5) | "gated-gelu" (T5 v1.1 / FLAN-T5)
    tie_word_embeddings: bool
    params: int | None = None  # parameter count of the hub checkpoint (documentation; see the note below)
    vocab_size: int = 32128


T5_ARCHITECTURES: dict[str, T5Shape] = {
    # Original T5 (Raffel et al., 2020): ReLU feed-forward, input/output embeddings tied.
    "t5-small": T5Shape("google-t5/t5-small", 512, 2048, 64, 8, 6, 6, "relu", True, 60_506_624),
    "t5-base": T5Shape("google-t5/t5-base", 768, 3072, 64, 12, 12, 12, "relu", True, 222_903_552),
    "t5-large": T5Shape("google-t5/t5-large", 1024, 4096, 64, 16, 24, 24, "relu", True, 737_668_096),
    "t5-3b": T5Shape("google-t5/t5-3b", 1024, 16384, 128, 32, 24, 24, "relu", True, 2_851_598_336),
    # T5 v1.1 / FLAN-T5: gated-GELU feed-forward, untied output layer in the checkpoints. Note: transformers 5
    # ties T5's lm_head to the input embedding for every T5 config (T5Config forces tie_word_embeddings=True and
    # keeps only the output scaling of v1.1), so the built model has vocab·d_model fewer parameters than the
    # count below; the lm_head matmul, and so the cost of a forward pass, is the same.
    "flan-t5-small": T5Shape("google/flan-t5-small", 512, 1024, 64, 6, 8, 8, "gated-gelu", False, 76_961_152),
    "flan-t5-base": T5Shape("google/flan-t5-base", 768, 2048, 64, 12, 12, 12, "gated-gelu", False, 247_577_856),
    "flan-t5-large": T5Shape("google/flan-t5-large", 1024, 2816, 64, 16, 24, 24, "gated-gelu", False,
                             783_150_080),
    "flan-t5-xl": T5Shape("google/flan-t5-xl", 2048, 5120, 64, 32, 24, 24, "gated-gelu", False, 2_849_757_184),
    # Test-only shapes (fast end-to-end runs of the same code path); not published models.
    "tiny-test-target": T5Shape("(test only)", 64, 256, 16, 4, 2, 2, "relu", True, None, 512),
    "tiny-test-draft": T5Shape("(test only)", 32, 64, 16, 2, 1, 1, "relu", True, None, 512),
}


def canonical_name(name: str) -> str:
    """'t5_large_arch', 'T5-large', 't5_large' → 't5-large' (a key of T5_ARCHITECTURES)."""
    key = str(name).strip().lower()
    for suffix in ("_arch", "-arch"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    key = key.replace("_", "-")
    if key not in T5_ARCHITECTURES:
        raise ArchitectureError(f"unknown T5 architecture {name!r}; valid: {', '.join(T5_ARCHITECTURES)} "
                         "(optionally with an _arch suffix, underscores or dashes)")
    return key


def t5_config(name: str, **overrides):
    """A `T5Config` with the published dimensions of `name` (no weights, nothing downloaded)."""
    from transformers import T5Config

    s = T5_ARCHITECTURES[canonical_name(name)]
    kwargs = dict(vocab_size=s.vocab_size, d_model=s.d_model, d_ff=s.d_ff, d_kv=s.d_kv, num_heads=s.num_heads,
                  num_layers=s.num_layers, num_decoder_layers=s.num_decoder_layers,
                  feed_forward_proj=s.feed_forward_proj, tie_word_embeddings=s.tie_word_embeddings,
                  relative_attention_num_buckets=32, relative_attention_max_distance=128,
                  layer_norm_epsilon=1e-6, dropout_rate=0.0, initializer_factor=1.0,
                  decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, is_encoder_decoder=True)
    kwargs.update(overrides)
    return T5Config(**kwargs)


def _init_std(name: str, config) -> float | None:
    """The standard deviation transformers' T5 `_init_weights` uses for a parameter (None = LayerNorm → ones)."""
    f = config.initializer_factor
    leaf = name.rsplit(".", 2)[-2] if name.count(".") else name
    if "layer_norm" in name:
        return None
    if name in ("shared.weight", "lm_head.weight") or name.endswith("embed_tokens.weight"):
        return f * 1.0
    if "relative_attention_bias" in name:
        return f * config.d_model ** -0.5
    if leaf == "q":
        return f * (config.d_model * config.d_kv) ** -0.5
    if leaf in ("k", "v"):
        return f * config.d_model ** -0.5
    if leaf == "o":
        return f * (config.num_heads * config.d_kv) ** -0.5
    if leaf in ("wi", "wi_0", "wi_1"):
        return f * config.d_model ** -0.5
    if leaf == "wo":
        return f * config.d_ff ** -0.5
    return f * config.d_model ** -0.5


def build_architecture(architecture: str, *, seed: int = 0, dtype="float32", device="cpu",
                       arch: str = "encoder_decoder", init_factor: float = 1.0):
    """An `.eval()` `T5ForConditionalGeneration` with the published shape of `architecture` and seeded random
    weights (the scales of transformers' T5 init). Architecture-only: NOT the pretrained checkpoint.

    Fast: the model is created on the meta device, allocated once in the target dtype/device, and every
    parameter is filled in place from one seeded generator (no per-module Python init, no double allocation).
    Same (architecture, seed, dtype) → same weights. `arch` is the config node's family, checked (T5 is
    encoder-decoder).
    """
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    key = canonical_name(architecture)
    if arch != "encoder_decoder":
        raise ArchitectureError(f"{key} is an encoder-decoder architecture, but its config node says arch={arch!r}")
    config = t5_config(key, initializer_factor=init_factor)
    dt = resolve_dtype(dtype)
    dev = torch.device("cuda" if device in (None, "auto") and torch.cuda.is_available()
                       else "cpu" if device in (None, "auto") else device)

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            model = T5ForConditionalGeneration(config)
    finally:
        hf_logging.set_verbosity(verbosity)
    model = model.to(dtype=dt).to_empty(device=dev)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    with torch.no_grad():
        seen = set()
        for pname, param in model.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            std = _init_std(pname, config)
            if std is None:
                param.fill_(1.0)
            else:
                param.normal_(0.0, std, generator=gen)
        for _, buf in model.named_buffers():
            buf.zero_()
    if config.tie_word_embeddings:
        model.tie_weights()
    model.config.architecture_only = True          # flagged: random weights, not a checkpoint
    model.config.name_or_path = f"{key}-architecture-random-weights"
    gc = model.generation_config
    gc.decoder_start_token_id, gc.eos_token_id, gc.pad_token_id = 0, 1, 0
    return model.eval()


def parameter_count(name: str) -> int:
    """Exact parameter count of an architecture, computed on the meta device (no memory, no weights)."""
    from transformers import T5ForConditionalGeneration

    with torch.device("meta"):
        model = T5ForConditionalGeneration(t5_config(name))
    return sum(p.numel() for p in model.parameters())


# -- controlled-acceptance draft ------------------------------------------------------------------------------
class ControlledDraft:
    """Hooks a real draft model so that its greedy proposal for new token j is ref[j] with probability α.

    ``with ControlledDraft(draft, alpha=0.7, seed=0) as cd: cd.set_reference(ref, example_seed=i); generate(...)``

    The draft's real forward pass runs (its cost is the real cost); a forward pre-hook reads the absolute decoder
    position of the call (the KV-cache length before it, 0 without a cache), and a forward hook rewrites
    ``output.logits`` in place so that the argmax at decoder position p — which proposes new token p, 0-based —
    is ``ref[p]`` where ``accept[p]`` and ``wrong[p]`` (≠ ref[p], never 0/1) otherwise. ``accept`` comes from
    uniforms drawn once per (seed, example_seed), compared with α: the same position gets the same decision in
    every round, method and k, and changing α keeps the draws (a higher α accepts a superset of positions).
    The decoder positions are those of the committed sequence (decoder start = position 0), which all methods
    share: stairs re-proposes positions from scratch, stairs_cached and HF assisted generation continue a cache.
    Only the top-level model's forward is hooked (encoder calls go through `get_encoder()` and are untouched).
    Positions: our methods feed the draft only what its cache lacks, so position = cache length before the call.
    HF assisted generation (transformers 5.x) calls ``draft.generate(decoder_input_ids=<full sequence>, past_key_values=
    <cropped cache>)`` and, for an encoder-decoder draft, does not slice the input to the uncached part: the draft
    re-reads the whole decoder sequence on top of its cache every round (cache length ≠ position). So the first
    forward of each ``draft.generate()`` call is placed by the length of the sequence handed to generate (noted by
    a pass-through on the instance's ``generate``), and later forwards of that call by their cache offset from it.
    ``remove()`` (or leaving the ``with``) restores the model.
    """

    def __init__(self, draft, alpha: float, *, seed: int = 0, margin: float = 1.0):
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.model = draft
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.margin = float(margin)
        self.vocab_size = int(draft.config.vocab_size)
        self._ref = self._u = self._wrong = None
        self._start = self._offset = 0
        self._generate_len: int | None = None
        self._handles: list = []
        self.calls = 0
        self.attach()

    # -- reference -------------------------------------------------------------------------------------------
    def set_reference(self, ref, example_seed: int = 0) -> None:
        """`ref`: the target's greedy new tokens (list[int], list[list[int]] or LongTensor [B, N])."""
        ref = torch.as_tensor(ref, dtype=torch.long)
        if ref.dim() == 1:
            ref = ref.unsqueeze(0)
        batch, n = ref.shape
        # Positions past the reference (never proposed within max_new_tokens) get a fixed filler token.
        pad = 64
        ref = torch.cat([ref, torch.full((batch, pad), 2, dtype=torch.long)], dim=1)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(example_seed))
        u = torch.rand(batch, n + pad, generator=g)
        # A different token from [2, V): uniform over the others (0/1 = pad/EOS are never used as wrong tokens).
        span = self.vocab_size - 2
        off = torch.randint(1, max(2, span), (batch, n + pad), generator=g)
        wrong = 2 + (ref.clamp(min=2) - 2 + off) % span
        wrong = torch.where(wrong == ref, 2 + (wrong - 2 + 1) % span, wrong)
        u[:, n:] = 2.0                                   # past the reference: never "accepted"
        self._offset, self._generate_len = 0, None      # nothing carried over from the previous generation
        dev = self.model.device
        self._ref, self._u, self._wrong = ref.to(dev), u.to(dev), wrong.to(dev)

    def decisions(self, n: int | None = None) -> torch.Tensor:
        """accept[b, j] for the current α (bool [B, n])."""
        acc = self._u < self.alpha
        return acc if n is None else acc[:, :n]

    def proposals(self, n: int | None = None) -> torch.Tensor:
        """The token the draft proposes at each position (independent of what precedes it)."""
        chosen = torch.where(self.decisions(), self._ref, self._wrong)
        return chosen if n is None else chosen[:, :n]

    # -- hooks -----------------------------------------------------------------------------------------------
    def _pre(self, module, args, kwargs):
        cache = hook_cache(kwargs)
        cached = int(cache.get_seq_length()) if cache is not None else 0
        ids = kwargs.get("decoder_input_ids")
        length = ids.shape[1] if ids is not None else 0
        if cache is None or cached == 0:     # a fresh generation: nothing carried over from an earlier one
            self._offset = 0
        if self._generate_len is not None:
            # First forward of a draft.generate() call (HF assisted generation): its last input is the last
            # token of the full decoder sequence passed to generate, whatever the cache holds.
            start = self._generate_len - length
            self._offset = cached - start
            self._generate_len = None
        else:
            start = cached - self._offset
        self._start = start

    def _generate(self, *args, **kwargs):
        ids = kwargs.get("decoder_input_ids")
        self._generate_len = ids.shape[1] if ids is not None else None
        try:
            return self._orig_generate(*args, **kwargs)
        finally:
            self._generate_len = None

    def _post(self, module, args, kwargs, output):
        if self._ref is None:
            raise RuntimeError("ControlledDraft: call set_reference() before generating")
        logits = output["logits"] if isinstance(output, dict) else output.logits
        batch, length, _ = logits.shape
        pos = torch.arange(self._start, self._start + length, device=logits.device)
        pos = pos.clamp(max=self._ref.shape[1] - 1)
        rows = self._ref.shape[0]
        if batch % rows:
            raise RuntimeError(f"ControlledDraft: draft batch {batch} is not a multiple of the reference's {rows} rows")
        acc = self._u[:, pos] < self.alpha
        chosen = torch.where(acc, self._ref[:, pos], self._wrong[:, pos])            # [rows, L]
        if batch != rows:
            chosen = chosen.repeat_interleave(batch // rows, 0)
        top = logits.amax(-1, keepdim=True)
        value = top.abs() * 2 + self.margin                                         # > top, also in bf16
        logits.scatter_(-1, chosen.unsqueeze(-1), value.to(logits.dtype))
        self.calls += 1
        return None

    def attach(self) -> "ControlledDraft":
        if not self._handles:
            self._handles = [self.model.register_forward_pre_hook(self._pre, with_kwargs=True),
                             self.model.register_forward_hook(self._post, with_kwargs=True)]
            # A pass-through on this instance's generate() (the model stays the real HF model): it only notes
            # the length of the decoder sequence HF assisted generation hands the draft each round.
            self._had_own_generate = "generate" in vars(self.model)
            self._orig_generate = self.model.generate
            self.model.generate = self._generate
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        if self._handles:
            if self._had_own_generate:
                self.model.generate = self._orig_generate
            else:
                del self.model.generate
        self._handles = []

    def __enter__(self) -> "ControlledDraft":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.remove()
