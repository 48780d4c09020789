"""Experiment harness (issue #3): config composition, end-to-end runs, resume, crash safety, bad overrides.

End-to-end runs use a random tiny ByT5-vocabulary T5 pair saved to a tmp dir (the shipped pair is used by
one extra test when models/tiny-t5 exists), single-threaded, offline.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from stairs_decoding import metrics, timing
from stairs_decoding.config import register_resolvers
from stairs_decoding.errors import HarnessError
from stairs_decoding.run_files import SUMMARY_COLUMNS, ResultsWriter, read_results

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
RUN = [sys.executable, str(ROOT / "scripts" / "run.py")]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
SHIPPED = (ROOT / "models" / "tiny-t5" / "target" / "config.json").exists()
register_resolvers()


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    from stairs_decoding.testing import save_tiny_byt5_pair

    out = tmp_path_factory.mktemp("pair")
    save_tiny_byt5_pair(str(out), d_model=32, layers=2)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("env")
    e = dict(os.environ)
    e.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp / "hf"),
             WANDB_MODE="disabled", WANDB_DIR=str(tmp / "wandb"), PYTHONWARNINGS="ignore")
    e.pop("WANDB_API_KEY", None)
    return e


def pair_args(pair_dir) -> list[str]:
    return [f"model.checkpoint={pair_dir}/target", f"draft.checkpoint={pair_dir}/draft", "threads=1",
            "cost_ratio.rounds=1", "cost_ratio.steps=6"]


def run(args, env, timeout=180, **kw):
    return subprocess.run(RUN + list(args), env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def compose_cfg(overrides, hydra_cfg=False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra_cfg)


# -- composition ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["_target_"] and resolved["task"]["max_new_tokens"] > 0
    assert Path(resolved["paths"]["root"]) == ROOT
    from stairs_decoding.checks import plan_cells

    cells = plan_cells(cfg)
    assert cells[0].method == "greedy" and cells[0].k == 0
    assert len(set(cells)) == len(cells)


def test_expected_experiments_and_paper_sweep():
    assert {"paper_t5_large", "paper_t5_3b", "tiny_cpu", "smoke", "paper_scale_t5_large", "paper_scale_t5_3b",
            "benchmark"} <= set(EXPERIMENTS)
    from stairs_decoding.checks import plan_cells

    cfg = compose_cfg(["experiment=paper_t5_large"])
    assert cfg.model.checkpoint.endswith("t5-large") and cfg.draft.checkpoint.endswith("t5-small")
    cells = plan_cells(cfg)
    assert sorted({c.k for c in cells if c.method == "stairs"}) == list(range(1, 11))
    assert {c.method for c in cells} == {"greedy", "stairs", "stairs_cached", "hf_assisted", "hf_greedy"}


@pytest.mark.parametrize("model,draft,experiment", [("t5_large", "t5_small", "paper_t5_large"),
                                                    ("t5_3b", "t5_small", "paper_t5_3b"),
                                                    ("flan_t5_large", "flan_t5_small", None)])
def test_the_headline_command_is_the_papers_experiment(model, draft, experiment):
    """`model=t5_large draft=t5_small` (any hub T5 target) composes the paper's experiment: WMT16 En->De with T5's
    prefix, greedy / stairs / stairs_cached / hf_assisted / hf_greedy at k = 1..10; the command line still wins;
    the tiny pair keeps its own task."""
    from stairs_decoding.checks import plan_cells

    cfg = compose_cfg([f"model={model}", f"draft={draft}"])
    assert cfg.task.name == "wmt_en_de" and cfg.task.loader.prefix == "translate English to German: "
    assert cfg.task.loader.path == "wmt/wmt16" and cfg.task.num_examples == 100 and cfg.task.max_new_tokens == 128
    cells = plan_cells(cfg)
    assert {c.method for c in cells} == {"greedy", "stairs", "stairs_cached", "hf_assisted", "hf_greedy"}
    assert sorted({c.k for c in cells if c.method == "stairs_cached"}) == list(range(1, 11))
    assert compose_cfg([f"model={model}"]).draft.name == draft          # the target brings its draft too
    if experiment:
        named = OmegaConf.to_container(compose_cfg([f"experiment={experiment}"]))
        assert {**OmegaConf.to_container(cfg), "run_name": experiment} == named
    mine = compose_cfg([f"model={model}", f"draft={draft}", "task=cnn_dailymail", "sweep.num_draft_tokens=[2,4]",
                        "sweep.methods=[greedy,stairs_cached]"])
    assert mine.task.name == "cnn_dailymail" and [c.k for c in plan_cells(mine)] == [0, 2, 4]
    assert compose_cfg([]).task.name == "tiny_heldout" and compose_cfg([]).sweep is None


def test_the_headline_command_shows_the_papers_experiment_with_cfg_job():
    p = subprocess.run(RUN + ["model=t5_large", "draft=t5_small", "--cfg", "job"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    shown = OmegaConf.create(p.stdout)
    assert shown.task.name == "wmt_en_de" and list(shown.sweep.methods) == ["greedy", "stairs", "stairs_cached",
                                                                            "hf_assisted", "hf_greedy"]


def test_shortening_an_experiments_methods_drops_the_removed_methods_entries():
    from stairs_decoding.checks import plan_cells

    cells = plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "sweep.methods=[greedy,stairs_cached]"]))
    assert {c.method for c in cells} == {"greedy", "stairs_cached"}
    with pytest.raises(HarnessError, match=r"sweep.per_method.stairs_cahced: unknown method"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "+sweep.per_method.stairs_cahced.alphas=[0.5]"]))


GROUPS = {g: sorted(p.stem for p in (ROOT / "conf" / g).glob("*.yaml")) for g in ("model", "draft", "method", "task",
                                                                                  "decoding", "logger")}


def _builder_binds(node: dict, meta=()):
    """The node's `_target_` exists and accepts every key the node gives it (`meta` keys aside): a misspelt or
    unread key fails here."""
    import inspect

    from hydra.utils import get_method

    fn = get_method(node["_target_"])
    kwargs = {k: v for k, v in node.items() if k != "_target_" and k not in meta}
    inspect.signature(fn).bind(**kwargs)          # TypeError names the key it does not take
    return fn


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_of_every_group_composes_and_its_keys_are_read(group, option):
    from stairs_decoding.methods import METHODS

    cfg = OmegaConf.to_container(compose_cfg([f"{group}={option}"] + (["model=t5_large_arch"] if option ==
                                                                        "controlled" else [])), resolve=True)
    node = cfg[group]
    if group in ("model", "draft") and node.get("_target_"):
        from stairs_decoding.models import META_KEYS

        _builder_binds(node, META_KEYS)
        assert node["arch"] in ("encoder_decoder", "decoder_only") and node["vocab_size"] > 0 and node["name"]
    elif group == "task":
        _builder_binds(node["loader"])
        assert set(node) <= {"name", "split", "num_examples", "max_new_tokens", "batch_size", "max_source_tokens",
                             "seed", "shuffle", "loader"}, set(node)
    elif group == "logger":
        from hydra.utils import instantiate

        assert hasattr(instantiate(node), "log_example")
    elif group == "method":
        m = METHODS[node["name"]]                  # every method option names a registered method ...
        assert set(node) <= {"name", "num_draft_tokens", "schedule", *m.options}   # ... and sets what it reads
        assert ("num_draft_tokens" in node) == m.uses_k       # ... and gives k exactly when the method takes one
    elif group == "decoding":
        from stairs_decoding.checks import check_decoding

        assert set(node) == {"do_sample", "temperature", "top_k", "top_p"}
        assert check_decoding(OmegaConf.create(cfg), ["greedy"]) == ([1.0] if node["do_sample"] else [0.0])


def test_draft_options_are_model_options_not_copies():
    """One model group for both roles: a draft option names a model option (plus draft-only keys), so the two
    cannot drift apart."""
    for path in (ROOT / "conf" / "draft").glob("*.yaml"):
        node = OmegaConf.load(path)
        if path.stem == "none":
            assert "_target_" not in node
            continue
        refs = [d for d in node.get("defaults", []) if str(d).startswith("/model/")]
        assert len(refs) == 1 and str(refs[0]).endswith("@_here_"), path.name
        assert set(node) - {"defaults"} <= {"seed", "alpha", "alpha_seed"}, path.name
        assert (ROOT / "conf" / "model" / f"{str(refs[0])[len('/model/'):-len('@_here_')]}.yaml").exists()


def test_every_registered_method_has_a_method_option():
    from stairs_decoding.methods import METHODS

    assert set(GROUPS["method"]) == set(METHODS)


def test_decoder_only_pairs_share_vocabulary():
    from stairs_decoding.models import check_pair_config

    for model, draft in (("qwen2_5_1_5b", "qwen2_5_0_5b"), ("gpt2_large", "gpt2"), ("t5_3b", "t5_small"),
                         ("flan_t5_xl", "flan_t5_small")):
        cfg = compose_cfg([f"model={model}", f"draft={draft}"])
        check_pair_config(cfg.model, cfg.draft)
    cfg = compose_cfg(["model=qwen2_5_1_5b", "draft=t5_small"])
    with pytest.raises(HarnessError, match="vocabulary"):
        check_pair_config(cfg.model, cfg.draft)


@pytest.mark.parametrize("launcher", ["submitit_slurm", "slurm", "basic"])
def test_launchers_compose(launcher):
    cfg = compose_cfg([f"hydra/launcher={launcher}", "experiment=paper_t5_large"], hydra_cfg=True)
    target = cfg.hydra.launcher._target_
    assert ("submitit" in target.lower()) == (launcher != "basic")
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1


# -- units ------------------------------------------------------------------------------------------------
def test_speedup_bound():
    assert metrics.speedup_bound(0.0, 0.1, 4) == pytest.approx(1 / 1.4)
    assert metrics.speedup_bound(1.0, 0.0, 4) == pytest.approx(5.0)
    a, c, k = 0.8, 0.05, 4
    assert metrics.speedup_bound(a, c, k) == pytest.approx((1 - a ** 5) / ((1 - a) * (k * c + 1)))
    assert math.isnan(metrics.speedup_bound(float("nan"), 0.1, 4))
    assert metrics.bleu(["a b c d"], ["a b c d"]) == 100.0
    # with verification at its measured cost v(k+1) (in one-token steps); v = 1 is the classic bound
    assert metrics.speedup_bound(a, c, k, 2.0) == pytest.approx((1 - a ** 5) / ((1 - a) * (k * c + 2.0)))
    assert metrics.speedup_bound(a, c, k, 1.0) == metrics.speedup_bound(a, c, k)
    assert metrics.speedup_bound(1.0, 0.0, 4, 2.5) == pytest.approx(2.0)
    assert math.isnan(metrics.speedup_bound(a, c, k, float("nan")))


def test_verify_cost_curve_is_the_per_round_ratio_to_the_one_token_step():
    curve = timing.verify_cost_curve([0.10, 0.11, 0.09], {2: [0.11, 0.121, 0.099], 3: [0.2, 0.22, 0.18]})
    assert curve["m"] == [1, 2, 3] and curve["v"] == pytest.approx([1.0, 1.1, 2.0])
    assert curve["ci95_low"][2] == pytest.approx(2.0) and curve["step_s"] == pytest.approx([0.10, 0.11, 0.2])
    from stairs_decoding.summary import verify_costs

    assert verify_costs({"verify_cost": curve}) == pytest.approx({1: 1.0, 2: 1.1, 3: 2.0})
    assert verify_costs({}) is None


def test_the_measured_verify_cost_curve_of_a_real_model():
    """measure_cost_ratio with verify_tokens: v(1) = 1, every v(m) positive with an interval around it."""
    from stairs_decoding.testing import tiny_t5

    target, draft = tiny_t5(0), tiny_t5(1, d_model=32, layers=1)
    cost = timing.measure_cost_ratio(target, draft, torch.randint(2, 100, (1, 8)), context=8, steps=6, rounds=3,
                                     verify_tokens=4)
    curve = cost["verify_cost"]
    assert curve["m"] == [1, 2, 3, 4] and curve["v"][0] == 1.0
    assert all(v > 0 and 0 < lo <= hi for v, lo, hi in zip(curve["v"], curve["ci95_low"], curve["ci95_high"]))
    assert "verify_cost" not in timing.measure_cost_ratio(target, draft, torch.randint(2, 100, (1, 8)), context=8,
                                                          steps=6, rounds=2)


def test_summary_stats_and_order():
    s = timing.summarize([1.0, 2.0, 3.0])
    assert s["median_s"] == 2.0 and s["ci95_low"] < 2.0 < s["ci95_high"]
    cells = ["g", "a", "b", "c"]
    assert timing.interleaved_order(cells, 0, pinned=1) == ["g", "a", "b", "c"]
    assert timing.interleaved_order(cells, 1, pinned=1) == ["g", "b", "c", "a"]


K_ERROR = r"num_draft_tokens \(k\) must be an integer >= 1, got 0"


def test_an_unknown_report_is_refused_by_name_and_per_task_is_accepted():
    from stairs_decoding.checks import check_report

    with pytest.raises(HarnessError, match=r"^report='bogus': unknown report; valid: null .*per_task$"):
        check_report(compose_cfg(["report=bogus"]))
    check_report(compose_cfg(["experiment=per_task_cpu"]))
    assert compose_cfg(["experiment=per_task_translate_cpu"]).report == "per_task"


def test_plan_cells_rejects_bad_k_and_method():
    from stairs_decoding.checks import plan_cells

    with pytest.raises(HarnessError, match=r"^method: " + K_ERROR):
        plan_cells(compose_cfg(["method.num_draft_tokens=0"]))
    with pytest.raises(HarnessError, match=r"unknown method 'beam'; valid methods: greedy, stairs"):
        plan_cells(compose_cfg(["method.name=beam"]))
    with pytest.raises(HarnessError, match=r"method 'hf_assisted' does not support schedule='heuristic'"):
        plan_cells(compose_cfg(["method=hf_assisted", "method.schedule=heuristic"]))
    cells = plan_cells(compose_cfg(["method=draft_greedy"]))
    assert [(c.method, c.k) for c in cells] == [("greedy", 0), ("draft_greedy", 0)]


def test_plan_cells_alpha_axis_and_per_method_overrides():
    from stairs_decoding.checks import plan_cells

    cells = plan_cells(compose_cfg(["experiment=paper_scale_t5_large"]))
    stairs = {(c.k, c.alpha) for c in cells if c.method == "stairs"}
    cached = {(c.k, c.alpha) for c in cells if c.method == "stairs_cached"}
    default = {(c.k, c.alpha) for c in cells if c.method == "hf_assisted_default"}
    assert stairs == {(2, 0.9)} and default == {(4, 0.5), (4, 0.9)}
    assert cached == {(k, a) for k in (2, 4, 6) for a in (0.5, 0.7, 0.9)}
    assert [c for c in cells if c.method == "greedy"] == [cells[0]] and cells[0].alpha is None
    with pytest.raises(HarnessError, match=r"sweep.alphas needs a controlled draft"):
        plan_cells(compose_cfg(["experiment=smoke", "+sweep.alphas=[0.5]"]))
    with pytest.raises(HarnessError, match=r"alpha must be a number in \[0, 1\], got 1.5"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "sweep.alphas=[1.5]"]))
    with pytest.raises(HarnessError, match=r"^draft.alpha: .* got 7"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "draft.alpha=7"]))
    # per-method α without a controlled draft would label identical runs with different α: refused
    with pytest.raises(HarnessError, match=r"sweep.per_method.stairs.alphas needs a controlled draft"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "draft=t5_small_arch", "sweep.alphas=null"]))
    with pytest.raises(HarnessError, match=r"sweep.per_method.stairs may set num_draft_tokens, alphas, schedule "
                                           r"\(lists\) and the method options num_branches"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "+sweep.per_method.stairs.ks=[2]"]))
    with pytest.raises(HarnessError, match=r"sweep.alphas must be a list, got 0.7"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "sweep.alphas=0.7"]))
    with pytest.raises(HarnessError, match=r"a controlled draft must be an encoder-decoder model"):
        plan_cells(compose_cfg(["model=gpt2_large", "draft=gpt2", "+draft.alpha=0.7"]))


def test_cheap_checks_before_loading(tmp_path):
    from stairs_decoding.checks import plan_cells
    from stairs_decoding.models import check_available

    with pytest.raises(HarnessError, match=r"^sweep: " + K_ERROR):
        plan_cells(compose_cfg(["experiment=smoke", "sweep.num_draft_tokens=[0,2]"]))
    with pytest.raises(HarnessError, match="no such directory"):
        check_available(compose_cfg(["model.checkpoint=/nonexistent/dir"]).model)


def test_results_reader_tolerates_truncated_line(tmp_path):
    path = tmp_path / "results.jsonl"
    rec = {"example_id": "a", "method": "greedy", "k": 0}
    path.write_text(json.dumps(rec) + "\n" + '{"example_id": "b", "meth')
    assert read_results(path) == [rec]
    with ResultsWriter(path) as w:          # repairs the tail, then appends on a fresh line
        assert w.done == {("a", "greedy", 0, None, 1, "constant", 0.0)}
        w.write({"example_id": "b", "method": "stairs", "k": 2})
    assert [r["example_id"] for r in lines(path)] == ["a", "b"]


# -- end to end -------------------------------------------------------------------------------------------
def check_run_dir(run_dir: Path, n_examples: int, n_cells: int):
    for name in ("results.jsonl", "summary.csv", "env.json", "config.yaml", ".hydra/config.yaml"):
        assert (run_dir / name).exists(), name
    recs = lines(run_dir / "results.jsonl")
    assert len(recs) == n_examples * n_cells
    keys = {(r["example_id"], r["method"], r["k"]) for r in recs}
    assert len(keys) == len(recs)
    for r in recs:
        for field in ("example_id", "method", "k", "schedule", "seconds", "new_tokens", "target_calls",
                      "draft_calls", "accepted", "drafted", "rejections", "target_seconds", "draft_seconds",
                      "output", "tokens", "reference", "matches_greedy", "model", "draft", "task"):
            assert field in r, field
        if r["method"] != "draft_greedy":
            assert r["matches_greedy"] is True, r
    import pandas as pd

    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(summary.columns[:len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    assert len(summary) == n_cells
    env = json.loads((run_dir / "env.json").read_text())
    for key in ("git_sha", "python", "torch", "transformers", "device", "device_name", "torch_threads", "dtype",
                "seed"):
        assert key in env
    # no directory of the machine that ran it: run_dir relative to the checkout (or "." outside it), and the
    # saved config names the checkout's files relative to it
    assert not os.path.isabs(env["run_dir"]), env["run_dir"]
    assert str(ROOT) not in (run_dir / "env.json").read_text()
    assert str(ROOT) not in (run_dir / "config.yaml").read_text()
    # the verify-cost curve v(m), m = 1..max k + 1 of the cached-row cells, in cost_ratio.json and env.json
    from stairs_decoding.methods import METHODS

    ks = [r["k"] for r in recs if METHODS[r["method"]].verify_row and (r.get("batch_size") or 1) == 1]
    if ks:
        curve = json.loads((run_dir / "cost_ratio.json").read_text())["verify_cost"]
        assert curve["m"] == list(range(1, max(ks) + 2)) and curve["v"][0] == 1.0 and env["verify_cost"] == curve
        assert all(v > 0 and (math.isnan(lo) or lo <= hi) for v, lo, hi in zip(curve["v"][1:], curve["ci95_low"][1:],
                                                                                curve["ci95_high"][1:]))
        for _, row in summary[summary["method"].map(lambda m: METHODS[m].verify_row)].iterrows():
            v = curve["v"][int(row["k"])]
            assert row["verify_cost_v"] == pytest.approx(v) and row["bound_speedup_verify"] == pytest.approx(
                metrics.speedup_bound(row["alpha"], 0.0 if not METHODS[row["method"]].needs_draft
                                      else row["cost_ratio_c"], int(row["k"]), v))
    assert set(env["kernels"]) >= {"cpu_capability", "cpu_flags", "mkl", "mkldnn", "blas"}
    return recs


def test_smoke_end_to_end_and_resume(tmp_path, pair_dir, env):
    run_dir = tmp_path / "smoke"
    p = run(["experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", *pair_args(pair_dir)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = check_run_dir(run_dir, 3, 12)       # greedy + 5 methods x 2 k + draft_greedy
    assert "bound" in p.stdout and "time red. %" in p.stdout and str(run_dir) in p.stdout
    # drop the last 5 cells (+ a torn line): a resume recomputes exactly those
    text = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(text[:-5]) + text[-5][:20])
    p = run(["experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", "resume=true", *pair_args(pair_dir)],
            env)
    assert p.returncode == 0, p.stderr[-3000:]
    again = check_run_dir(run_dir, 3, 12)
    assert [(r["example_id"], r["method"], r["k"]) for r in again[:-5]] == \
        [(r["example_id"], r["method"], r["k"]) for r in recs[:-5]]


def test_existing_results_without_resume_is_refused(tmp_path, pair_dir):
    from stairs_decoding.harness import run_experiment

    (tmp_path / "results.jsonl").write_text('{"example_id": "x", "method": "greedy", "k": 0}\n')
    cfg = compose_cfg(["experiment=smoke", *pair_args(pair_dir)])
    with pytest.raises(HarnessError, match="resume=true"):
        run_experiment(cfg, tmp_path)


@pytest.mark.parametrize("n", [0, -1, -5, "two"])
def test_bad_num_examples_is_one_line_and_exit_2_before_any_work(tmp_path, env, n):
    run_dir = tmp_path / "bad"
    p = run(["experiment=smoke", f"task.num_examples={n}", f"hydra.run.dir={run_dir}"], env, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "task.num_examples" in errors[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not (run_dir / "results.jsonl").exists()


def _saved_run(tmp_path, overrides):
    """A run directory as a finished run leaves it: config.yaml (portable) and one result line."""
    from stairs_decoding.checks import portable
    from stairs_decoding.config import repo_root

    cfg = compose_cfg(overrides)
    OmegaConf.save(OmegaConf.create(portable(OmegaConf.to_container(cfg, resolve=True), repo_root())),
                   tmp_path / "config.yaml")
    (tmp_path / "results.jsonl").write_text(json.dumps(
        {"example_id": "x", "method": "greedy", "k": 0, "model": "tiny_target", "draft": "tiny_draft",
         "task": "tiny_heldout"}) + "\n")
    return tmp_path


def test_resume_with_another_configuration_names_the_differing_keys(tmp_path):
    from stairs_decoding.checks import check_resume

    run_dir = _saved_run(tmp_path, ["experiment=smoke"])
    saved = (run_dir / "config.yaml").read_text()
    cfg = compose_cfg(["experiment=smoke", "resume=true", "task.max_new_tokens=9", "sweep.num_draft_tokens=[3]"])
    with pytest.raises(HarnessError) as err:
        check_resume(cfg, run_dir)
    msg = str(err.value)
    assert "\n" not in msg and "task.max_new_tokens (16 -> 9)" in msg and "sweep.num_draft_tokens" in msg
    assert "logger" not in msg and "resume (" not in msg
    assert (run_dir / "config.yaml").read_text() == saved     # nothing overwritten


def test_resume_of_a_run_saved_before_a_new_null_key_existed(tmp_path):
    """A key added to conf/ later with a null or false default (sweep, warmup_max_new_tokens, the decoding group's
    greedy settings) is not a difference."""
    from stairs_decoding.checks import check_resume

    run_dir = _saved_run(tmp_path, ["experiment=smoke"])
    saved = OmegaConf.load(run_dir / "config.yaml")
    del saved["warmup_max_new_tokens"]
    del saved["decoding"]
    OmegaConf.save(saved, run_dir / "config.yaml")
    check_resume(compose_cfg(["experiment=smoke", "resume=true"]), run_dir)
    with pytest.raises(HarnessError, match=r"warmup_max_new_tokens \(unset -> 8\)"):
        check_resume(compose_cfg(["experiment=smoke", "resume=true", "warmup_max_new_tokens=8"]), run_dir)


def test_resume_with_the_same_configuration_may_change_logger_and_progress(tmp_path):
    from stairs_decoding.checks import check_resume

    run_dir = _saved_run(tmp_path, ["experiment=smoke"])
    check_resume(compose_cfg(["experiment=smoke", "resume=true", "logger=wandb", "progress=false"]), run_dir)
    with pytest.raises(HarnessError, match="resume=true"):
        check_resume(compose_cfg(["experiment=smoke"]), run_dir)


def test_resume_end_to_end_refuses_a_different_configuration(tmp_path, pair_dir, env):
    run_dir = tmp_path / "r"
    args = ["experiment=smoke", "task.num_examples=1", "sweep.num_draft_tokens=[2]", f"hydra.run.dir={run_dir}",
            *pair_args(pair_dir)]
    assert run(args, env).returncode == 0
    before = (run_dir / "results.jsonl").read_text(), (run_dir / "config.yaml").read_text()
    p = run(args + ["resume=true", "task.num_examples=2"], env)
    assert p.returncode == 2 and "task.num_examples (1 -> 2)" in p.stderr, p.stderr[-2000:]
    assert ((run_dir / "results.jsonl").read_text(), (run_dir / "config.yaml").read_text()) == before


def test_smoke_with_wandb_offline(tmp_path, pair_dir, env):
    run_dir = tmp_path / "wb"
    e = dict(env, WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb"), WANDB_SILENT="true")
    p = run(["experiment=smoke", "logger=wandb", f"hydra.run.dir={run_dir}", "task.num_examples=2",
             "sweep.num_draft_tokens=[2]", *pair_args(pair_dir)], e)
    assert p.returncode == 0, p.stderr[-3000:]
    check_run_dir(run_dir, 2, 7)
    assert "W&B" not in p.stderr or "failed" not in p.stderr, p.stderr[-2000:]
    runs = list((tmp_path / "wandb").rglob("offline-run-*"))
    assert runs, "no offline W&B run written"


def test_wandb_failure_never_stops_the_run(tmp_path, capsys):
    from stairs_decoding.tracking import WandbTracker

    t = WandbTracker(mode="not-a-mode")
    t.start(config={"a": 1}, run_dir=str(tmp_path))   # init fails → reported, tracker becomes a no-op
    assert t.run is None
    t.log_example({"example_id": "a", "method": "greedy", "k": 0, "seconds": 1.0, "new_tokens": 1})
    t.log_summary([{"method": "greedy", "k": 0, "median_s": 1.0}])
    t.finish()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: W&B")]
    assert len(warnings) == 1 and "init failed" in warnings[0], warnings


def test_multirun_method_and_k(tmp_path, pair_dir, env):
    sweep_dir = tmp_path / "multi"
    p = run(["-m", "method=stairs,stairs_cached", "method.num_draft_tokens=1,4", f"hydra.sweep.dir={sweep_dir}",
             "task.num_examples=1", "task.max_new_tokens=8", "warmup_examples=0", *pair_args(pair_dir)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    dirs = sorted(d for d in sweep_dir.iterdir() if d.is_dir() and (d / "results.jsonl").exists())
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        recs = lines(d / "results.jsonl")
        assert {r["method"] for r in recs} == {"greedy", recs[-1]["method"]}
        seen.add((recs[-1]["method"], recs[-1]["k"]))
    assert seen == {("stairs", 1), ("stairs", 4), ("stairs_cached", 1), ("stairs_cached", 4)}


LONG = 60   # examples: long enough (2 cells each) that the run cannot end before the signal reaches it


def _sigint_default():
    """In the child: SIGINT at its default, so Python turns Ctrl-C into KeyboardInterrupt even when this test runs
    in a background job (which starts its children with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_first_line(args, run_dir, env, **kw):
    proc = subprocess.Popen(RUN + args, env=env, cwd=ROOT, preexec_fn=_sigint_default, **kw)
    results = run_dir / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before the signal; make it longer"
    return proc, results


def test_kill_midway_leaves_valid_results_and_resume_finishes(tmp_path, pair_dir, env):
    run_dir = tmp_path / "killed"
    args = ["method=stairs_cached", "method.num_draft_tokens=2", f"task.num_examples={LONG}",
            "task.max_new_tokens=32", "warmup_examples=0", f"hydra.run.dir={run_dir}", *pair_args(pair_dir)]
    proc, results = _start_and_wait_for_first_line(args, run_dir, env, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = read_results(results)
    assert 1 <= len(before) < 2 * LONG
    for line in results.read_text().splitlines():
        json.loads(line)                     # every complete line parses (a torn tail has no newline)
    p = run(args + ["resume=true"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    after = lines(results)
    assert len(after) == 2 * LONG and len({(r["example_id"], r["method"], r["k"]) for r in after}) == 2 * LONG
    assert after[:len(before)] == before     # what was written stays as it was
    assert all(r["matches_greedy"] for r in after)


def test_ctrl_c_exits_130_with_a_resume_hint_and_resume_finishes(tmp_path, pair_dir, env):
    run_dir = tmp_path / "interrupted"
    args = ["method=stairs", "method.num_draft_tokens=2", f"task.num_examples={LONG}", "task.max_new_tokens=32",
            "warmup_examples=0", f"hydra.run.dir={run_dir}", *pair_args(pair_dir)]
    proc, results = _start_and_wait_for_first_line(args, run_dir, env, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert f"of {2 * LONG} cell runs (cells x examples) finished in {results}" in err, err[-2000:]
    printed = err.split("continue with: ", 1)[1].splitlines()[0]
    assert printed == f"python {RUN[1]} resume={run_dir}", err[-2000:]
    written = lines(results)
    assert 1 <= len(written) < 2 * LONG
    assert (run_dir / "summary.csv").exists()          # the summary of what was finished
    config = (run_dir / "config.yaml").read_text()
    # the printed command, as printed (its `python` is the one on PATH: this venv's first)
    path_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    p = subprocess.run(printed, shell=True, env=path_env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"resume: {len(written)} of {2 * LONG} cell runs" in p.stderr and f"{2 * LONG - len(written)} remain" \
        in p.stderr, p.stderr[-2000:]
    after = lines(results)
    assert len(after) == 2 * LONG and after[:len(written)] == written
    assert len({(r["example_id"], r["method"], r["k"]) for r in after}) == 2 * LONG     # none lost, none repeated
    assert (run_dir / "config.yaml").read_text() == config                          # never overwritten


def test_resume_from_the_run_directory_alone(tmp_path, pair_dir, env):
    """resume=<run dir> reloads the run's own overrides; one that changes results is refused by name and does not
    become the run's saved command; harmless ones (progress) pass; a directory that is no run is refused."""
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", "logger=none", "task.num_examples=2", "sweep.methods=[stairs_cached]",
            "sweep.num_draft_tokens=[2]", "warmup_examples=0", f"hydra.run.dir={run_dir}", *pair_args(pair_dir)]
    assert run(args, env).returncode == 0
    full = lines(run_dir / "results.jsonl")
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in full[:2]))
    p = run([f"resume={run_dir}", "task.num_examples=3"], env)
    assert p.returncode == 2 and "task.num_examples (2 -> 3)" in p.stderr, p.stderr[-2000:]
    p = run([f"resume={run_dir}", "progress=false"], env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "resume: 2 of 4 cell runs" in p.stderr and "2 remain" in p.stderr, p.stderr[-2000:]
    after = lines(run_dir / "results.jsonl")
    assert after[:2] == full[:2] and len({(r["example_id"], r["method"]) for r in after}) == len(after) == 4
    p = run([f"resume={tmp_path}"], env)
    assert p.returncode == 2 and "not a run directory" in p.stderr


@pytest.mark.parametrize("overrides,needle", [
    (["model=no_such_model"], "unknown model 'no_such_model'; valid options: flan_t5_base"),
    (["method=stairs_cahced"], "unknown method 'stairs_cahced'; valid options: draft_greedy"),
    (["task.num_exampels=3"], "unknown key task.num_exampels; did you mean task.num_examples"),
    (["method.num_draft_tokens=1,2"], "is a sweep (several values): add -m"),
    (["model=t5_large", "method=lookup"], "this run's cells come from sweep.methods"),
    (["model=t5_large_arch", "draft=t5_small_arch"], "python scripts/run.py experiment=paper_scale_t5_large"),
    (["hydra.run.dir=/etc/hostname/run"], "run directory /etc/hostname/run cannot be made: /etc/hostname is a file"),
    (["hydra.run.dir=/proc/no/run"], "run directory /proc/no/run is not writable"),
    (["task.loader.path=/no/such/file.jsonl"], "task file '/no/such/file.jsonl' does not exist"),
    (["resume=/no/such/run"], "resume=/no/such/run: no such run directory"),
    (["draft=t5_small"], "vocabulary"),
    (["method.num_draft_tokens=0"], "num_draft_tokens (k) must be an integer >= 1, got 0"),
    (["model=t5_large", "draft=t5_small"], "experiment=tiny_cpu"),
])
def test_bad_overrides_exit_with_one_readable_line(tmp_path, env, overrides, needle):
    """One `error:` line, exit status 2, no traceback, and no run folder left behind."""
    p = run([f"hydra.run.dir={tmp_path / 'bad'}"] + overrides, env, timeout=60)
    assert p.returncode == 2, p.stderr[-2000:]
    assert needle in p.stderr, p.stderr[-2000:]
    assert [line for line in p.stderr.splitlines() if line.strip()] == \
        [line for line in p.stderr.splitlines() if line.startswith("error: ")], p.stderr[-2000:]
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists(), list((tmp_path / "bad").rglob("*"))
    if "model=t5_large" in overrides and "draft=t5_small" in overrides:
        assert "t5-large" in p.stderr


def test_a_malformed_task_file_names_the_file_and_line(tmp_path, env):
    bad = tmp_path / "task.jsonl"
    bad.write_text('{"id": "a", "source": "compress: x", "target": "x"}\n{"id": "b", "source": oops}\n')
    p = run([f"task.loader.path={bad}", f"hydra.run.dir={tmp_path / 'run'}"], env, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == \
        [f"error: task file {bad}: line 2 is not valid JSON (Expecting value, column 23)"], p.stderr[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not SHIPPED, reason="models/tiny-t5 not present (scripts/train_tiny_pair.py)")
def test_smoke_on_the_shipped_pair(tmp_path, env):
    run_dir = tmp_path / "shipped"
    p = run(["experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", "threads=1"], env)
    assert p.returncode == 0, p.stderr[-3000:]
    check_run_dir(run_dir, 3, 12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_draft_device_that_does_not_exist_is_one_line_before_loading(tmp_path, env):
    """draft.device (its own GPU) is checked with the run's device, before any model is loaded."""
    p = run(["draft.device=cuda:1", f"hydra.run.dir={tmp_path / 'bad'}"], env, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: device='cuda:1' but CUDA is not available; use device=auto or device=cpu"], p.stderr


def test_batch_size_axis_and_its_errors():
    """task.batch_size: one size or a list (every cell at each size, greedy first at each); refused by name where a
    method or a controlled draft takes one prompt per call."""
    from stairs_decoding.checks import plan_cells

    cells = plan_cells(compose_cfg(["experiment=tiny_batch_cpu"]))
    assert {c.batch_size for c in cells} == {1, 4, 16, 32}
    for b in (1, 4, 16, 32):
        mine = [c for c in cells if c.batch_size == b]
        assert mine[0].method == "greedy" and {c.schedule for c in mine if c.method == "stairs_cached"} == \
            {"constant", "auto"}
    assert len({c.key("x") for c in cells}) == len(cells)          # batch size and schedule are in the key
    with pytest.raises(HarnessError, match=r"task.batch_size=4: hf_assisted, hf_assisted_default take\(s\) one "
                       r"prompt per call"):
        plan_cells(compose_cfg(["experiment=tiny_cpu", "task.batch_size=4"]))
    with pytest.raises(HarnessError, match=r"task.batch_size must be an integer >= 1 \(or a list of them\), got 0"):
        plan_cells(compose_cfg(["task.batch_size=0"]))
    with pytest.raises(HarnessError, match=r"lists a size twice"):
        plan_cells(compose_cfg(["task.batch_size=[2,2]"]))
    with pytest.raises(HarnessError, match=r"a controlled draft \(draft.alpha\) follows one reference per call"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "task.batch_size=2",
                                "sweep.methods=[stairs_cached]", "~sweep.per_method"]))


def test_batched_run_end_to_end(tmp_path, pair_dir, env):
    """A run at batch sizes 1 and 2 (3 examples: batches of 2 and 1): one record per example and cell, exact outputs, the batch's time shared by its
    rows, per-row acceptance, summary rows per batch size with throughput intervals, and the throughput figure."""
    import pandas as pd

    run_dir = tmp_path / "batched"
    p = run(["experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", "task.batch_size=[1,2]",
             "sweep.methods=[stairs_cached]", "sweep.num_draft_tokens=[2]", *pair_args(pair_dir)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = lines(run_dir / "results.jsonl")
    n = len({r["example_id"] for r in recs})
    assert len(recs) == n * 2 * 2 and all(r["matches_greedy"] for r in recs)
    batched = [r for r in recs if r["batch_size"] == 2 and r["batch_seconds"] is not None]
    assert len(batched) == 4                                       # the batch of 2, greedy and stairs_cached
    for r in batched:
        same = [x for x in batched if x["batch_id"] == r["batch_id"] and x["method"] == r["method"]]
        assert abs(r["seconds"] * len(same) - r["batch_seconds"]) < 1e-9
    assert all(r["ragged"] for r in batched if r["method"] == "stairs_cached")
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(summary["batch_size"].unique()) == [1, 2]
    assert summary["tokens_per_s_ci95_low"].notna().all()
    from stairs_decoding import report

    assert report.is_batch_sweep(run_dir)
    written = report.make_all([run_dir], tmp_path / "figs")
    assert any(p.name == "throughput_vs_batch.png" for p in written)
    assert "batch" in (tmp_path / "figs" / "batch_throughput.md").read_text()


def test_temperature_axis_and_its_errors():
    """decoding.temperature: one value or a list (every cell at each, greedy — the target alone — first at each;
    0 = greedy); sampling settings without do_sample, bad values and a controlled draft are refused by name."""
    from stairs_decoding.checks import plan_cells

    cells = plan_cells(compose_cfg(["experiment=tiny_sampling_cpu"]))
    assert [t for t in dict.fromkeys(c.temperature for c in cells)] == [0.0, 0.7, 1.0]
    for t in (0.0, 0.7, 1.0):
        mine = [c for c in cells if c.temperature == t]
        assert mine[0].method == "greedy" and {c.method for c in mine} == {"greedy", "stairs_cached", "hf_assisted",
                                                                            "draft_greedy"}
    assert len({c.key("x") for c in cells}) == len(cells)          # the temperature is in the key
    assert cells[-1].ref("x") == ("x", 1, 1.0)
    with pytest.raises(HarnessError, match=r"decoding: temperature=0.7 only applies to sampling; set "
                                           r"decoding.do_sample=true"):
        plan_cells(compose_cfg(["decoding.temperature=0.7"]))
    with pytest.raises(HarnessError, match=r"decoding.temperature must be numbers >= 0"):
        plan_cells(compose_cfg(["decoding=sample", "decoding.temperature=-1"]))
    with pytest.raises(HarnessError, match=r"decoding.top_p must be in \(0, 1\]"):
        plan_cells(compose_cfg(["decoding=sample", "decoding.top_p=1.5"]))
    with pytest.raises(HarnessError, match=r"a controlled draft \(draft.alpha\) follows the greedy output"):
        plan_cells(compose_cfg(["experiment=paper_scale_t5_large", "decoding=sample"]))


def test_sampling_run_end_to_end(tmp_path, pair_dir, env):
    """A run at temperatures 0 and 0.8: one record per example, cell and temperature; greedy cells exact, sampled
    cells not compared with greedy; the same samples again with the same seed (a resumable, reproducible run); the
    summary's rows per temperature against the target alone at that temperature; the sampling figure and table."""
    import pandas as pd

    outs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        p = run(["experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", "decoding=sample",
                 "decoding.temperature=[0,0.8]", "sweep.methods=[stairs_cached]", "sweep.num_draft_tokens=[2]",
                 *pair_args(pair_dir)], env)
        assert p.returncode == 0, p.stderr[-3000:]
        outs.append(lines(run_dir / "results.jsonl"))
    recs = outs[0]
    n = len({r["example_id"] for r in recs})
    assert len(recs) == n * 2 * 2 and {r["temperature"] for r in recs} == {0.0, 0.8}
    assert all(r["matches_greedy"] for r in recs if r["temperature"] == 0)
    assert all(r["matches_greedy"] is None for r in recs if r["temperature"])
    key = lambda r: (r["example_id"], r["method"], r["temperature"])  # noqa: E731
    assert sorted((key(r), r["tokens"]) for r in recs) == sorted((key(r), r["tokens"]) for r in outs[1])
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert sorted(summary["temperature"].unique()) == [0.0, 0.8]
    sampled = summary[(summary["temperature"] == 0.8) & (summary["method"] == "stairs_cached")].iloc[0]
    assert sampled["speedup"] > 0 and 0 <= sampled["alpha"] <= 1 and pd.isna(sampled["exact_match_rate"])
    from stairs_decoding import report

    assert report.is_sampling_sweep(tmp_path / "a") and report.run_kind(tmp_path / "a") == "sampling"
    written = report.make_all([tmp_path / "a"], tmp_path / "figs")
    assert {p.name for p in written} == {"sampling.png", "sampling.pdf", "sampling.md"}
    assert "0.8" in (tmp_path / "figs" / "sampling.md").read_text()


def test_labels_say_what_was_loaded_not_the_config_name(tmp_path, pair_dir, env):
    """model=t5_large pointed at other weights is labelled by those weights (records, env.json, console, tables),
    and the paper's percentages do not appear beside it."""
    run_dir = tmp_path / "relabelled"
    p = run(["model=t5_large", "draft=t5_small", "task=tiny_heldout", "sweep.methods=[greedy,stairs]",
             "sweep.num_draft_tokens=[2]", "task.num_examples=2", "task.max_new_tokens=8", "warmup_examples=0",
             "logger=none", "progress=false", f"hydra.run.dir={run_dir}", *pair_args(pair_dir)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    target, draft = str(pair_dir / "target"), str(pair_dir / "draft")
    recs = lines(run_dir / "results.jsonl")
    assert {(r["model"], r["draft"]) for r in recs} == {(target, draft)}
    loaded = json.loads((run_dir / "env.json").read_text())["loaded"]
    assert loaded["target"]["checkpoint"] == target and loaded["target"]["config"] == "t5_large"
    assert loaded["target"]["fingerprint"] != loaded["draft"]["fingerprint"]
    assert f"{target} + draft {draft}" in p.stdout and "t5_large" not in p.stdout
    from stairs_decoding import report

    report.make_all([run_dir], tmp_path / "figs")
    table = (tmp_path / "figs" / "time_reduction.md").read_text()
    assert target in table and "17.24" not in table and "paper" not in table


@pytest.mark.parametrize("flags, refused", [(["avx512f", "avx2"], True), (["avx512_bf16", "avx512f"], False),
                                            (["amx_bf16", "amx_tile"], False)])
def test_bfloat16_on_a_cpu_without_its_matrix_units_is_refused_by_name(monkeypatch, flags, refused):
    """Emulated bfloat16 on a CPU times nothing a bf16 deployment would see: the bf16 paper-scale experiments are
    refused where the CPU has no AMX/AVX512-BF16 (saying what runs instead), and run where it has them."""
    from stairs_decoding import run_files
    from stairs_decoding.checks import check_dtype_hardware, plan_cells

    monkeypatch.setattr(run_files, "cpu_flags", lambda: flags)
    for experiment in ("paper_scale_t5_large_cpu_bf16", "paper_scale_t5_3b_cpu_bf16"):
        cfg = compose_cfg([f"experiment={experiment}"])
        cells = plan_cells(cfg)
        assert cfg.dtype == "bfloat16" and cfg.device == "cpu"
        assert {c.alpha for c in cells if c.method == "stairs_cached"} == {0.5, 0.6, 0.7, 0.8, 0.9}
        assert {c.method for c in cells} == {"greedy", "hf_greedy", "stairs_cached", "hf_assisted"}
        if refused:
            with pytest.raises(HarnessError, match=r"^dtype=bfloat16 on this CPU: .*dtype=float32"):
                check_dtype_hardware(cfg)
        else:
            check_dtype_hardware(cfg)
        check_dtype_hardware(compose_cfg([f"experiment={experiment}", "allow_emulated_dtype=true"]))
        check_dtype_hardware(compose_cfg([f"experiment={experiment}", "dtype=float32"]))
