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

import logging  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

# The tiny random models live in the package so benchmarks and demos build the very same ones.
from stairs_decoding.testing import EOS, PAD, VOCAB, tiny_gpt2, tiny_t5  # noqa: E402,F401

# transformers announces most deprecations through its logger (warning_once), not the warnings module. Its
# warnings are kept (pytest captures them) and any "deprecated" message fails the test that caused it; see the
# pytest filterwarnings in pyproject.toml for the FutureWarning side.
hf_logging.set_verbosity_warning()
torch.set_num_threads(1)


class _DeprecationLog(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "deprecat" in msg.lower():
            self.messages.append(f"{record.name}: {msg}")


_DEPRECATIONS = _DeprecationLog()
logging.getLogger("transformers").addHandler(_DEPRECATIONS)


@pytest.fixture(autouse=True)
def no_transformers_deprecation_messages():
    """A transformers deprecation message logged during a test fails it (after the test body)."""
    _DEPRECATIONS.messages.clear()
    yield
    found, _DEPRECATIONS.messages[:] = list(_DEPRECATIONS.messages), []
    assert not found, "transformers logged a deprecation: " + " | ".join(found)


@pytest.fixture(scope="session")
def t5_pair():
    return tiny_t5(0), tiny_t5(1, d_model=32, layers=1)


@pytest.fixture(scope="session")
def gpt2_pair():
    return tiny_gpt2(0), tiny_gpt2(1, d_model=32, layers=1)
