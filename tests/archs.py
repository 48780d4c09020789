"""Tiny random models of 25 transformers families, for the architecture-matrix tests.

Every model is built from a Config class with random weights (no downloads, no hub), shares one vocabulary
(VOCAB, with PAD, EOS, BOS) and comes in two sizes of the same config family: "target" (2 layers, hidden 64)
and "draft" (1 layer, hidden 32), so a draft can draft for any target of its family.

    build(name, seed=0, size="target")  -> model (fp32, eval mode), deterministic in (name, seed, size)
    ARCHS[name](seed, size)             -> the same
    is_encoder_decoder(name)
    perturbed(model, sigma=None, seed=5) -> a noisy copy: a "related" draft that agrees on most tokens

Random weights. A default-initialised random model emits one token forever, so every family is re-drawn at
a larger scale, tuned per family (_INIT), so that greedy output is varied yet finite and deterministic:
linear weights N(0, gain^2 / fan_in) with mean-free rows, token embeddings (and tied LM heads) N(0, emb^2),
learned position tables / T5 relative biases N(0, pos^2), biases centred on random tokens so that no layer
puts out the same vector for every input. On top of that, some families need one more thing (a weaker
cross-attention output in BART/Marian/Pegasus, a larger T5 relative-position bias, tiny Gemma embeddings,
Bloom's q/k scaled down and its output head untied); see _INIT. The init is redrawn after construction,
so a config's own initializer_range/init_std does not matter.

Generation configs are rebuilt from the model config with every processor-adding field cleared (forced
BOS/EOS, n-gram blocking, min length, repetition penalties, bad/suppressed tokens): plain greedy `generate`
applies no logits processor. The model configs' forced_bos/eos_token_id are None too. Those processors are
tested separately. `mbart_no_start` deliberately has decoder_start_token_id=None (config and generation
config): generate falls back on bos_token_id.

Random models do sometimes emit PAD (0), EOS (1) or BOS (2). Pass eos_token_id=None to `generate` to switch
the config's EOS off (see greedy()).

`python tests/archs.py [names...]` runs check_all(): varied greedy output, determinism, padded batches,
perturbed-draft agreement, and timings, one line per family.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BloomConfig,
    BloomForCausalLM,
    CohereConfig,
    CohereForCausalLM,
    FalconConfig,
    FalconForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPTBigCodeConfig,
    GPTBigCodeForCausalLM,
    GPTJConfig,
    GPTJForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MarianConfig,
    MarianMTModel,
    MBartConfig,
    MBartForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    OlmoConfig,
    OlmoForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PegasusConfig,
    PegasusForConditionalGeneration,
    PhiConfig,
    PhiForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    Starcoder2Config,
    Starcoder2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 96
PAD, EOS, BOS = 0, 1, 2
MAX_POS = 128          # learned/sinusoidal position tables; prompt + generated tokens stay well below
SLIDING_WINDOW = 6     # mistral_sw, gemma2_sw: 30 generated tokens run well past it

ENCODER_DECODER = ("t5", "t5_v1_1", "bart", "mbart", "marian", "pegasus", "mbart_no_start")
DECODER_ONLY = ("llama", "qwen2", "qwen3", "mistral_sw", "gemma", "gemma2_sw", "phi", "opt", "gpt_neox", "gpt2",
                "gptj", "gpt_bigcode", "mixtral", "olmo", "cohere", "starcoder2", "falcon", "bloom")

# d: hidden size, heads: attention heads, kv: key/value heads (GQA families), ffn: MLP width
_SIZES = {
    "target": dict(d=64, layers=2, heads=4, kv=2, ffn=128),
    "draft": dict(d=32, layers=1, heads=4, kv=2, ffn=64),
}


def _bloom_qk(factor: float) -> Callable[[PreTrainedModel], None]:
    """Scale Bloom's query and key projections (fused query_key_value, rows laid out (head, q|k|v, head_dim)),
    so that ALiBi's recency bias is not drowned by large q.k products."""
    def post(model):
        heads = model.config.n_head
        for block in model.transformer.h:
            lin = block.self_attention.query_key_value
            lin.weight.view(heads, 3, -1, lin.weight.shape[-1])[:, :2].mul_(factor)
            lin.bias.view(heads, 3, -1)[:, :2].mul_(factor)
    return post


