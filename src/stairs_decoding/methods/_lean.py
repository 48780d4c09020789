"""A lean decoder step for T5-family drafts: the same arithmetic as transformers' T5 decoder forward, in about forty
tensor operations instead of a module tree.

A small draft's forward is mostly per-call overhead, not arithmetic: on the shipped tiny pair one decoder step of
the 1-layer draft through `model(...)` costs 1.2 ms at batch 4, of which the layer's own tensor work is under half
(the rest is mask building, module dispatch, output classes). The draft runs k times per round, so that overhead
is what makes speculation cost more than it saves at batch > 1. `LeanT5Step` computes the same logits from the same
weights and the same KV cache object (transformers' `EncoderDecoderCache`, so rollback, re-alignment and row
selection work on it unchanged): RMS norms, the relative position bias (one table lookup instead of bucketing every
call), the causal/padding mask combined with the bias as transformers' sdpa path combines them, self- and
cross-attention through `scaled_dot_product_attention`, the feed-forward, the output scaling and the LM head.

It serves the *draft* only (`draft_forward` option). The target's scores, which decide every output token, always
come from the model's own forward, so no output can change; a draft step that computed different logits would only
change which drafts are proposed. tests/test_lean.py checks that its logits equal transformers' bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = {"T5ForConditionalGeneration": "t5", "MT5ForConditionalGeneration": "mt5"}
CHOICES = ("auto", "lean", "transformers")


def unsupported(model) -> str | None:
    """Why `LeanT5Step` cannot run `model` (None if it can)."""
    name = type(model).__name__
    if SUPPORTED.get(name) != getattr(model.config, "model_type", None):
        return f"it is a {name} (the lean step covers {', '.join(SUPPORTED)})"
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != "sdpa":
        return f"its attention implementation is {impl!r} (the lean step reproduces 'sdpa')"
    if model.training:
        return "it is in training mode"
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return "it has forward hooks, which the lean step would not run"
    devices = {p.device for p in model.parameters()}
    if len(devices) != 1:
        return "its weights are spread over several devices"
    if any(isinstance(m, nn.Linear) and (type(m) is not nn.Linear or not m.weight.is_floating_point())
           for m in model.get_decoder().modules()):
        return "its decoder has quantized or replaced linear layers"
    blocks = model.get_decoder().block
    if any(b.layer[0].SelfAttention.has_relative_attention_bias for b in blocks[1:]):
        return "its decoder layers have their own position biases"
    return None


def resolve(choice: str, draft) -> str:
    """'lean' or 'transformers': what `draft_forward=choice` runs for `draft` ('auto': lean where it can)."""
    if choice == "transformers" or draft is None:
        return "transformers"
    if choice == "auto":
        return "transformers" if unsupported(draft) else "lean"
    return "lean"


def _norm(x: torch.Tensor, norm) -> torch.Tensor:
    """transformers' T5LayerNorm (RMS, variance in fp32, back to a half-precision weight's dtype)."""
    variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(variance + norm.variance_epsilon)
    if norm.weight.dtype in (torch.float16, torch.bfloat16):
        x = x.to(norm.weight.dtype)
    return norm.weight * x


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """T5Block's fp16 guard against inf."""
    if x.dtype != torch.float16:
        return x
    big = torch.finfo(x.dtype).max
    limit = torch.where(torch.isinf(x).any(), big - 1000, big)
    return torch.clamp(x, min=-limit, max=limit)


