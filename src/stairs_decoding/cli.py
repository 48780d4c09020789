"""The one place where user errors become `error: <message>` on stderr and exit status 2 (Ctrl-C: 130)."""
from __future__ import annotations

import sys
from collections.abc import Callable

from .errors import StairsError


def run(main: Callable[[], object], *, on_interrupt: Callable[[], str] | None = None) -> int:
    """Call `main()`; return its int result (0 for None), 2 after a `StairsError`, 130 after Ctrl-C.

    `on_interrupt()` gives the line printed after Ctrl-C (for example, how to resume)."""
    try:
        result = main()
    except StairsError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted" + (f": {on_interrupt()}" if on_interrupt else ""), file=sys.stderr, flush=True)
        return 130
    return int(result or 0)


def checked(check: Callable[[], object]):
    """`check()`'s result; after a `StairsError` its `error:` line and exit status 2 (for checks before Hydra)."""
    try:
        return check()
    except StairsError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
