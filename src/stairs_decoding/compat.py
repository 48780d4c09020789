"""What differs between the supported transformers versions, in one place.

transformers 5.24 renamed the KV-cache argument and output field from ``past_key_values`` to ``cache`` (the old
name is deprecated, removal announced for 5.40); 5.23 knows only ``past_key_values``. Every forward call and
every forward hook in this package goes through these helpers, so no call passes a deprecated keyword.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

CACHE_NAMES = ("cache", "past_key_values")


@lru_cache(maxsize=None)
def _cache_kwarg_of(forward_cls: type) -> str:
    forward = getattr(forward_cls, "forward")
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwarg(model) -> str:
    """The name under which `model.forward` takes its KV cache (``cache`` from 5.24, else ``past_key_values``)."""
    return _cache_kwarg_of(type(model))


def with_cache(model, cache) -> dict:
    """``{name: cache}`` for a forward call of `model`."""
    return {cache_kwarg(model): cache}


def output_cache(output):
    """The KV cache a forward call returned (a ModelOutput is a dict of its non-None fields), read by key so
    that no deprecated attribute is touched."""
    for name in CACHE_NAMES:
        if name in output.keys():
            return output[name]
    return None


def hook_cache(kwargs: dict):
    """The KV cache handed to a forward call, as seen by a ``with_kwargs`` forward pre-hook (either name)."""
    for name in CACHE_NAMES:
        if kwargs.get(name) is not None:
            return kwargs[name]
    return None


def vocab_size(model) -> int:
    """The decoder's vocabulary size (a composite config, such as a vision encoder-decoder's, keeps it in its decoder's
    config)."""
    value = getattr(model.config, "vocab_size", None)
    return int(value) if value is not None else int(model.config.get_text_config(decoder=True).vocab_size)
