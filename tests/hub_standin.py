"""A stand-in for the Hugging Face hub, built on disk for offline tests of the real loading path (issue 29).

`build_standin_hub(hf_home)` writes, under `hf_home` (point HF_HOME at it, with HF_HUB_OFFLINE=1):

* `hub/models--google-t5--t5-small/` and `hub/models--google-t5--t5-large/`: huggingface_hub's own cache layout
  (`refs/main` holding a 40-hex commit, `snapshots/<commit>/<file>` relative symlinks to `blobs/<etag>`, the etag
  being the sha256 of a weights file and the git blob sha1 of any other file, as the hub reports them). Each
  holds a small random `T5ForConditionalGeneration` with the real T5 vocabulary size (32128), saved with
  `save_pretrained` (config.json, generation_config.json, model.safetensors), and a T5 tokenizer (a Unigram
  SentencePiece-style model trained here on the rows below, padded to T5's 32000 pieces, <pad>=0 </s>=1 <unk>=2
  and 100 <extra_id_N> sentinels: 32100 tokens, as in the real checkpoints). The "t5-large" stand-in is larger
  than the "t5-small" one and neither shares any weights with the other.
* `hub/datasets--wmt--wmt16/`: the dataset repo in the same layout, with the repo's own file layout (README.md
  whose YAML declares the `de-en` config and its `data_files`, and `de-en/{train,validation,test}-00000-of-00001
  .parquet` with one column `translation` = {"de", "en"}); a few hand-written rows.
* `datasets/wmt___wmt16/de-en/0.0.0/<commit>/`: the prepared `datasets` cache of that repo, written by `datasets`'
  own Parquet builder from the snapshot above, with the names an online `load_dataset("wmt/wmt16", "de-en")`
  gives it (repo_id wmt/wmt16, dataset_name wmt16, hash = the repo commit). `datasets` (5.2, as installed)
  never reads the hub snapshot in offline mode: `dataset_module_factory` raises OfflineModeIsEnabled before its
  `hf_hub_download` and falls back to `CachedDatasetModuleFactory`, which reads only this prepared cache. So this
  is what the real `datasets.load_dataset("wmt/wmt16", "de-en", split="test[:N]")` reads offline.

Every build writes the same bytes (seeded weights, a canonical order of the trained pieces) and so the same commit
ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

TARGET_ID = "google-t5/t5-large"
DRAFT_ID = "google-t5/t5-small"
DATASET_ID = "wmt/wmt16"
DATASET_CONFIG = "de-en"
T5_VOCAB = 32128            # the checkpoints' config.vocab_size (32100 tokens, padded to a multiple of 128)
T5_PIECES = 32000           # SentencePiece pieces (with <pad> </s> <unk>); then 100 <extra_id_N>
EXTRA_IDS = 100
PREFIX = "translate English to German: "

# model configs: the "t5-large" stand-in is bigger than the "t5-small" one; both original T5 (relu, tied
# embeddings) with a large init scale so that greedy output is varied rather than one token forever
MODELS = {
    TARGET_ID: dict(seed=3, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2),
    DRAFT_ID: dict(seed=7, d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=1),
}

# WMT16 de-en rows (written for this stand-in, news-style like newstest2016)
TEST_ROWS = [
    ("The city council approved the new budget on Tuesday evening after a long debate.",
     "Der Stadtrat hat den neuen Haushalt am Dienstagabend nach einer langen Debatte gebilligt."),
    ("Police said that nobody was injured in the accident on the motorway.",
     "Die Polizei teilte mit, dass bei dem Unfall auf der Autobahn niemand verletzt wurde."),
    ("The company plans to open two new factories in the east of the country next year.",
     "Das Unternehmen plant, im nächsten Jahr zwei neue Fabriken im Osten des Landes zu eröffnen."),
    ("Many residents have complained about the noise from the construction site.",
     "Viele Anwohner haben sich über den Lärm von der Baustelle beschwert."),
    ("The minister rejected the criticism and defended the decision of the government.",
     "Der Minister wies die Kritik zurück und verteidigte die Entscheidung der Regierung."),
    ("Prices for heating oil have risen sharply since the beginning of the winter.",
     "Die Preise für Heizöl sind seit Beginn des Winters stark gestiegen."),
    ("The museum will remain closed for renovation until the end of March.",
     "Das Museum bleibt wegen Renovierungsarbeiten bis Ende März geschlossen."),
    ("Scientists have discovered a new species of frog in the rain forest.",
     "Wissenschaftler haben im Regenwald eine neue Froschart entdeckt."),
]
TRAIN_ROWS = [
    ("Resumption of the session", "Wiederaufnahme der Sitzungsperiode"),
    ("I declare resumed the session of the European Parliament.",
     "Ich erkläre die Sitzungsperiode des Europäischen Parlaments für wieder aufgenommen."),
    ("The weather was fine and the children played in the garden.",
     "Das Wetter war schön und die Kinder spielten im Garten."),
]
VALIDATION_ROWS = [
    ("India and Japan prime ministers meet in Tokyo", "Premierminister Indiens und Japans treffen sich in Tokio"),
    ("The train to Berlin was delayed by forty minutes.", "Der Zug nach Berlin hatte vierzig Minuten Verspätung."),
]
# more text for the tokenizer (the task prefix and the other T5 prefixes, some common words)
EXTRA_TEXT = [
    PREFIX + "The house is wonderful.", "Das Haus ist wunderbar.",
    "translate English to French: The house is wonderful.", "summarize: The report was published today.",
    "translate English to Romanian: Thank you very much.", "cola sentence: The book was read by the students.",
    "Yesterday the government announced new measures against the rising cost of living in the cities.",
    "Gestern kündigte die Regierung neue Maßnahmen gegen die steigenden Lebenshaltungskosten in den Städten an.",
    "We are looking forward to working with you and your team in the coming months.",
    "Wir freuen uns darauf, in den kommenden Monaten mit Ihnen und Ihrem Team zusammenzuarbeiten.",
]

README = """---
annotations_creators:
- no-annotation
language_creators:
- found
language:
- de
- en
license:
- unknown
multilinguality:
- translation
size_categories:
- n<1K
source_datasets:
- extended|europarl_bilingual
task_categories:
- translation
task_ids: []
pretty_name: WMT16
dataset_info:
- config_name: de-en
  features:
  - name: translation
    dtype:
      translation:
        languages:
        - de
        - en
