"""Issue 29 point 2: the real loading path end to end, offline, against a stand-in for the hub.

tests/hub_standin.py writes a Hugging Face home in the hub's own cache layout: small random T5 checkpoints under
the real ids google-t5/t5-large and google-t5/t5-small (with a real T5 Unigram tokenizer trained from text), and
WMT16 de-en (a few rows) as the hub repo wmt/wmt16 plus the prepared `datasets` cache that the real
`datasets.load_dataset("wmt/wmt16", "de-en", split=...)` reads offline. Everything runs in subprocesses with
HF_HOME pointing at it (huggingface_hub, transformers and datasets read HF_HOME / the offline flags into constants
at import), through the same calls the real task makes: there is no test-only branch in the loading code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hub_standin as hs

ROOT = Path(__file__).resolve().parents[1]
N_EXAMPLES, NEW_TOKENS, KS = 2, 8, (1, 2)
PAPER_METHODS = ("greedy", "stairs", "stairs_cached", "hf_assisted", "hf_greedy")


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return hs.build_standin_hub(tmp_path_factory.mktemp("standin") / "hf")


@pytest.fixture(scope="module")
def hub_env(standin, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hub-env")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE",
                        "HF_ENDPOINT", "WANDB_API_KEY")}
    env.update(HF_HOME=str(standin), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               WANDB_MODE="disabled", WANDB_DIR=str(tmp / "wandb"), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    return env


def _python(code: str, env: dict, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# Run in a fresh interpreter with HF_HOME at the stand-in; argv[1] is a JSON object of parameters. Prints one line
# "RESULT <json>" with what the libraries and our loaders returned.
LOADERS = r"""
import json, sys
import torch
import datasets, huggingface_hub.constants as hc
from huggingface_hub import try_to_load_from_cache
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from stairs_decoding import models, tasks

a = json.loads(sys.argv[1])
out = {"offline": [hc.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE]}
ds = datasets.load_dataset(a["dataset"], a["config"], split="test[:4]")     # the call hub_examples makes
out["rows"] = [r["translation"] for r in ds]
out["cache_files"] = [f["filename"] for f in ds.cache_files]
tok = AutoTokenizer.from_pretrained(a["draft"])
text = a["prefix"] + out["rows"][0]["en"]
ids = tok(text).input_ids
out["tok"] = dict(cls=type(tok).__name__, n=len(tok), ids=ids, specials=tok.convert_ids_to_tokens([0, 1, 2]),
                  sentinels=tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>"]),
                  special_ids=[tok.pad_token_id, tok.eos_token_id, tok.unk_token_id],
                  roundtrip=tok.decode(ids, skip_special_tokens=True))
out["models"] = {}
for repo in (a["target"], a["draft"]):
    node = {"_target_": "stairs_decoding.models.load_pretrained", "name": repo, "checkpoint": repo,
            "arch": "encoder_decoder"}
    models.check_available(node)                      # raises when the cache does not hold it
    ours = models.load_pretrained(repo, device="cpu")
    auto = AutoModelForSeq2SeqLM.from_pretrained(repo)
    ours_tok = models.load_tokenizer(node)
    gens = []
    for row in out["rows"][:a["n"]]:
        x = torch.tensor([tok(a["prefix"] + row["en"]).input_ids])
        with torch.no_grad():
            g = ours.generate(x, max_new_tokens=a["new_tokens"], do_sample=False)[0, 1:].tolist()
        gens.append(dict(ids=g, text=tok.decode(g, skip_special_tokens=True)))
    same = all(torch.equal(p, q) for p, q in zip(ours.state_dict().values(), auto.state_dict().values()))
    out["models"][repo] = dict(
        cls=type(ours).__name__, vocab=ours.config.vocab_size, d_model=ours.config.d_model,
        params=sum(p.numel() for p in ours.parameters()), same_as_auto=same,
        tokenizer_cls=type(ours_tok).__name__, tokenizer_ids=ours_tok(text).input_ids,
        config_path=try_to_load_from_cache(repo, "config.json"), gens=gens)
