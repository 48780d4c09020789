"""Exact "stairs" assisted greedy generation (arXiv 2407.19947) and a KV-cached variant."""
from .generation import GenerationInputError, generate
from .methods import METHODS
from .stats import DecodingStats, GenerationResult

__version__ = "0.1.0"
__all__ = ["generate", "GenerationResult", "DecodingStats", "GenerationInputError", "METHODS"]