configs:
- config_name: de-en
  data_files:
  - split: train
    path: de-en/train-*
  - split: validation
    path: de-en/validation-*
  - split: test
    path: de-en/test-*
---

# Dataset Card for "wmt16" (offline test stand-in)

A few hand-written rows in the file layout of the hub repo wmt/wmt16 (config de-en only), for offline tests.
"""


# -- huggingface_hub cache layout ---------------------------------------------------------------------------
def repo_folder(repo_type: str, repo_id: str) -> str:
    """huggingface_hub's folder name for a repo: models--org--name / datasets--org--name."""
    return "--".join([f"{repo_type}s", *repo_id.split("/")])


def _etag(path: Path) -> str:
    """The etag the hub reports (and the cache names a blob by): sha256 for LFS (weights), git sha1 otherwise."""
    data = path.read_bytes()
    if path.suffix in (".safetensors", ".bin", ".parquet", ".model") or len(data) > 10 * 2**20:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_cached_repo(hub_cache: Path, repo_type: str, repo_id: str, src: Path) -> str:
    """Put the files of directory `src` into `hub_cache` as one commit of `repo_id` (blobs, snapshot symlinks,
    refs/main), the way `hf_hub_download` leaves them. Returns the commit id (derived from the content)."""
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    etags = {f: _etag(src / f) for f in files}
    commit = hashlib.sha1("".join(f"{f}\0{etags[f]}\n" for f in files).encode()).hexdigest()
    root = hub_cache / repo_folder(repo_type, repo_id)
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    for f in files:
        blob = root / "blobs" / etags[f]
        if not blob.exists():
            shutil.copyfile(src / f, blob)
        link = snapshot / f
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(os.path.relpath(blob, link.parent))
        except OSError:          # no symlinks (e.g. Windows without developer mode): huggingface_hub copies
            shutil.copyfile(blob, link)
    (root / "refs" / "main").write_text(commit)
    return commit