out["examples"] = tasks.hub_examples(a["dataset"], name=a["config"], split="test", source_field="translation.en",
                                     reference_field="translation.de", prefix=a["prefix"], limit=3)
print("RESULT " + json.dumps(out))
"""


# -- the stand-in itself ------------------------------------------------------------------------------------
def test_standin_is_in_the_hub_cache_layout(standin):
    hub = standin / "hub"
    for repo_type, repo_id in (("model", hs.TARGET_ID), ("model", hs.DRAFT_ID), ("dataset", hs.DATASET_ID)):
        root = hub / hs.repo_folder(repo_type, repo_id)
        commit = (root / "refs" / "main").read_text()
        assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit), commit
        snapshot = root / "snapshots" / commit
        files = [p for p in snapshot.rglob("*") if p.is_file()]
        assert files, snapshot
        for f in files:
            if f.is_symlink():   # as huggingface_hub leaves them: relative links into blobs/
                assert not os.path.isabs(os.readlink(f))
                assert f.resolve().parent == (root / "blobs").resolve(), f
    model_files = {p.name for p in hs.snapshot_dir(standin, "model", hs.TARGET_ID).iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= model_files
    data = hs.snapshot_dir(standin, "dataset", hs.DATASET_ID)
    assert (data / "README.md").is_file()
    assert {p.name for p in (data / "de-en").iterdir()} == {f"{s}-00000-of-00001.parquet"
                                                            for s in ("train", "validation", "test")}


def test_the_libraries_and_our_loaders_read_the_standin_offline(standin, hub_env):
    """transformers' Auto classes, datasets.load_dataset and this project's loaders (check_available,
    load_pretrained, load_tokenizer, hub_examples) with HF_HOME at the stand-in and every offline flag set."""
    params = dict(dataset=hs.DATASET_ID, config=hs.DATASET_CONFIG, target=hs.TARGET_ID, draft=hs.DRAFT_ID,
                  prefix=hs.PREFIX, n=N_EXAMPLES, new_tokens=NEW_TOKENS)
    p = _python(LOADERS, hub_env, json.dumps(params))
    assert p.returncode == 0, p.stderr[-4000:]
    out = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])
    assert out["offline"] == [True, True]

    # the data set: the mirror's test split, read from the prepared cache of wmt/wmt16 (de-en) under HF_HOME
    assert out["rows"] == [{"de": de, "en": en} for en, de in hs.TEST_ROWS[:4]]
    commit = hs.commit_of(standin, "dataset", hs.DATASET_ID)
    prepared = standin / "datasets" / "wmt___wmt16" / "de-en" / "0.0.0" / commit
    assert out["cache_files"] and all(Path(f).parent == prepared for f in out["cache_files"]), out["cache_files"]
    assert [e["source"] for e in out["examples"]] == [hs.PREFIX + en for en, _ in hs.TEST_ROWS[:3]]
    assert [e["reference"] for e in out["examples"]] == [de for _, de in hs.TEST_ROWS[:3]]

    # the tokenizer: T5's layout (32000 pieces + 100 sentinels), </s> appended, the prefix in known pieces
    t = out["tok"]
    assert t["cls"] == "T5Tokenizer" and t["n"] == hs.T5_PIECES + hs.EXTRA_IDS
    assert t["specials"] == ["<pad>", "</s>", "<unk>"] and t["special_ids"] == [0, 1, 2]
    assert t["sentinels"] == [32099, 32000]
    assert t["ids"][-1] == 1 and 2 not in t["ids"] and 1 not in t["ids"][:-1]
    assert t["roundtrip"] == hs.PREFIX + out["rows"][0]["en"]

    # the models: the real ids, T5 with T5's vocabulary, "t5-large" bigger than "t5-small", varied greedy output
    target, draft = out["models"][hs.TARGET_ID], out["models"][hs.DRAFT_ID]
    for m, repo in ((target, hs.TARGET_ID), (draft, hs.DRAFT_ID)):
        assert m["cls"] == "T5ForConditionalGeneration" and m["vocab"] == hs.T5_VOCAB
        assert m["same_as_auto"] and m["tokenizer_cls"] == "T5Tokenizer" and m["tokenizer_ids"] == t["ids"]
        assert m["config_path"] == str(hs.snapshot_dir(standin, "model", repo) / "config.json")
        for g in m["gens"]:
            assert len(g["ids"]) == NEW_TOKENS and len(set(g["ids"])) >= 3, g   # not one token forever
            assert isinstance(g["text"], str) and g["text"].strip(), g
    assert target["d_model"] > draft["d_model"] and target["params"] > draft["params"]
    assert target["gens"] != draft["gens"]


# -- the headline command ------------------------------------------------------------------------------------
def test_headline_command_runs_the_paper_experiment_offline(standin, hub_env, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "run.py"), "model=t5_large", "draft=t5_small",
           f"task.num_examples={N_EXAMPLES}", f"task.max_new_tokens={NEW_TOKENS}",
           f"sweep.num_draft_tokens=[{','.join(map(str, KS))}]", "warmup_examples=0", "logger=none",
           "progress=false", f"hydra.run.dir={run_dir}",
           # shorter still: one thread (no oversubscription on a busy 2-core runner), a short c measurement
           "threads=1", "cost_ratio.rounds=1", "cost_ratio.steps=6"]
    p = subprocess.run(cmd, env=hub_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-4000:]

    from stairs_decoding.methods import METHODS

    recs = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert (run_dir / "env.json").is_file()
    cells = {(r["method"], r["k"]) for r in recs}
    methods = {m for m, _ in cells}
    assert set(PAPER_METHODS) <= methods, methods
    for m in methods:
        ks = {k for mm, k in cells if mm == m}
        assert ks == (set(KS) if METHODS[m].uses_k else {0}), (m, ks)
    # one record per (example, cell), for the first N_EXAMPLES rows of the mirror's test split
    keys = [(r["example_id"], r["method"], r["k"]) for r in recs]
    assert len(keys) == len(set(keys)) == N_EXAMPLES * len(cells)
    assert sorted({r["reference"] for r in recs}) == sorted(de for _, de in hs.TEST_ROWS[:N_EXAMPLES])
    assert {r["task"] for r in recs} == {"wmt_en_de"}
    greedy = {r["example_id"]: r["tokens"] for r in recs if r["method"] == "greedy"}
    for r in recs:
        assert isinstance(r["output"], str), r
        if METHODS[r["method"]].exact:
            assert r["matches_greedy"] is True, r
            assert r["tokens"] == greedy[r["example_id"]], r
    for tokens in greedy.values():
        assert len(tokens) == NEW_TOKENS and len(set(tokens)) >= 3, tokens          # varied, not one token
    table = p.stdout
    for m in PAPER_METHODS:
        assert m in table, m

    # -- what was loaded, by its label (the lead's labels / env.json `loaded` change) ----------------------
    assert {(r["model"], r["draft"]) for r in recs} == {(hs.TARGET_ID, hs.DRAFT_ID)}
    assert hs.TARGET_ID in table and hs.DRAFT_ID in table
    loaded = json.loads((run_dir / "env.json").read_text())["loaded"]
    for role, repo in (("target", hs.TARGET_ID), ("draft", hs.DRAFT_ID)):
        got = loaded[role]
        assert got["checkpoint"] == repo, got
        assert got["architecture"] == "T5ForConditionalGeneration", got
        assert isinstance(got["fingerprint"], str) and got["fingerprint"], got
        assert got["revision"] == hs.commit_of(standin, "model", repo), got     # the snapshot the files came from
    assert loaded["target"]["fingerprint"] != loaded["draft"]["fingerprint"]
