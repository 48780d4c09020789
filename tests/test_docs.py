"""The README stays a front page and the manual it links holds together: README at most 200 lines and linking
docs/, every relative link in README.md and docs/*.md pointing to a file that exists, a LICENSE, and the README's
Python example running as written on the shipped pair."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or ')'; an optional "title" is ignored
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)


def _links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())          # links inside code blocks are code, not links
    text = re.sub(r"`[^`\n]*`", "", text)           # nor are inline code spans
    return LINK.findall(text)


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) and not target.startswith(("#", "/"))


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the detail belongs in docs/ (at most 200)"
    assert any(t.startswith("docs/") for t in _links(README)), "README.md links no page in docs/"
    assert (ROOT / "docs" / "README.md").exists(), "docs/ has no index (docs/README.md)"


def test_license_exists():
    text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in text and "Copyright" in text


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    missing = []
    for target in _links(page):
        if not _is_relative(target):
            continue
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).resolve().exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to files that do not exist: {missing}"


def test_docs_index_lists_every_page():
    index = set(_links(ROOT / "docs" / "README.md"))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert not pages - index, f"docs/README.md does not list {sorted(pages - index)}"


def test_readme_python_example_runs_on_the_shipped_pair(capsys):
    """The README's Python API example is the user's path: it runs as written, from the repository root."""
    import os

    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    example = next((b for b in blocks if "from stairs_decoding import generate" in b), None)
    assert example, "README.md has no Python example of generate()"
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        namespace: dict = {}
        exec(compile(example, "README.md example", "exec"), namespace)
    finally:
        os.chdir(cwd)
    res, target, batch = namespace["res"], namespace["target"], namespace["batch"]
    ref = target.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=64)
    assert res.tokens[0] == ref[0, 1:].tolist()
    assert capsys.readouterr().out.strip()


def test_readme_custom_generate_example_runs_as_written(tmp_path, capsys):
    """The README's transformers-generate() example, after the export it names, returns model.generate's tensor and
    streams the text."""
    import os
    import subprocess
    import sys

    import torch

    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    first = next(b for b in blocks if "from stairs_decoding import generate" in b)
    second = next(b for b in blocks if "custom_generate=" in b)
    assert '"outputs/custom_generate/stairs_cached"' in second and "scripts/export_custom_generate.py" in \
        README.read_text()
    out = tmp_path / "custom_generate"
    subprocess.run([sys.executable, "scripts/export_custom_generate.py", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        namespace: dict = {}
        exec(compile(first, "README.md example", "exec"), namespace)
        capsys.readouterr()
        second = second.replace('"outputs/custom_generate/', f'"{out.as_posix()}/')
        exec(compile(second, "README.md custom_generate example", "exec"), namespace)
    finally:
        os.chdir(cwd)
    target, batch = namespace["target"], namespace["batch"]
    ref = target.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=64)
    assert torch.equal(namespace["out"], ref)
    assert capsys.readouterr().out.strip()