def snapshot_dir(hf_home: Path, repo_type: str, repo_id: str) -> Path:
    root = Path(hf_home) / "hub" / repo_folder(repo_type, repo_id)
    return root / "snapshots" / (root / "refs" / "main").read_text().strip()


def commit_of(hf_home: Path, repo_type: str, repo_id: str) -> str:
    return snapshot_dir(hf_home, repo_type, repo_id).name


# -- the pieces ---------------------------------------------------------------------------------------------
def _corpus() -> list[str]:
    rows = TEST_ROWS + TRAIN_ROWS + VALIDATION_ROWS
    return [PREFIX + en for en, _ in rows] + [en for en, _ in rows] + [de for _, de in rows] + EXTRA_TEXT


def _fillers(n: int, taken: set[str]):
    """`n` distinct filler pieces ("▁kato", "mu", ...) to pad the trained vocabulary to T5's size."""
    cons, vows = "bdfghklmnprstvwz", "aeiou"
    syll = [c + v for c in cons for v in vows]         # 80 syllables
    i = 0
    while n:
        a, b, c = i % 80, (i // 80) % 80, i // 6400
        piece = ("▁" if c % 2 == 0 else "") + syll[a] + syll[b] + (syll[c // 2] if c >= 2 else "")
        i += 1
        if piece not in taken:
            taken.add(piece)
            n -= 1
            yield piece


def _canonical(learned: list[tuple[str, float]], gap: float = 1e-3) -> list[tuple[str, float]]:
    """The trained pieces in an order and with scores that do not depend on the run: the trainer is
    multi-threaded and hash-ordered (ties, the rare characters it appends with scores 1e-4 apart, and the last
    digits of every score vary between runs). Pieces whose scores lie within `gap` of the next form one band;
    a band's pieces get its mean score (to 4 decimals) and are sorted by text."""
    learned = sorted(learned, key=lambda ps: -ps[1])
    bands, band = [], [learned[0]]
    for prev, item in zip(learned, learned[1:]):
        if prev[1] - item[1] < gap:
            band.append(item)
        else:
            bands.append(band)
            band = [item]
    bands.append(band)
    out = []
    for band in bands:
        score = round(sum(s for _, s in band) / len(band), 4)
        out += [(p, score) for p in sorted(p for p, _ in band)]
    return out


def build_tokenizer(out_dir: Path):
    """A T5 tokenizer: a Unigram (SentencePiece-style) model trained on the rows, padded to 32000 pieces,
    <pad>=0 </s>=1 <unk>=2, then <extra_id_99> ... <extra_id_0> (ids 32000..32099, as in T5)."""
    from transformers import T5Tokenizer

    # train a Unigram model with T5's own pre-tokenization (transformers drives the `tokenizers` trainer)
    trained = T5Tokenizer(extra_ids=0).train_new_from_iterator(_corpus(), vocab_size=4000, show_progress=False)
    vocab = [(p, float(s)) for p, s in json.loads(trained.backend_tokenizer.to_str())["model"]["vocab"]]
    assert [p for p, _ in vocab[:3]] == ["<pad>", "</s>", "<unk>"], vocab[:3]
    vocab = vocab[:3] + _canonical(vocab[3:])
    low = min(s for _, s in vocab[3:])
    taken = {p for p, _ in vocab}
    vocab += [(p, round(low - 1.0 - i * 1e-3, 4)) for i, p in enumerate(_fillers(T5_PIECES - len(vocab), taken))]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(EXTRA_IDS - 1, -1, -1)]
    t5 = T5Tokenizer(vocab=vocab, extra_ids=EXTRA_IDS, model_max_length=512)
    assert len(t5) == T5_PIECES + EXTRA_IDS, len(t5)
    t5.save_pretrained(str(out_dir))
    return t5


def build_model(out_dir: Path, *, seed: int, d_model: int, d_ff: int, d_kv: int, num_heads: int, num_layers: int):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=T5_VOCAB, d_model=d_model, d_ff=d_ff, d_kv=d_kv, num_heads=num_heads,
                      num_layers=num_layers, num_decoder_layers=num_layers, feed_forward_proj="relu",
                      tie_word_embeddings=True, dropout_rate=0.0, initializer_factor=10.0, n_positions=512,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    with torch.random.fork_rng(devices=[]):      # seeded, without touching the caller's global generator
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config).eval()
    model.save_pretrained(str(out_dir))
    return model


def _write_parquet(path: Path, rows) -> None:
    import datasets

    features = datasets.Features({"translation": datasets.Translation(languages=["de", "en"])})
    ds = datasets.Dataset.from_dict({"translation": [{"de": de, "en": en} for en, de in rows]}, features=features)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))


