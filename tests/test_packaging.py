"""Set-up files agree with each other and with the code: every import declared, environment.yml ↔ pyproject,
README ↔ CI."""
import ast
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Local modules that are imported by name: the package itself, tests' own modules, scripts imported by tests.
LOCAL = {"stairs_decoding"} | {p.stem for folder in ("scripts", "tests") for p in (ROOT / folder).glob("*.py")}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(spec: str) -> str:
    return _norm(re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0])


def _spec(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower()


def _declared() -> set[str]:
    names = {_name(s) for s in PROJECT["dependencies"]}
    return names | {_name(s) for group in PROJECT["optional-dependencies"].values() for s in group}


def _conda_pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [s for s in section if not s.startswith("-e")]


def _sources():
    """(where, python source) for every module, script, test and notebook code cell."""
    for folder in ("src", "scripts", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                yield f"{path.relative_to(ROOT)} cell {i}", "\n".join(
                    line for line in lines if not line.lstrip().startswith(("%", "!")))


def imported_modules() -> dict[str, str]:
    """Top-level third-party module name -> first place that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for where, source in _sources():
        for node in ast.walk(ast.parse(source, filename=where)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, where)
    return found


def test_every_imported_module_is_declared_in_pyproject():
    """An import that only works because some other package happens to pull its distribution in is a bug
    waiting for a fresh machine (scipy was one)."""
    dists = md.packages_distributions()
    declared = _declared()
    problems = []
    for module, where in sorted(imported_modules().items()):
        owners = {_norm(d) for d in dists.get(module, [])}
        if not owners:
            problems.append(f"{module} (imported in {where}) is not installed by any declared dependency")
        elif not owners & declared:
            problems.append(f"{module} (imported in {where}) comes from {sorted(owners)}, which pyproject.toml "
                            "does not declare")
    assert not problems, "\n".join(problems)


def test_the_audit_sees_the_imports_it_must_see():
    """The audit above proves nothing if it finds nothing: it must see the heavy imports of each area."""
    found = imported_modules()
    assert {"torch", "transformers", "hydra", "pandas", "matplotlib", "sacrebleu", "pytest"} <= set(found)
    assert any(w.startswith("notebooks/") for w in found.values())


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pip_specs = {_name(s): _spec(s) for s in PROJECT["dependencies"]}
    pip_specs |= {_name(s): _spec(s) for group in PROJECT["optional-dependencies"].values() for s in group}
    conda_specs = {_name(s): _spec(s) for s in _conda_pip_section()}
    assert set(conda_specs) == set(pip_specs)
    # the same version bounds, except torch, which conda users get pinned to the CPU build the README uses
    differ = {n for n in pip_specs if n != "torch" and conda_specs[n] != pip_specs[n]}
    assert not differ, {n: (pip_specs[n], conda_specs[n]) for n in differ}


def test_transformers_has_a_lower_and_an_upper_bound():
    spec = next(s for s in PROJECT["dependencies"] if _name(s) == "transformers")
    assert re.search(r">=\s*\d", spec) and re.search(r"<\s*\d", spec), spec


def test_installed_transformers_is_in_the_declared_range():
    from packaging.specifiers import SpecifierSet

    spec = next(s for s in PROJECT["dependencies"] if _name(s) == "transformers")
    assert md.version("transformers") in SpecifierSet(spec[len("transformers"):])


def _readme_block(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- ci:{name} -->\s*```bash\n(.*?)\n```", readme, flags=re.S)
    assert m, f"README.md has no ```bash block after <!-- ci:{name} -->"
    return m.group(1).strip()


def test_readme_commands_are_marked_for_ci_and_ci_reads_them_from_the_readme():
    install, tests = _readme_block("install"), _readme_block("test")
    assert install.startswith("pip install torch==2.13.0 && ") and "scripts/run.py" in install
    assert tests == "bash scripts/test.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ci:install" in ci and "ci:test" in ci and "README.md" in ci
    assert "bash scripts/test.sh" not in ci          # not a copy that could drift from the README


@pytest.mark.parametrize("name", ["install", "test"])
def test_readme_commands_are_single_lines(name):
    assert "\n" not in _readme_block(name)
