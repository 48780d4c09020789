"""One module per decoding method; `METHODS` maps a method name to its module."""
from . import draft_greedy, greedy, hf_assisted, stairs, stairs_cached

METHODS = {
    "greedy": greedy,
    "stairs": stairs,
    "stairs_cached": stairs_cached,
    "hf_assisted": hf_assisted,
    "draft_greedy": draft_greedy,
}
NEEDS_DRAFT = ("stairs", "stairs_cached", "hf_assisted", "draft_greedy")
SPECULATIVE = ("stairs", "stairs_cached", "hf_assisted")
SCHEDULES = ("constant", "heuristic")

__all__ = ["METHODS", "NEEDS_DRAFT", "SPECULATIVE", "SCHEDULES"]
