"""Exact "stairs" assisted greedy generation (arXiv 2407.19947) and a KV-cached variant.

The public names are imported on first use, so that light submodules (`stairs_decoding.config`, used by
scripts/run.py before Hydra has checked the overrides) do not pull in torch and transformers."""
__version__ = "0.1.0"
__all__ = ["generate", "GenerationResult", "DecodingStats", "GenerationInputError", "METHODS"]

_WHERE = {"generate": "generation", "GenerationInputError": "errors", "METHODS": "methods",
          "DecodingStats": "stats", "GenerationResult": "stats"}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
