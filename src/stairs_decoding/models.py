"""Load the target/draft pair and the tokenizer from config nodes.

A `model`/`draft` config node names its builder with `_target_` (lightning-hydra-template style) and is built
with `hydra.utils.instantiate`, so other builders (e.g. a config-only random-weight architecture) plug in by
writing a new function with the same keyword interface and pointing `_target_` at it. Builders return an
`.eval()` model on the requested device and dtype.

Metadata keys every node carries (used for cheap checks before anything heavy is loaded, never passed to the
builder, except `arch`, which builders take): `name`, `arch` (encoder_decoder | decoder_only), `vocab_size` (the
checkpoint's config.vocab_size); and
where they apply `tokenizer` (load the tokenizer from here instead of `checkpoint`), `chat_template` (wrap prompts
in the tokenizer's chat template) and, for a controlled draft, `alpha` / `alpha_seed` (paper_scale.ControlledDraft).
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch

from .compat import vocab_size
from .errors import HarnessError, StairsError

OFFLINE_HINT = ("or run offline: python scripts/run.py experiment=tiny_cpu (the shipped trained pair) or "
                "experiment=paper_scale_t5_large (the paper's architectures with random weights)")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
META_KEYS = ("name", "vocab_size", "tokenizer", "chat_template", "alpha", "alpha_seed")   # `arch` is a builder arg
_CACHE: dict = {}


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise HarnessError(f"unknown device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"device={device!r} but CUDA is not available; use device=auto or device=cpu")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.float32
    if str(dtype) not in DTYPES:
        raise HarnessError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[str(dtype)]


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the Hugging Face hub (no retries); False under HF_HUB_OFFLINE=1."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    if os.environ.get("TRANSFORMERS_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


_OFFLINE: bool | None = None


def set_offline_if_unreachable() -> bool:
    """Probe the hub once; when unreachable, switch huggingface_hub/transformers/datasets to offline mode so
    cached files load without minutes of retries. Returns True when offline."""
    global _OFFLINE
    if _OFFLINE is None:
        _OFFLINE = not hub_reachable()
        if _OFFLINE:
            for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
                os.environ[var] = "1"
            try:
                import huggingface_hub.constants as hub_constants

                hub_constants.HF_HUB_OFFLINE = True
            except Exception:  # noqa: BLE001
                pass
            try:
                import datasets.config as ds_config

                ds_config.HF_HUB_OFFLINE = True
                ds_config.HF_DATASETS_OFFLINE = True
            except Exception:  # noqa: BLE001
                pass
    return _OFFLINE


def _cache_dir() -> str:
    try:
        import huggingface_hub.constants as hub_constants

        return hub_constants.HF_HUB_CACHE
    except Exception:  # noqa: BLE001
        return os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")


def offline_error(checkpoint: str) -> HarnessError:
    return HarnessError(f"cannot load checkpoint {checkpoint!r}: not in the local cache ({_cache_dir()}) and the "
                        f"Hugging Face hub is unreachable. Run with hub access once, {OFFLINE_HINT}")


def check_available(node) -> None:
    """Fail fast (before data and weights load) when a hub checkpoint is neither cached nor downloadable."""
    if node is None or is_none_node(node):
        return
    d = _node_dict(node)
    checkpoint = d.get("checkpoint")
    if not checkpoint or not isinstance(checkpoint, str):
        return
    if _is_local(checkpoint):
        if not os.path.isdir(os.path.expanduser(checkpoint)):
            raise HarnessError(f"cannot load model {checkpoint!r}: no such directory. For the shipped tiny pair run: "
                               "python scripts/train_tiny_pair.py --out models/tiny-t5")
        return
    if set_offline_if_unreachable():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(checkpoint, "config.json", revision=d.get("revision")), str):
            raise offline_error(checkpoint)


def _is_local(checkpoint: str) -> bool:
    return os.path.isabs(checkpoint) or checkpoint.startswith((".", "~")) or os.path.isdir(checkpoint)


def _from_pretrained(loader, checkpoint: str, what: str, **kwargs):
    """`loader.from_pretrained` with offline handling: cached files only when the hub is unreachable, and one
    clear error line (naming the checkpoint and the offline alternative) when it is not cached."""
    if _is_local(checkpoint):
        path = os.path.expanduser(checkpoint)
        if not os.path.isdir(path):
            raise HarnessError(f"cannot load {what} {checkpoint!r}: no such directory. For the shipped tiny pair "
                               "run: python scripts/train_tiny_pair.py --out models/tiny-t5")
        try:
            return loader.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as e:
            raise HarnessError(f"cannot load {what} {checkpoint!r}: {str(e).splitlines()[0]}") from None
    online = not set_offline_if_unreachable()
    try:
        return loader.from_pretrained(checkpoint, local_files_only=not online, **kwargs)
    except (OSError, ValueError) as e:
        if not online:
            raise offline_error(checkpoint) from None
        raise HarnessError(f"cannot load {what} {checkpoint!r}: {str(e).splitlines()[0]}") from None


def share_encoder(target, draft) -> bool:
    """If `draft`'s encoder has exactly the target's weights, make it the very same module and return True.

    `generate()` then runs the encoder once and gives its output to both models (identical numbers, one pass
    less per input). The shipped tiny draft is built this way (training.architecture.draft_from_target). Output is
    unchanged either way: the draft only proposes.
    """
    if draft is None or not (target.config.is_encoder_decoder and draft.config.is_encoder_decoder):
        return False
    t_enc, d_enc = target.get_encoder(), draft.get_encoder()
    if t_enc is d_enc:
        return True
    t_sd, d_sd = t_enc.state_dict(), d_enc.state_dict()
    if t_sd.keys() != d_sd.keys() or any(t_sd[k].shape != d_sd[k].shape or t_sd[k].dtype != d_sd[k].dtype
                                         or t_sd[k].device != d_sd[k].device or not torch.equal(t_sd[k], d_sd[k])
                                         for k in t_sd):
        return False
    if getattr(draft, "encoder", None) is not d_enc:   # only models that keep it as `.encoder` (T5)
        return False
    draft.encoder = t_enc
    return True


def load_pretrained(checkpoint: str, *, arch: str = "encoder_decoder", dtype="float32", device="auto",
                    revision: str | None = None, device_map=None, **from_pretrained_kwargs):
    """Builder for a pretrained checkpoint (hub id or local `save_pretrained` directory); `arch` (encoder_decoder |
    decoder_only) picks the Auto class that loads it. `device_map` ("auto", or a dict) is handed to
    `from_pretrained` for a model that does not fit one device (accelerate places its layers; `device` is then
    not used); inputs go to its embedding's device, and every GPU it uses is synchronised for timing."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    if arch not in ("encoder_decoder", "decoder_only"):
        raise HarnessError(f"model {checkpoint!r}: arch must be encoder_decoder or decoder_only, got {arch!r}")
    loader = AutoModelForSeq2SeqLM if arch == "encoder_decoder" else AutoModelForCausalLM
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    kwargs = dict(from_pretrained_kwargs)
    if revision:
        kwargs["revision"] = revision
    if device_map is not None:
        from omegaconf import DictConfig, OmegaConf

        kwargs["device_map"] = OmegaConf.to_container(device_map) if isinstance(device_map, DictConfig) \
            else device_map
        return _from_pretrained(loader, checkpoint, "model", dtype=dt, **kwargs).eval()
    model = _from_pretrained(loader, checkpoint, "model", dtype=dt, **kwargs)
    return model.to(dev).eval()


