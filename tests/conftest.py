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
from transformers.utils import logging as hf_logging  # noqa: E402

# The tiny random models live in the package so benchmarks and demos build the very same ones.
from stairs_decoding.testing import EOS, PAD, VOCAB, tiny_gpt2, tiny_t5  # noqa: E402,F401

hf_logging.set_verbosity_error()
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def t5_pair():
    return tiny_t5(0), tiny_t5(1, d_model=32, layers=1)


@pytest.fixture(scope="session")
def gpt2_pair():
    return tiny_gpt2(0), tiny_gpt2(1, d_model=32, layers=1)
