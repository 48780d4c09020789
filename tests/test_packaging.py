"""Set-up files agree with each other: environment.yml ↔ pyproject, README ↔ CI, no stray files."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(s) for s in project["dependencies"]}
    pip_names |= {_name(s) for group in project["optional-dependencies"].values() for s in group}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_names = {_name(s) for s in pip_section if not s.startswith("-e")}
    assert conda_names == pip_names


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and re.search(r"^bash scripts/test\.sh$", ci, flags=re.M)


def test_readme_install_command_installs_pinned_torch_first():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]" && python scripts/run.py' in readme