def _node_dict(node) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else dict(node)


def is_none_node(node) -> bool:
    if node is None:
        return True
    d = _node_dict(node)
    return not d.get("_target_")


def node_name(node) -> str:
    """The name a model/draft node is recorded under ("none" for no draft)."""
    if is_none_node(node):
        return "none"
    d = _node_dict(node)
    return str(d.get("name") or d.get("checkpoint"))


def build_model(node, *, dtype="float32", device="auto"):
    """Instantiate a `model`/`draft` node; dtype/device come from the run config unless the node sets them.
    Models are cached per process so a multirun on the basic launcher loads each checkpoint once."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    d = _node_dict(node)
    for key, value in (("dtype", dtype), ("device", device)):   # the node's own value (not null) wins
        if d.get(key) is None:
            d[key] = value
    if "device_map" in d and d["device_map"] is None:
        del d["device_map"]
    name = d.get("name")
    key = repr(sorted(d.items(), key=lambda kv: kv[0]))   # the whole node: a controlled draft gets its own object
    d = {k: v for k, v in d.items() if k not in META_KEYS}
    if key in _CACHE:
        return _CACHE[key]
    try:
        model = instantiate(d)
    except InstantiationException as e:
        cause = e.__cause__ if isinstance(e.__cause__, StairsError) else None
        if cause is not None:
            raise cause from None
        raise HarnessError(f"cannot build model {name!r}: {str(e).splitlines()[0]}") from None
    if hasattr(model, "eval"):
        model.eval()
    _CACHE[key] = model
    return model


def load_tokenizer(node):
    from transformers import AutoTokenizer

    d = _node_dict(node)
    source = d.get("tokenizer") or d.get("checkpoint")
    if not source:
        raise HarnessError(f"model {d.get('name')!r} names no checkpoint or tokenizer to load a tokenizer from")
    return _from_pretrained(AutoTokenizer, source, "tokenizer")


def check_pair_config(model_node, draft_node) -> None:
    """Cheap compatibility checks from the config metadata alone (before any weights are loaded)."""
    if is_none_node(draft_node):
        return
    m, d = _node_dict(model_node), _node_dict(draft_node)
    mv, dv = m.get("vocab_size"), d.get("vocab_size")
    if mv is not None and dv is not None and int(mv) != int(dv):
        raise HarnessError(f"draft {d.get('name')!r} has a vocabulary of {dv} tokens but target {m.get('name')!r} "
                           f"has {mv}; pick a draft from the same family")
    ma, da = m.get("arch"), d.get("arch")
    if ma and da and ma != da:
        raise HarnessError(f"draft {d.get('name')!r} is {da} but target {m.get('name')!r} is {ma}; both must be "
                           "encoder-decoder or both decoder-only")


def check_pair_models(target, draft, model_name: str, draft_name: str) -> None:
    if draft is None:
        return
    tv, dv = vocab_size(target), vocab_size(draft)
    if tv != dv:
        raise HarnessError(f"draft {draft_name!r} has a vocabulary of {dv} tokens but target {model_name!r} has {tv}")
    if bool(target.config.is_encoder_decoder) != bool(draft.config.is_encoder_decoder):
        raise HarnessError(f"draft {draft_name!r} and target {model_name!r} must both be encoder-decoder or both "
                           "decoder-only")


# -- what was loaded: the label a run goes by, and the facts behind it ---------------------------------------------
def node_label(node) -> str:
    """What a run calls the model a node loads: the hub id of its checkpoint (with "@<revision>" when the node pins
    one), or its local path (relative to the checkout when inside it); a node without a checkpoint (an
    architecture with random weights, a controlled draft) goes by its config name. A config name such as
    `t5_large` thus labels nothing the user pointed elsewhere (model.checkpoint=...)."""
    if is_none_node(node):
        return "none"
    d = _node_dict(node)
    checkpoint = d.get("checkpoint")
    if not checkpoint or not isinstance(checkpoint, str):
        return node_name(node)
    if _is_local(checkpoint):
        from .config import repo_root

        path = os.path.abspath(os.path.expanduser(checkpoint))
        root = os.path.abspath(repo_root())
        return os.path.relpath(path, root) if path.startswith(root + os.sep) else checkpoint
    return checkpoint + (f"@{d['revision']}" if d.get("revision") else "")


def hub_commit(checkpoint: str, revision: str | None) -> str | None:
    """The hub commit a checkpoint's files were loaded from (its snapshot in the local cache, which from_pretrained
    has just filled or read); the pinned revision, or None, for a local directory or when the cache cannot say."""
    if _is_local(checkpoint):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from transformers.utils.hub import extract_commit_hash

        path = try_to_load_from_cache(checkpoint, "config.json", revision=revision)
        return extract_commit_hash(path, None) if isinstance(path, str) else revision
    except Exception:  # noqa: BLE001 — a label's detail, never a reason to stop a run
        return revision


def weights_fingerprint(model) -> str:
    """12 hex digits of a hash over every tensor's name, shape, dtype and first and last 64 values (as loaded, in
    the run's dtype): cheap at any size, and different for different weights in practice."""
    import hashlib

    h = hashlib.blake2b(digest_size=6)
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        sample = torch.cat([flat[:64], flat[-64:]]).to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(sample.view(torch.uint8).numpy().tobytes() if sample.numel() else b"")
    return h.hexdigest()


def describe_loaded(model, node) -> dict | None:
    """env.json's record of one loaded model: its label and config name, checkpoint and revision (the hub commit
    its files came from, when loaded from the hub or its cache), architecture, size and weight fingerprint."""
    if model is None:
        return None
    d, cfg = _node_dict(node), model.config
    checkpoint = d.get("checkpoint") if isinstance(d.get("checkpoint"), str) else None
    return {"label": node_label(node), "config": node_name(node), "checkpoint": node_label(node) if checkpoint else None,
            "revision": hub_commit(checkpoint, d.get("revision")) if checkpoint else None,
            "architecture": d.get("architecture") or (cfg.architectures or [type(model).__name__])[0],
            "class": type(model).__name__, "model_type": cfg.model_type,
            "random_weights": bool(d.get("architecture")),
            "parameters": sum(p.numel() for p in model.parameters()),
            "fingerprint": weights_fingerprint(model)}
