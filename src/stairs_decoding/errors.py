"""Errors the harness reports as one `error: ...` line (exit status 2) instead of a traceback."""
from .generation import GenerationInputError


class HarnessError(RuntimeError):
    """Bad configuration, missing checkpoint or data set, unreachable hub: one readable line."""


USER_ERRORS = (HarnessError, GenerationInputError)
