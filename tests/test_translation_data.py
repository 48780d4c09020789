"""The translation pair's data (stairs_decoding.training.gettext_data): cleaning, the split by source package with
near-duplicates kept out of training, the shipped held-out set and its sources manifest, the unigram tokenizer, and
the training pipeline's per-task defaults."""
import json
from pathlib import Path

import pytest

from stairs_decoding import cli
from stairs_decoding.errors import HarnessError
from stairs_decoding.training import apply_task_defaults, build_parser, main
from stairs_decoding.training import gettext_data as gd

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "data" / gd.HELDOUT_FILE
MANIFEST = ROOT / "data" / gd.MANIFEST_FILE


@pytest.mark.parametrize("en, de, kept", [
    ("Delete selected objects", "Ausgewählte Objekte löschen", True),
    ("Delete %(count)s objects", "%(count)s Objekte löschen", True),
    ("Settings from %s", "Einstellungen von %s", True),
    ("Delete", "Löschen", False),                                           # one word
    ("%(name)s: %(value)s", "%(name)s: %(value)s", False),                  # placeholders only
    ("Delete %(count)s objects", "Objekte löschen", False),                 # the translation drops a placeholder
    ("Click <a href='x'>here</a> now", "Klicke <a href='x'>hier</a>", False),   # markup
    ("See https://example.org for more", "Siehe https://example.org", False),
    ("Line one\nline two", "Zeile eins\nZeile zwei", False),
    ("Two words", "Two words", False),                                       # untranslated
    (" ".join(["word"] * 25), " ".join(["Wort"] * 25), False),               # too long
])
def test_clean_pair_rules(en, de, kept):
    assert (gd.clean_pair(en, de) is not None) == kept


def test_near_key_folds_case_punctuation_and_placeholders():
    assert gd.near_key("Delete %(count)s objects.") == gd.near_key("delete %s Objects") == "delete objects"


def test_split_is_by_package_and_keeps_heldout_near_duplicates_out_of_training(monkeypatch, tmp_path):
    """A held-out package's messages are never trained on, nor is a training message whose normalised English side
    equals a held-out one; every example carries its package, version and licence."""
    messages = {
        "Django": [("Delete selected objects", "Ausgewählte Objekte löschen"),
                   ("Save and continue editing", "Sichern und weiter bearbeiten"),
                   ("Delete selected objects.", "Ausgewählte Objekte löschen.")],      # near-dup of itself
        "django-allauth": [("delete Selected objects!", "Ausgewählte Objekte entfernen!"),   # near-dup of Django's
                           ("Sign in with a passkey", "Mit einem Passkey anmelden")],
    }
    sources = (("Django", "1.0", "BSD-3-Clause"), ("django-allauth", "2.0", "MIT"))
    monkeypatch.setattr(gd, "SOURCES", sources)
    monkeypatch.setattr(gd, "HELDOUT_PACKAGES", ("django-allauth",))
    wheels = {}
    for dist, _, _ in sources:
        wheels[dist] = tmp_path / f"{dist}.whl"
        wheels[dist].write_bytes(dist.encode())
    monkeypatch.setattr(gd, "fetch_wheels", lambda cache: wheels)
    by_wheel = {str(wheels[d]): m for d, m in messages.items()}
    monkeypatch.setattr(gd, "catalog_messages",
                        lambda wheel: ((en, de, "pkg/locale/de/LC_MESSAGES/django.mo") for en, de in by_wheel[str(wheel)]))
    train, heldout, manifest = gd.build_examples()
    assert [e["source"] for e in heldout] == [gd.TASK_PREFIX + "delete Selected objects!",
                                              gd.TASK_PREFIX + "Sign in with a passkey"]
    assert [e["source"] for e in train] == [gd.TASK_PREFIX + "Save and continue editing"]
    assert {(e["package"], e["licence"]) for e in heldout} == {("django-allauth", "MIT")}
    assert {s["package"]: (s["split"], s["messages"], s["examples"]) for s in manifest["sources"]} == {
        "django-allauth": ("heldout", 2, 2), "Django": ("train", 3, 1)}


