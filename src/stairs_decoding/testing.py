"""Tiny random model pairs built from configs (no downloads): for benchmarks, demos and harness tests.

The tests use these too (tests/conftest.py). A larger init scale so greedy output is varied
(the default init makes a random T5 emit only token 0).
"""
from __future__ import annotations

import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

VOCAB = 128
EOS = 1
PAD = 0


def tiny_t5(seed: int, d_model: int = 64, layers: int = 2, vocab: int = VOCAB) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab, d_model=d_model, d_ff=2 * d_model, d_kv=16, num_heads=4,
                      num_layers=layers, num_decoder_layers=layers, initializer_factor=10.0,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      decoder_start_token_id=PAD, eos_token_id=EOS, pad_token_id=PAD)
    return T5ForConditionalGeneration(config).eval()


def tiny_gpt2(seed: int, d_model: int = 64, layers: int = 2, vocab: int = VOCAB) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=d_model, n_layer=layers, n_head=4, n_positions=256,
                        initializer_range=1.0, bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD)
    return GPT2LMHeadModel(config).eval()


def related_draft(model, sigma: float, seed: int = 5):
    """A draft that agrees with `model` most of the time: a copy of its weights plus seeded Gaussian noise
    (std = sigma · the parameter's std)."""
    import copy

    draft = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=g) * sigma * p.std())
    return draft


def save_tiny_byt5_pair(out_dir: str, *, target_seed: int = 0, draft_seed: int = 1, d_model: int = 64,
                        layers: int = 2) -> tuple[str, str]:
    """Save a random T5 target/draft pair with the ByT5 tokenizer (vocab 384), in the shipped pair's layout.

    Returns (target_dir, draft_dir). Used by tests until/unless `models/tiny-t5/` exists.
    """
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    vocab = len(tok)
    paths = []
    for name, seed, dm, nl in (("target", target_seed, d_model, layers), ("draft", draft_seed, d_model // 2, 1)):
        path = os.path.join(out_dir, name)
        model = tiny_t5(seed, d_model=dm, layers=nl, vocab=vocab)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]