# Init per family, tuned (check_all; and over seeds 0-3 x both sizes x other prompt sets) so that a random
# model's greedy output is varied. gain: linear weights N(0, gain^2 / fan_in); emb: std of token embeddings
# (and of a tied LM head); pos: std of learned position tables and T5 relative-attention biases (default emb);
# scale: {parameter-name part: factor} applied after the init; cfg: extra config kwargs; size: _SIZES
# overrides; post: a callable applied after the init; probe: see _builder.
_INIT: dict[str, dict] = {name: dict(gain=4.0, emb=0.3) for name in ENCODER_DECODER + DECODER_ONLY}
_INIT.update(
    # T5 has no absolute positions: a strong relative bias keeps the decoder out of repetition loops
    t5=dict(gain=3.0, emb=0.1, pos=30.0),
    t5_v1_1=dict(gain=2.0, emb=0.03, pos=100.0),
    # BART-like decoders otherwise lock onto a token per prompt (cross-attention output nearly constant)
    bart=dict(gain=3.0, emb=0.3, pos=3.0, scale={"encoder_attn.out_proj": 0.05}),
    mbart=dict(gain=4.0, emb=0.3, pos=3.0),
    mbart_no_start=dict(gain=4.0, emb=0.3, pos=3.0),
    marian=dict(gain=5.0, emb=0.3, scale={"encoder_attn.out_proj": 0.01}),
    pegasus=dict(gain=4.0, emb=0.3, scale={"encoder_attn.out_proj": 0.2}),
    # Gemma scales embeddings by sqrt(hidden): larger ones make the model copy its last token
    gemma=dict(gain=4.0, emb=0.05),
    gemma2_sw=dict(gain=2.0, emb=0.005),
    # ALiBi gives random weights little positional signal, so random Blooms fall into repetition loops most
    # often: untied head, q/k scaled down so the recency bias shapes attention, 8 heads (more ALiBi slopes).
    # Still the least varied family (about 1 output in 10-15 has < 6 distinct tokens in 30), so it is built
    # with probe=True: redrawn until its outputs on PROMPTS are varied (see _builder).
    bloom=dict(gain=5.0, emb=0.3, cfg=dict(tie_word_embeddings=False), size=dict(heads=8), post=_bloom_qk(0.3),
               probe=True),
)

# Noise of `perturbed` per family (relative to each parameter's std), tuned so that the perturbed copy, as a
# greedy drafter, predicts the target's next token on about 80% of positions (teacher_forced_agreement;
# 75-85% on PROMPTS). Encoder-decoders need much less noise. DEFAULT_SIGMA: for other models.
DEFAULT_SIGMA = 0.01
PERTURB_SIGMA: dict[str, float] = dict(
    t5=0.002, t5_v1_1=0.0075, bart=0.003, mbart=0.003, marian=0.003, pegasus=0.008, mbart_no_start=0.003,
    llama=0.012, qwen2=0.014, qwen3=0.04, mistral_sw=0.015, gemma=0.012, gemma2_sw=0.018, phi=0.012, opt=0.012,
    gpt_neox=0.016, gpt2=0.009, gptj=0.016, gpt_bigcode=0.01, mixtral=0.007, olmo=0.014, cohere=0.05,
    starcoder2=0.011, falcon=0.02, bloom=0.022,
)

# Generation-config fields that would add logits processors or change the decoding mode; cleared (None: the
# generate() defaults, i.e. off / greedy) on every model.
_CLEAR_GEN = ("forced_bos_token_id", "forced_eos_token_id", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
              "min_length", "min_new_tokens", "repetition_penalty", "encoder_repetition_penalty", "bad_words_ids",
              "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "num_beams", "num_beam_groups",
              "diversity_penalty", "length_penalty", "early_stopping", "do_sample", "temperature", "top_k", "top_p")