class LeanT5Step:
    """One decoder forward of a T5-family model with a KV cache: logits [B, q, V] of the `q` fed tokens."""

    def __init__(self, model, *, checked: bool = False):
        """`checked`: the caller has just asked `unsupported(model)` (the engine, through `resolve` or generate()'s
        refusal of draft_forward="lean"), so the walk over the model's modules is not repeated."""
        why = None if checked else unsupported(model)
        if why:
            raise ValueError(f"the lean decoder step cannot run this model: {why}")
        self.config = cfg = model.config
        decoder = model.get_decoder()
        self.embed = decoder.embed_tokens
        self.blocks = [(b.layer[0], b.layer[1], b.layer[-1]) for b in decoder.block]
        self.final_norm = decoder.final_layer_norm
        self.lm_head = model.lm_head
        # T5 scales the decoder output before a tied head (config.scale_decoder_outputs); mT5 never does
        scaled = SUPPORTED[type(model).__name__] == "t5" and getattr(cfg, "scale_decoder_outputs", False)
        self.scale = cfg.d_model ** -0.5 if scaled else None
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        # transformers buckets memory − query positions; a decoder's bucket depends only on the distance d ≥ 0 back
        # (future keys are masked), and every d ≥ max_distance shares the last bucket: one row of the bias per d.
        attention = decoder.block[0].layer[0].SelfAttention
        self.max_distance = cfg.relative_attention_max_distance
        with torch.no_grad():
            distance = torch.arange(self.max_distance + 1, device=attention.relative_attention_bias.weight.device)
            buckets = attention._relative_position_bucket(-distance, bidirectional=False,
                                                          num_buckets=cfg.relative_attention_num_buckets,
                                                          max_distance=self.max_distance)
            self.distance_bias = attention.relative_attention_bias(buckets).t().contiguous()   # [H, max_d + 1]
        self._encoder_mask = (None, None)

    def _cross_mask(self, encoder_mask: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        """The cross-attention's additive mask (0 / dtype min over the source), as transformers' sdpa path adds it
        to its zero position bias; kept while the encoder mask is the same tensor."""
        key, value = self._encoder_mask
        if key is encoder_mask and value is not None and value.shape[-1] == hidden.shape[1]:
            return value
        if encoder_mask is None:
            value = hidden.new_zeros(1, 1, 1, hidden.shape[1])
        else:
            value = hidden.new_zeros(encoder_mask.shape).masked_fill_(encoder_mask == 0, torch.finfo(hidden.dtype).min)
            value = value[:, None, None, :]
        self._encoder_mask = (encoder_mask, value)
        return value

    def _heads(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """A projection (bias-free, as T5's) split into heads: [B, n, d] → [B, H, n, d_kv]."""
        return F.linear(x, linear.weight).view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)

    def __call__(self, input_ids: torch.Tensor, cache, encoder_hidden: torch.Tensor,
                 encoder_mask: torch.Tensor | None, decoder_mask: torch.Tensor | None) -> torch.Tensor:
        """Feed `input_ids` [B, q] after the `cache`'s positions; `decoder_mask` [B, past + q] over the decoder
        tokens (None: nothing padded), `encoder_mask` [B, S] over the source (None: nothing padded)."""
        batch, q = input_ids.shape
        x = F.embedding(input_ids, self.embed.weight)
        self_cache, cross_cache = cache.self_attention_cache, cache.cross_attention_cache
        past = self_cache.get_seq_length()
        length = past + q
        device = x.device
        distance = torch.arange(past, length, device=device).unsqueeze(1) - torch.arange(length, device=device)
        allowed = (distance >= 0)[None, None]                                            # [1, 1, q, L]
        if decoder_mask is not None:
            allowed = allowed & decoder_mask[:, None, None, :].bool()                    # [B, 1, q, L]
        bias = self.distance_bias[:, distance.clamp(0, self.max_distance)].unsqueeze(0)  # [1, H, q, L]
        self_mask = torch.where(allowed, bias, torch.finfo(x.dtype).min)
        cross_mask = self._cross_mask(encoder_mask, encoder_hidden)
        for i, (sa, ca, ff) in enumerate(self.blocks):
            attention = sa.SelfAttention
            h = _norm(x, sa.layer_norm)
            keys, values = self_cache.update(self._heads(h, attention.k), self._heads(h, attention.v), i)
            out = F.scaled_dot_product_attention(self._heads(h, attention.q), keys, values, attn_mask=self_mask,
                                                 scale=1.0)
            x = _clamp_fp16(x + F.linear(out.transpose(1, 2).reshape(batch, q, -1), attention.o.weight))
            attention = ca.EncDecAttention
            if not cache.is_updated.get(i):
                cross_cache.update(self._heads(encoder_hidden, attention.k), self._heads(encoder_hidden, attention.v),
                                   i)
                cache.is_updated[i] = True
            layer = cross_cache.layers[i]
            h = _norm(x, ca.layer_norm)
            out = F.scaled_dot_product_attention(self._heads(h, attention.q), layer.keys, layer.values,
                                                 attn_mask=cross_mask, scale=1.0)
            x = _clamp_fp16(x + F.linear(out.transpose(1, 2).reshape(batch, q, -1), attention.o.weight))
            dense = ff.DenseReluDense
            h = _norm(x, ff.layer_norm)
            if hasattr(dense, "wi_0"):      # gated (T5 v1.1, flan-t5, mT5)
                h = dense.act(F.linear(h, dense.wi_0.weight)) * F.linear(h, dense.wi_1.weight)
            else:
                h = dense.act(F.linear(h, dense.wi.weight))
            if h.dtype != dense.wo.weight.dtype:
                h = h.to(dense.wo.weight.dtype)
            x = _clamp_fp16(x + F.linear(h, dense.wo.weight))
        x = _norm(x, self.final_norm)
        if self.scale is not None:
            x = x * self.scale
        return F.linear(x, self.lm_head.weight)
