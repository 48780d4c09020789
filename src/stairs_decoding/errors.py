"""User errors: every one is a `StairsError` with a one-line message; `cli.run` turns it into `error: ...` and exit
status 2 for every entry point (scripts/run.py, make_figures.py, train_tiny_pair.py).

Subclasses say where the error was found; they also derive from the built-in type a caller would expect
(`ValueError` for bad arguments), so `except ValueError` keeps working.
"""


class StairsError(Exception):
    """Bad input, configuration or environment, found before (or instead of) expensive work: one readable line."""


class HarnessError(StairsError, RuntimeError):
    """Bad configuration, missing checkpoint or data set, unreachable hub, an unusable run directory."""


class GenerationInputError(StairsError, ValueError):
    """Bad input to `generate()`, raised before any generation work."""


class SettingError(GenerationInputError):
    """A generation setting that cannot be honoured exactly (refused by name)."""


class ArchitectureError(StairsError, ValueError):
    """An unknown architecture name or a config node that contradicts it (paper-scale builders)."""


class NoRunsError(StairsError, FileNotFoundError):
    """No run directories (or none of the kind a figure needs) where the report looked."""
