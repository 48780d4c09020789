"""The tiny pair's models: a byte-level T5 target and a draft built from it (shared frozen encoder, shallow decoder)."""
from __future__ import annotations

import copy


def make_config(d_model, d_ff, heads, layers, d_kv=None, vocab_size=384, dropout=0.0):
    """T5 config with equal encoder and decoder depth: transformers 5.x sizes the decoder KV cache
    from ``num_layers`` (the encoder's), so a deeper decoder crashes cached decoding."""
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv or d_model // heads,
        d_ff=d_ff,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=dropout,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def draft_from_target(target, dec_layers: int):
    """The draft: the target's encoder (frozen copy) under a shallow decoder initialised from the target's first
    ``dec_layers`` decoder blocks (block 0 holds the relative-position bias) and its final norm.

    Only the decoder runs per token, so the draft's per-token cost is set by ``dec_layers``; sharing the target's
    encoder representation lets a one-layer decoder learn to copy in a few hundred distillation steps (a
    from-scratch 1+1-layer draft stayed on the byte-LM plateau).  Encoder deeper than decoder is fine for
    transformers' cache (the reverse crashes it).
    """
    from transformers import T5ForConditionalGeneration

    cfg = copy.deepcopy(target.config)
    cfg.num_decoder_layers = dec_layers
    draft = T5ForConditionalGeneration(cfg)
    keep = {k: v.detach().clone() for k, v in target.state_dict().items()
            if not k.startswith("decoder.block.") or int(k.split(".")[2]) < dec_layers}
    draft.load_state_dict(keep, strict=True)
    for prm in draft.encoder.parameters():  # includes the shared (tied) embedding / LM head
        prm.requires_grad_(False)
    return draft


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