def build_dataset_repo(out_dir: Path) -> None:
    """wmt/wmt16's file layout (de-en only): README.md with the YAML configs, de-en/<split>-00000-of-00001.parquet."""
    (out_dir / "README.md").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / "README.md").write_text(README, encoding="utf-8")
    for split, rows in (("train", TRAIN_ROWS), ("validation", VALIDATION_ROWS), ("test", TEST_ROWS)):
        _write_parquet(out_dir / DATASET_CONFIG / f"{split}-00000-of-00001.parquet", rows)


def prepare_dataset_cache(hf_home: Path) -> Path:
    """Prepare `datasets`' cache of wmt/wmt16 de-en from the hub snapshot with datasets' own machinery, under the
    names an online load gives it (HubDatasetModuleFactory.get_module + load_dataset_builder): the module comes
    from the snapshot's README configs (LocalDatasetModuleFactory, the same MetadataConfigs code), the builder
    gets dataset_name wmt16 and hash = the repo's commit, and the folder is the one repo_id wmt/wmt16 names
    (`wmt___wmt16`; the builder itself refuses repo_id with local data files, so it is renamed after). Returns
    the prepared directory."""
    from datasets.load import dataset_module_factory, get_dataset_builder_class

    snapshot = snapshot_dir(hf_home, "dataset", DATASET_ID)
    namespace, name = DATASET_ID.split("/")
    cache = Path(hf_home) / "datasets"
    module = dataset_module_factory(str(snapshot))
    builder_cls = get_dataset_builder_class(module, dataset_name=name)
    builder = builder_cls(cache_dir=str(cache), dataset_name=name, config_name=DATASET_CONFIG, hash=snapshot.name,
                          base_path=str(snapshot),
                          info=module.dataset_infos.get(DATASET_CONFIG) if module.dataset_infos else None)
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)
    assert prepared.relative_to(cache).parts[0] == name, prepared
    final = cache / f"{namespace}___{name}"
    if final.exists():
        shutil.rmtree(final)
    (cache / name).rename(final)
    for lock in cache.glob(f"*_{name}_{DATASET_CONFIG}_*.lock"):    # the builder's lock, named after the old path
        lock.unlink()
    return final / prepared.relative_to(cache / name)


def build_standin_hub(hf_home: Path) -> Path:
    """Write the stand-in under `hf_home` (see the module docstring) and return `hf_home`: run with
    HF_HOME=<it>, HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1 (TRANSFORMERS_OFFLINE=1)."""
    hf_home = Path(hf_home)
    hub = hf_home / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        tmp = Path(tmp)
        build_tokenizer(tmp / "tokenizer")
        for repo_id, spec in MODELS.items():
            src = tmp / repo_folder("model", repo_id)
            build_model(src, **spec)
            for f in (tmp / "tokenizer").iterdir():
                shutil.copyfile(f, src / f.name)
            write_cached_repo(hub, "model", repo_id, src)
        src = tmp / repo_folder("dataset", DATASET_ID)
        build_dataset_repo(src)
        write_cached_repo(hub, "dataset", DATASET_ID, src)
    prepare_dataset_cache(hf_home)
    return hf_home


if __name__ == "__main__":      # python tests/hub_standin.py DIR: build it there (to try the real path by hand)
    import sys

    print(build_standin_hub(Path(sys.argv[1] if len(sys.argv) > 1 else "standin-hf")))