# ------------------------------------------------------------------------------------------- configs
def _tokens(config_cls, decoder_start: int | None | str = "n/a") -> dict:
    """Vocabulary and special-token kwargs; bos/forced_* only where `config_cls` has the field."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    kw = dict(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS)
    if "bos_token_id" in fields:
        kw["bos_token_id"] = BOS
    if decoder_start != "n/a":
        kw["decoder_start_token_id"] = decoder_start
    for key in ("forced_bos_token_id", "forced_eos_token_id"):
        if key in fields:
            kw[key] = None
    return kw


def _t5(s: dict, gated: bool, over: dict) -> PreTrainedModel:
    return T5ForConditionalGeneration(T5Config(
        d_model=s["d"], d_kv=s["d"] // s["heads"], d_ff=s["ffn"], num_layers=s["layers"],
        num_decoder_layers=s["layers"], num_heads=s["heads"], dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=not gated,
        **_tokens(T5Config, decoder_start=PAD), **over))


def _bart_like(config_cls, model_cls, s: dict, decoder_start: int | None, over: dict) -> PreTrainedModel:
    return model_cls(config_cls(
        d_model=s["d"], encoder_layers=s["layers"], decoder_layers=s["layers"],
        encoder_attention_heads=s["heads"], decoder_attention_heads=s["heads"],
        encoder_ffn_dim=s["ffn"], decoder_ffn_dim=s["ffn"], max_position_embeddings=MAX_POS,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        **_tokens(config_cls, decoder_start=decoder_start), **over))


def _llama_like(config_cls, model_cls, s: dict, over: dict, **extra) -> PreTrainedModel:
    kw = dict(hidden_size=s["d"], intermediate_size=s["ffn"], num_hidden_layers=s["layers"],
              num_attention_heads=s["heads"], max_position_embeddings=MAX_POS, attention_dropout=0.0,
              **_tokens(config_cls))
    kw.update(extra)
    kw.update(over)
    return model_cls(config_cls(**kw))


def _make(name: str, s: dict, over: dict) -> PreTrainedModel:
    """The model as its class initialises it; `over`: extra config kwargs."""
    d, L, H, KV, F = s["d"], s["layers"], s["heads"], s["kv"], s["ffn"]
    head = d // H
    gqa = dict(num_key_value_heads=KV, head_dim=head)
    if name in ("t5", "t5_v1_1"):          # (transformers 5 always ties T5's LM head; v1.1 is unscaled)
        return _t5(s, name == "t5_v1_1", over)
    if name == "bart":                      # BART, mBART: decoder starts with EOS (</s>)
        return _bart_like(BartConfig, BartForConditionalGeneration, s, EOS, over)
    if name == "mbart":
        return _bart_like(MBartConfig, MBartForConditionalGeneration, s, EOS, over)
    if name == "mbart_no_start":            # no decoder_start_token_id: generate falls back on BOS
        return _bart_like(MBartConfig, MBartForConditionalGeneration, s, None, over)
    if name == "marian":                    # Marian, Pegasus: decoder starts with PAD
        return _bart_like(MarianConfig, MarianMTModel, s, PAD, over)
    if name == "pegasus":
        return _bart_like(PegasusConfig, PegasusForConditionalGeneration, s, PAD, over)
    if name == "llama":
        return _llama_like(LlamaConfig, LlamaForCausalLM, s, over, **gqa)
    if name == "qwen2":
        return _llama_like(Qwen2Config, Qwen2ForCausalLM, s, over, num_key_value_heads=KV)
    if name == "qwen3":
        return _llama_like(Qwen3Config, Qwen3ForCausalLM, s, over, **gqa)
    if name == "mistral_sw":
        return _llama_like(MistralConfig, MistralForCausalLM, s, over, sliding_window=SLIDING_WINDOW, **gqa)
    if name == "gemma":
        return _llama_like(GemmaConfig, GemmaForCausalLM, s, over, **gqa)
    if name == "gemma2_sw":                 # layers alternate sliding (window 6) / full attention
        return _llama_like(Gemma2Config, Gemma2ForCausalLM, s, over, sliding_window=SLIDING_WINDOW,
                           query_pre_attn_scalar=head, **gqa)
    if name == "mixtral":
        return _llama_like(MixtralConfig, MixtralForCausalLM, s, over, num_local_experts=4, num_experts_per_tok=2,
                           router_jitter_noise=0.0, **gqa)
    if name == "olmo":
        return _llama_like(OlmoConfig, OlmoForCausalLM, s, over)
    if name == "cohere":
        return _llama_like(CohereConfig, CohereForCausalLM, s, over)
    if name == "starcoder2":
        return _llama_like(Starcoder2Config, Starcoder2ForCausalLM, s, over, sliding_window=None,
                           residual_dropout=0.0, embedding_dropout=0.0)
    if name == "phi":
        return _llama_like(PhiConfig, PhiForCausalLM, s, over, resid_pdrop=0.0, embd_pdrop=0.0)
    if name == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            hidden_size=d, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
            max_position_embeddings=MAX_POS, attention_dropout=0.0, hidden_dropout=0.0, classifier_dropout=0.0,
            **_tokens(GPTNeoXConfig), **over))
    if name == "opt":
        return OPTForCausalLM(OPTConfig(
            hidden_size=d, ffn_dim=F, num_hidden_layers=L, num_attention_heads=H, word_embed_proj_dim=d,
            max_position_embeddings=MAX_POS, dropout=0.0, attention_dropout=0.0, **_tokens(OPTConfig), **over))
    gpt_kw = dict(n_embd=d, n_layer=L, n_head=H, n_inner=F, n_positions=MAX_POS, resid_pdrop=0.0, embd_pdrop=0.0,
                  attn_pdrop=0.0)
    if name == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**gpt_kw, summary_first_dropout=0.0, **_tokens(GPT2Config), **over))
    if name == "gpt_bigcode":
        return GPTBigCodeForCausalLM(GPTBigCodeConfig(**gpt_kw, multi_query=True, **_tokens(GPTBigCodeConfig),
                                                      **over))
    if name == "gptj":
        return GPTJForCausalLM(GPTJConfig(**gpt_kw, rotary_dim=head // 2, **_tokens(GPTJConfig), **over))
    if name == "falcon":
        return FalconForCausalLM(FalconConfig(
            hidden_size=d, num_hidden_layers=L, num_attention_heads=H, hidden_dropout=0.0, attention_dropout=0.0,
            max_position_embeddings=MAX_POS, **_tokens(FalconConfig), **over))
    if name == "bloom":
        return BloomForCausalLM(BloomConfig(
            hidden_size=d, n_layer=L, n_head=H, hidden_dropout=0.0, attention_dropout=0.0,
            **_tokens(BloomConfig), **over))
    raise KeyError(name)


# ------------------------------------------------------------------------------------------- weights
_POSITION_TABLES = ("embed_positions", "wpe", "position_embeddings", "relative_attention_bias")


@torch.no_grad()
def _reinit(model: PreTrainedModel, gain: float, emb_std: float, pos_std: float | None = None) -> None:
    """Re-draw the weights from torch's global RNG (seeded by the caller).

    Embedding tables, incl. a tied LM head: N(0, emb_std^2); learned position tables and T5 relative biases:
    N(0, pos_std^2). Linear-like weights, fused MoE expert tensors too: N(0, gain^2 / fan_in) (fan_in = last
    dim; GPT-2's Conv1D stores (in, out)), rows made mean-free so that a constant input component (the
    positive mean of a ReLU/GELU output) does not become the same output vector for every input. Biases and
    norm weights keep the family's init; frozen tables (sinusoidal positions) are left alone.
    """
    done: set[int] = set()
    for mname, module in model.named_modules():   # embeddings first: a tied LM head shares their weight
        if isinstance(module, torch.nn.Embedding) and module.weight.requires_grad and id(module.weight) not in done:
            is_pos = mname.rsplit(".", 1)[-1] in _POSITION_TABLES
            module.weight.normal_(0.0, pos_std if is_pos and pos_std is not None else emb_std)
            done.add(id(module.weight))
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in done or not p.requires_grad or p.dim() < 2:
                continue
            conv1d = type(module).__name__ == "Conv1D"
            p.normal_(0.0, gain / math.sqrt(p.shape[0] if conv1d else p.shape[-1]))
            p.sub_(p.mean(dim=0 if conv1d else -1, keepdim=True))
            done.add(id(p))


@torch.no_grad()
def _center_biases(model: PreTrainedModel, seed: int) -> None:
    """Data-dependent bias init: each biased linear layer gets bias -= W @ mean(input) over random tokens.

    A large-scale GELU/ReLU MLP has a large input-independent mean output, which swamps the residual stream
    (post-LN BART/Marian then emit one token whatever the input). Layers are centred in forward order
    (one-shot pre-hooks), so each sees already-centred inputs.
    """
    handles = {}

    def hook(module, args):
        handles.pop(module).remove()
        x = args[0].detach().float().reshape(-1, args[0].shape[-1])
        w = module.weight.float()
        shift = x.mean(0) @ w if type(module).__name__ == "Conv1D" else w @ x.mean(0)
        module.bias.sub_(shift.to(module.bias.dtype))

    for module in model.modules():
        if isinstance(getattr(module, "bias", None), torch.nn.Parameter) and not isinstance(
                module, (torch.nn.LayerNorm, torch.nn.Embedding)) and getattr(module, "weight", None) is not None \
                and module.weight.dim() == 2:
            handles[module] = module.register_forward_pre_hook(hook)
    if not handles:
        return
    gen = torch.Generator().manual_seed(10_000 + seed)
    ids = torch.randint(3, VOCAB, (8, 16), generator=gen)
    kw = {}
    if model.config.is_encoder_decoder:
        kw["decoder_input_ids"] = torch.randint(3, VOCAB, (8, 16), generator=gen)
    model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **kw)
    for h in handles.values():
        h.remove()


def _finish(model: PreTrainedModel) -> PreTrainedModel:
    """fp32, eval mode, and a generation config that adds no logits processors."""
    cfg = model.config
    for key in ("forced_bos_token_id", "forced_eos_token_id"):
        if getattr(cfg, key, None) is not None:
            setattr(cfg, key, None)
    gen = GenerationConfig.from_model_config(cfg)
    for key in _CLEAR_GEN:
        if hasattr(gen, key):
            setattr(gen, key, None)
    gen.validate()
    model.generation_config = gen
    return model.float().eval()


def _build_once(name: str, seed: int, size: str) -> PreTrainedModel:
    spec = _INIT[name]
    torch.manual_seed(seed)
    model = _make(name, {**_SIZES[size], **spec.get("size", {})}, dict(spec.get("cfg", {})))
    _reinit(model, spec["gain"], spec["emb"], spec.get("pos"))
    with torch.no_grad():
        for pname, p in model.named_parameters():
            for part, factor in spec.get("scale", {}).items():
                if part in pname:
                    p.mul_(factor)
        if "post" in spec:
            spec["post"](model)
    _center_biases(model, seed)
    model = _finish(model)
    if name == "mbart_no_start":             # GenerationConfig defaults it to None too; be explicit
        model.config.decoder_start_token_id = None
        model.generation_config.decoder_start_token_id = None
    model.arch_name = name                   # lets perturbed() pick the family's sigma
    return model


_PROBE_TRIES = 10


def _builder(name: str) -> Callable[[int, str], PreTrainedModel]:
    def build_one(seed: int = 0, size: str = "target") -> PreTrainedModel:
        if size not in _SIZES:
            raise ValueError(f"size must be one of {sorted(_SIZES)}, got {size!r}")
        with torch.random.fork_rng(devices=[]):      # leave the caller's RNG state alone
            if not _INIT[name].get("probe"):
                return _build_once(name, seed, size)
            # Redraw from derived seeds (so still deterministic) until greedy output on PROMPTS is varied.
            for attempt in range(_PROBE_TRIES):
                model = _build_once(name, seed + 7919 * attempt, size)
                if is_varied([greedy(model, p) for p in PROMPTS]):
                    break
            return model
    build_one.__name__ = f"build_{name}"
    return build_one


ARCHS: dict[str, Callable[[int, str], PreTrainedModel]] = {n: _builder(n) for n in ENCODER_DECODER + DECODER_ONLY}


def build(name: str, seed: int = 0, size: str = "target") -> PreTrainedModel:
    """A tiny random `name` model, size "target" or "draft" (fp32, eval mode); deterministic in its args."""
    return ARCHS[name](seed, size)


def is_encoder_decoder(name: str) -> bool:
    return name in ENCODER_DECODER


def perturb_sigma(name: str) -> float:
    """The default `perturbed` sigma for family `name`."""
    return PERTURB_SIGMA.get(name, DEFAULT_SIGMA)


@torch.no_grad()
def perturbed(model: PreTrainedModel, sigma: float | None = None, seed: int = 5) -> PreTrainedModel:
    """A deepcopy of `model` with seeded Gaussian noise (std = sigma * param.std()) added to every parameter.

    A "related" draft: it predicts the model's greedy token on most positions, not all. sigma=None: the
    family's tuned value (PERTURB_SIGMA, found through the `arch_name` that build() sets), else DEFAULT_SIGMA.
    Constant tensors (norm weights initialised to 1, zero biases) have std 0 and are left as they are.
    """
    if sigma is None:
        sigma = perturb_sigma(getattr(model, "arch_name", ""))
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    for p in out.parameters():
        if p.numel() < 2:
            continue
        std = p.detach().float().std()
        if not torch.isfinite(std) or std == 0:
            continue
        p.add_((torch.randn(p.shape, generator=gen) * (sigma * std)).to(p.dtype))
    return out.eval()


# -------------------------------------------------------------------------------------------- checks
def prompts(n: int = 5, seed: int = 123) -> list[torch.Tensor]:
    """n seeded random prompts, each (1, L) with L in [4, 12] and ids in [3, VOCAB) (no special tokens)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 13, (1,), generator=g))
        out.append(torch.randint(3, VOCAB, (1, length), generator=g))
    return out


