"""Shared test setup: offline, temp caches, tiny random models built from configs (no downloads)."""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="stairs-tests-")
for _var, _sub in (("HF_HOME", "hf"), ("WANDB_DIR", "wandb"), ("MPLCONFIGDIR", "mpl")):
    os.environ.setdefault(_var, os.path.join(_TMP, _sub))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
torch.set_num_threads(1)

VOCAB = 128
EOS = 1
PAD = 0


def tiny_t5(seed: int, d_model: int = 64, layers: int = 2, vocab: int = VOCAB) -> T5ForConditionalGeneration:
    """A random T5 (v1.1 shape) whose greedy output is varied: the default init scale emits only token 0."""
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab, d_model=d_model, d_ff=2 * d_model, d_kv=16, num_heads=4,
                      num_layers=layers, num_decoder_layers=layers, initializer_factor=10.0,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      decoder_start_token_id=PAD, eos_token_id=EOS, pad_token_id=PAD)
    return T5ForConditionalGeneration(config).eval()


def tiny_gpt2(seed: int, d_model: int = 64, layers: int = 2, vocab: int = VOCAB) -> GPT2LMHeadModel:
    """A random decoder-only model (GPT-2 shape) with varied greedy output."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=d_model, n_layer=layers, n_head=4, n_positions=256,
                        initializer_range=1.0, bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def t5_pair():
    return tiny_t5(0), tiny_t5(1, d_model=32, layers=1)


@pytest.fixture(scope="session")
def gpt2_pair():
    return tiny_gpt2(0), tiny_gpt2(1, d_model=32, layers=1)
