"""The shape the code promises (docs/harness.md "How it fits together"): short functions in src/, thin scripts, one registry."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
MAX_SCRIPT_LINES = 120


def _functions():
    for path in sorted((ROOT / "src" / "stairs_decoding").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.relative_to(ROOT)}:{node.name}", node.end_lineno - node.lineno + 1


def test_no_function_in_src_is_longer_than_80_lines():
    long = [(name, n) for name, n in _functions() if n > MAX_FUNCTION_LINES]
    assert not long, long


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_scripts_are_thin_entry_points(script):
    text = (ROOT / "scripts" / script).read_text()
    assert len(text.splitlines()) <= MAX_SCRIPT_LINES
    for sign in ("perf_counter", "synchronize", "summary_rows", "statistics.", "def summar", "sys.exit(\"error"):
        assert sign not in text, f"{script} holds {sign!r}: timing, summaries and errors live in src/"


def test_method_facts_live_only_in_the_registry():
    """No module outside methods/ lists method names: they read the registry (methods.METHODS)."""
    from stairs_decoding.methods import METHODS

    offenders = []
    for path in sorted((ROOT / "src" / "stairs_decoding").rglob("*.py")):
        if "methods" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in METHODS]
                if len(names) >= 2:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {names}")
    assert not offenders, offenders