def _mo(messages: dict[str, str]) -> bytes:
    """A GNU .mo catalogue of `messages` (the format `gettext.GNUTranslations` reads): header, two tables, strings."""
    import struct
    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}   # the header: its charset
    keys = sorted(messages)
    ids, strs = [k.encode() for k in keys], [messages[k].encode() for k in keys]
    start = 7 * 4 + 16 * len(keys)
    offsets, blob = [], b""
    for s in ids + strs:
        offsets.append((len(s), start + len(blob)))
        blob += s + b"\0"
    head = struct.pack("7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    return head + b"".join(struct.pack("2I", *o) for o in offsets) + blob


def test_catalogues_are_found_under_locale_or_translations_for_de_and_de_DE_only(tmp_path):
    """Django's `locale/de/`, Babel's `translations/de/` and `translations/de_DE/` are read; Austrian, Swiss and
    other languages' catalogues are not."""
    import zipfile

    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    paths = {"pkg/locale/de/LC_MESSAGES/django.mo": "Objekte löschen",
             "pkg/translations/de/LC_MESSAGES/messages.mo": "Sichern und weiter",
             "pkg/translations/de_DE/LC_MESSAGES/messages.mo": "Mit Passkey anmelden",
             "pkg/locale/de_AT/LC_MESSAGES/django.mo": "Objekte loeschen",
             "pkg/locale/fr/LC_MESSAGES/django.mo": "Supprimer des objets",
             "pkg/locale/de/LC_MESSAGES/django.po": "not a catalogue"}
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in paths.items():
            z.writestr(path, _mo({"Delete objects": text}) if path.endswith(".mo") else text)
    found = sorted((de, path) for _, de, path in gd.catalog_messages(wheel))
    assert found == sorted((text, path) for path, text in list(paths.items())[:3])


def test_shipped_heldout_set_is_clean_split_by_package_and_licensed():
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    manifest = json.loads(MANIFEST.read_text())
    licences = {dist: (version, licence) for dist, version, licence in gd.SOURCES}
    assert len(rows) >= 200
    assert {r["package"] for r in rows} == set(gd.HELDOUT_PACKAGES) == set(manifest["heldout_packages"])
    keys = set()
    for r in rows:
        assert r["source"].startswith(gd.TASK_PREFIX)
        assert gd.clean_pair(r["source"][len(gd.TASK_PREFIX):], r["target"]) == (
            r["source"][len(gd.TASK_PREFIX):], r["target"])
        assert (r["version"], r["licence"]) == licences[r["package"]]
        keys.add(gd.near_key(r["source"]))
    assert len(keys) == len(rows)                                          # no two held-out near-duplicates
    assert {s["package"] for s in manifest["sources"]} == set(licences)
    assert all(len(s["sha256"]) == 64 and s["examples"] <= s["messages"] for s in manifest["sources"])
    assert sum(s["examples"] for s in manifest["sources"] if s["split"] == "heldout") == len(rows)


def test_unigram_tokenizer_has_t5_special_ids_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    from stairs_decoding.training.tokenizer import unigram_tokenizer

    texts = ["Ausgewählte Objekte löschen", "Delete selected objects", "Sichern und weiter bearbeiten"] * 20
    tok = unigram_tokenizer(texts, 60)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    ids = again("Objekte löschen").input_ids
    assert ids[-1] == 1 and (again.pad_token_id, again.eos_token_id, again.unk_token_id) == (0, 1, 2)
    assert again.decode(ids, skip_special_tokens=True) == "Objekte löschen"


def test_task_defaults_and_the_alignment_loss_refused_for_translation():
    parser = build_parser()
    compress = apply_task_defaults(parser.parse_args([]))
    translate = apply_task_defaults(parser.parse_args(["--task", "translate"]))
    assert (compress.out, compress.tokenizer, compress.align_weight) == ("models/tiny-t5", "byte", 1.0)
    assert (translate.out, translate.tokenizer, translate.align_weight) == ("models/tiny-t5-de", "unigram", 0.0)
    assert apply_task_defaults(parser.parse_args(["--task", "translate", "--target-steps", "7"])).target_steps == 7
    with pytest.raises(HarnessError, match="--align-weight: the alignment loss needs"):
        main(["--task", "translate", "--align-weight", "1"])


def test_translate_refusal_is_one_error_line(capsys):
    assert cli.run(lambda: main(["--task", "translate", "--align-weight", "0.5"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --align-weight")


def test_chrf_baselines_copy_the_source_without_its_prefix_and_shuffle_the_references():
    from stairs_decoding.training.evaluate import chrf_baselines

    examples = [{"source": gd.TASK_PREFIX + text, "target": text}
                for text in ("Delete selected objects", "Save and continue editing", "Sign in with a passkey")]
    out = chrf_baselines(examples, prefix=gd.TASK_PREFIX)
    assert out["chrf_source_copied"] == 100.0                       # the prefix is not part of the copy
    assert len(out["chrf_references_shuffled"]) == 3 and max(out["chrf_references_shuffled"]) <= 100.0
    assert chrf_baselines(examples)["chrf_source_copied"] < 100.0   # with the prefix left in, the copy is worse