PROMPTS = prompts()


def new_tokens(model, ids: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The generated part of generate()'s output (without the prompt / the decoder start token)."""
    return out[:, 1:] if model.config.is_encoder_decoder else out[:, ids.shape[1]:]


@torch.no_grad()
def greedy(model, ids: torch.Tensor, n: int = 30, attention_mask: torch.Tensor | None = None, **kw) -> torch.Tensor:
    """Plain generate() greedy continuation of `ids`, (batch, n): exactly n new tokens, since
    eos_token_id=None switches the config's EOS off."""
    if attention_mask is None:
        attention_mask = torch.ones_like(ids)
    out = model.generate(ids, attention_mask=attention_mask, do_sample=False, num_beams=1, max_new_tokens=n,
                         eos_token_id=None, pad_token_id=PAD, **kw)
    return new_tokens(model, ids, out)


def is_varied(outputs: list[torch.Tensor], min_distinct: int = 6) -> bool:
    """Each output has >= min_distinct distinct tokens, and the outputs are not all equal."""
    rows = [tuple(o.reshape(-1).tolist()) for o in outputs]
    return min(len(set(r)) for r in rows) >= min_distinct and len(set(rows)) > 1


@torch.no_grad()
def teacher_forced_agreement(target, draft, ids: torch.Tensor, new: torch.Tensor) -> float:
    """Fraction of the positions of the target's greedy continuation `new` (1, n) at which `draft`, fed the
    same tokens, predicts the same next token: the per-token acceptance rate of `draft` as a greedy drafter."""
    def next_ids(model):
        if model.config.is_encoder_decoder:
            start = model.generation_config.decoder_start_token_id
            if start is None:
                start = model.generation_config.bos_token_id
            dec = torch.cat([torch.full((1, 1), start), new[:, :-1]], dim=1)
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=dec).logits
        else:
            seq = torch.cat([ids, new[:, :-1]], dim=1)
            logits = model(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[:, ids.shape[1] - 1:]
        return logits.argmax(-1)
    t, d = next_ids(target), next_ids(draft)
    assert torch.equal(t, new), "teacher-forced argmax differs from generate's greedy tokens"
    return (t == d).float().mean().item()


def padded_batch(name: str, n: int = 3, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of n prompts of different lengths, padded with PAD: on the left for
    decoder-only families, on the right for encoder-decoder ones."""
    rows = [p[0] for p in prompts(n, seed=seed)]
    width = max(len(p) for p in rows)
    ids = torch.full((n, width), PAD)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(rows):
        span = slice(0, len(p)) if is_encoder_decoder(name) else slice(width - len(p), width)
        ids[i, span], mask[i, span] = p, 1
    return ids, mask


@torch.no_grad()
def _padded_rows_match(name: str, model, new: int = 10) -> bool:
    """generate() runs on a padded batch, and each row equals its prompt's unpadded greedy output."""
    ids, mask = padded_batch(name)
    out = greedy(model, ids, new, attention_mask=mask)
    assert out.shape == (ids.shape[0], new)
    return all(torch.equal(out[i:i + 1], greedy(model, ids[i:i + 1, mask[i].bool()], new)) for i in range(len(ids)))


@torch.no_grad()
def _no_processors(model) -> bool:
    """With the model's own generation config (its EOS included), greedy scores are the raw logits."""
    ids = PROMPTS[0]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, pad_token_id=PAD,
                         output_scores=True, output_logits=True, return_dict_in_generate=True)
    return all(torch.equal(s, lg) for s, lg in zip(out.scores, out.logits))


def check_all(names=None, verbose: bool = True) -> dict:
    """For every family: build target (seed 0) and draft (seed 1); check varied greedy output on PROMPTS,
    deterministic build, finite logits, no logits processors, padded batches, perturbed-draft agreement."""
    import time
    import warnings

    names = list(names or ARCHS)
    results = {}
    t_all = time.perf_counter()
    build_total = 0.0
    for name in names:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            target = build(name, 0, "target")
            draft = build(name, 1, "draft")
            t_build = time.perf_counter() - t0
            outs = [greedy(target, p) for p in PROMPTS]
            d_outs = [greedy(draft, p) for p in PROMPTS]
            t_gen = time.perf_counter() - t0 - t_build
            again = build(name, 0, "target")
            deterministic = all(torch.equal(a, b) for a, b in zip(target.state_dict().values(),
                                                                  again.state_dict().values()))
            with torch.no_grad():
                finite = all(torch.isfinite(m(**_dummy_inputs(m)).logits).all().item() for m in (target, draft))
            plain = _no_processors(target) and _no_processors(draft)
            pert = perturbed(target)
            tf = sum(teacher_forced_agreement(target, pert, p, o) for p, o in zip(PROMPTS, outs)) / len(PROMPTS)
            free = sum((greedy(pert, p) == o).float().mean().item() for p, o in zip(PROMPTS, outs)) / len(PROMPTS)
            padded_ok = _padded_rows_match(name, target) and _padded_rows_match(name, draft)
        build_total += t_build
        varied = is_varied(outs) and is_varied(d_outs)
        msgs = sorted({f"{w.category.__name__}: {str(w.message)[:100]}" for w in caught})
        results[name] = dict(
            distinct=[len(set(o[0].tolist())) for o in outs], draft_distinct=[len(set(o[0].tolist())) for o in d_outs],
            varied=varied, deterministic=deterministic, finite=finite, no_processors=plain,
            sigma=perturb_sigma(name), tf_agree=tf, free_agree=free, padded_rows_match=padded_ok,
            build_s=t_build, gen_s=t_gen, warnings=msgs)
        if verbose:
            r = results[name]
            print(f"{name:15s} varied={varied!s:5s} det={deterministic!s:5s} finite={finite!s:5s} "
                  f"plain={plain!s:5s} distinct={r['distinct']} draft={r['draft_distinct']} "
                  f"perturbed(sigma={r['sigma']}): tf={tf:.2f} free={free:.2f} padded={padded_ok!s:5s} "
                  f"build={t_build:.2f}s gen={t_gen:.2f}s" + (f" WARN {msgs}" if msgs else ""), flush=True)
    if verbose:
        print(f"total {time.perf_counter() - t_all:.1f}s (building the {2 * len(names)} models: {build_total:.1f}s); "
              f"all varied: {all(r['varied'] for r in results.values())}")
    return results


def _dummy_inputs(model) -> dict:
    ids = (torch.arange(2 * 16).reshape(2, 16) * 7) % (VOCAB - 3) + 3
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    if model.config.is_encoder_decoder:
        kw["decoder_input_ids"] = ids
    return kw


if __name__ == "__main__":
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    check_all(sys.argv[1:] or None)
