"""Architecture-true random-weight T5 builders, the controlled-acceptance draft, the paper-scale experiments."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_t5

from stairs_decoding import generate
from stairs_decoding.errors import ArchitectureError
from stairs_decoding.methods import METHODS, speculative
from stairs_decoding.paper_scale import (T5_ARCHITECTURES, ControlledDraft, build_architecture, canonical_name,
                                         parameter_count, t5_config)

ROOT = Path(__file__).resolve().parents[1]
N_NEW = 64
# The methods whose accepted tokens are the controlled draft's alone (lookup has no draft; stairs_tree also verifies
# source lookups and the draft's runner-up tokens, which may be kept where the draft's own token is not).
SPECULATIVE = tuple(m for m in speculative() if METHODS[m].needs_draft and "num_branches" not in METHODS[m].options)


@pytest.fixture(scope="module")
def pair():
    return tiny_t5(0), tiny_t5(1, d_model=32, layers=1)


def _prompts(n, vocab=128, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, vocab, (1, length), generator=g) for _ in range(n)]


def _reference(target, ids):
    return generate(target, ids, method="greedy", max_new_tokens=N_NEW, ignore_eos=True).tokens[0]


# -- architectures ---------------------------------------------------------------------------------------------
def test_t5_small_arch_has_the_published_parameter_count():
    model = build_architecture("t5_small_arch", seed=0)
    assert sum(p.numel() for p in model.parameters()) == 60_506_624
    assert not model.training and model.lm_head.weight is model.shared.weight
    assert model.config.architecture_only is True


def test_build_is_seeded():
    a, b = build_architecture("tiny-test-target", seed=3), build_architecture("tiny-test-target", seed=3)
    c = build_architecture("tiny-test-target", seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.shared.weight, c.shared.weight)


@pytest.mark.parametrize("name,dims", [
    ("t5-base", (768, 3072, 64, 12, 12, "relu")),
    ("t5_large_arch", (1024, 4096, 64, 16, 24, "relu")),
    ("t5-3b", (1024, 16384, 128, 32, 24, "relu")),
    ("flan_t5_small_arch", (512, 1024, 64, 6, 8, "gated-gelu")),
    ("flan-t5-base", (768, 2048, 64, 12, 12, "gated-gelu")),
    ("flan-t5-large", (1024, 2816, 64, 16, 24, "gated-gelu")),
    ("flan-t5-xl", (2048, 5120, 64, 32, 24, "gated-gelu")),
])
def test_large_architectures_have_the_published_dimensions(name, dims):
    c = t5_config(name)   # config only: nothing is instantiated
    assert (c.d_model, c.d_ff, c.d_kv, c.num_heads, c.num_layers, c.feed_forward_proj) == dims
    assert c.num_decoder_layers == c.num_layers and c.vocab_size == 32128
    assert (c.decoder_start_token_id, c.eos_token_id, c.pad_token_id) == (0, 1, 0)


def test_meta_parameter_counts_match_the_original_t5_checkpoints():
    for name in ("t5-base", "t5-large", "t5-3b"):
        assert parameter_count(name) == T5_ARCHITECTURES[name].params


def test_unknown_architecture_is_one_clear_error():
    from omegaconf import OmegaConf

    from stairs_decoding.models import build_model

    with pytest.raises(ArchitectureError, match="unknown T5 architecture 't5-xxl-typo'"):
        canonical_name("t5-xxl-typo")
    node = OmegaConf.load(ROOT / "conf" / "model" / "t5_large_arch.yaml")
    node.architecture = "t5-xxl-typo"              # through hydra's instantiate: the cause, not hydra's wrapper
    with pytest.raises(ArchitectureError, match="^unknown T5 architecture 't5-xxl-typo'"):
        build_model(node, device="cpu")


def test_hydra_nodes_build_through_models_build_model():
    from omegaconf import OmegaConf

    from stairs_decoding.models import build_model

    for group, name in (("model", "t5_large_arch"), ("model", "t5_small_arch"), ("model", "t5_3b_arch")):
        node = OmegaConf.load(ROOT / "conf" / group / f"{name}.yaml")
        assert node._target_ == "stairs_decoding.paper_scale.build_architecture"
        assert canonical_name(node.architecture) in T5_ARCHITECTURES
    node = OmegaConf.create({"_target_": "stairs_decoding.paper_scale.build_architecture", "name": "tiny_arch",
                             "architecture": "tiny-test-draft", "arch": "encoder_decoder", "vocab_size": 512})
    model = build_model(node, dtype="float32", device="cpu")
    assert model.config.d_model == 32 and not model.training


# -- controlled draft ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.3, 0.7])
def test_measured_acceptance_matches_alpha_and_outputs_stay_exact(pair, alpha):
    """Every method (one per example, so positions are independent draws) returns the target's greedy output,
    and the pooled measured acceptance is within 4 binomial sigmas of α."""
    target, draft = pair
    accepted = rejections = 0
    with ControlledDraft(draft, alpha, seed=1) as cd:
        for i, ids in enumerate(_prompts(9)):
            ref = _reference(target, ids)
            cd.set_reference(ref, example_seed=i)
            method = SPECULATIVE[i % len(SPECULATIVE)]
            res = generate(target, ids, draft=draft, method=method, num_draft_tokens=3, max_new_tokens=N_NEW,
                           ignore_eos=True)
            assert res.tokens[0] == ref, (method, i)
            accepted += sum(res.stats.accepted)
            rejections += res.stats.rejections
    n = accepted + rejections
    measured = accepted / n
    sigma = math.sqrt(alpha * (1 - alpha) / n)
    assert n > 250
    assert abs(measured - alpha) < 4 * sigma, (measured, alpha, n)


def test_positions_get_the_same_decision_in_every_method(pair):
    """Each method's per-round accepted counts follow from the one precomputed decision sequence."""
    target, draft = pair
    ids = _prompts(1, seed=5)[0]
    ref = _reference(target, ids)
    with ControlledDraft(draft, 0.6, seed=2) as cd:
        cd.set_reference(ref, example_seed=0)
        acc = cd.decisions(N_NEW)[0].tolist()
        for k in (2, 4):
            expected, pos = [], 0
            while pos < N_NEW:
                k_round = min(k, N_NEW - pos - 1)
                n = 0
                while n < k_round and acc[pos + n]:
                    n += 1
                expected.append(n)
                pos += n + 1
            for method in SPECULATIVE:
                res = generate(target, ids, draft=draft, method=method, num_draft_tokens=k, max_new_tokens=N_NEW,
                               ignore_eos=True)
                assert res.stats.accepted == expected, (method, k)


def test_alpha_one_and_zero(pair):
    target, draft = pair
    ids = _prompts(1, seed=7)[0]
    ref = _reference(target, ids)
    for alpha, expect in ((1.0, 1.0), (0.0, 0.0)):
        with ControlledDraft(draft, alpha) as cd:
            cd.set_reference(ref)
            res = generate(target, ids, draft=draft, method="stairs_cached", num_draft_tokens=4,
                           max_new_tokens=N_NEW, ignore_eos=True)
        assert res.tokens[0] == ref and res.stats.acceptance_rate == expect


def test_batch_rows_keep_their_own_reference(pair):
    target, draft = pair
    ids = torch.cat(_prompts(3, seed=9))
    ref = generate(target, ids, method="greedy", max_new_tokens=N_NEW, ignore_eos=True).tokens
    with ControlledDraft(draft, 1.0) as cd:
        cd.set_reference(ref)
        for method in ("stairs", "stairs_cached"):
            res = generate(target, ids, draft=draft, method=method, num_draft_tokens=3, max_new_tokens=N_NEW,
                           ignore_eos=True)
            assert res.tokens == ref and res.stats.acceptance_rate == 1.0


def test_removing_the_hook_restores_the_draft(pair):
    _, draft = pair
    ids = _prompts(1, seed=11)[0]
    before = generate(draft, ids, method="greedy", max_new_tokens=16, ignore_eos=True).tokens[0]
    cd = ControlledDraft(draft, 0.5)
    cd.set_reference([5] * 16)
    hooked = generate(draft, ids, method="greedy", max_new_tokens=16, ignore_eos=True).tokens[0]
    cd.remove()
    after = generate(draft, ids, method="greedy", max_new_tokens=16, ignore_eos=True).tokens[0]
    assert after == before and hooked != before
    assert not draft._forward_hooks and not draft._forward_pre_hooks and "generate" not in vars(draft)


def test_wrong_tokens_differ_from_the_reference_and_avoid_pad_eos(pair):
    _, draft = pair
    cd = ControlledDraft(draft, 0.0)
    try:
        ref = torch.randint(0, 128, (2, 500))
        cd.set_reference(ref)
        wrong = cd.proposals(500)
        assert bool((wrong != ref).all()) and bool((wrong >= 2).all()) and bool((wrong < 128).all())
    finally:
        cd.remove()


# -- the paper-scale experiments, end to end on tiny architectures ---------------------------------------------
TINY = ["model.architecture=tiny-test-target", "model.name=tiny_test_target_arch", "model.vocab_size=512",
        "draft.architecture=tiny-test-draft", "draft.name=tiny_test_draft_arch", "draft.vocab_size=512",
        "task.max_new_tokens=12", "task.loader.length=8", "threads=1", "cost_ratio.rounds=1", "cost_ratio.steps=4",
        "logger=none", "progress=false"]


def test_paper_scale_experiment_end_to_end(tmp_path):
    """experiment=paper_scale_t5_large through scripts/run.py (the same harness as every run), shrunk to tiny
    architectures: every (method, α, k) cell of the plan, exact outputs, measured α near the requested one, the
    summary the α-sweep figure reads, env.json flags, and the figure itself."""
    import pandas as pd

    out = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), "experiment=paper_scale_t5_large",
                        f"hydra.run.dir={out}", "task.num_examples=2", *TINY], capture_output=True, text=True,
                       timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    # greedy + hf_greedy + (stairs_cached, hf_assisted) x 3 α x 3 k + stairs (k 2, α 0.9) + hf_assisted_default 2 α
    cells = 2 + 2 * 3 * 3 + 1 + 2
    assert len(lines) == 2 * cells and len({(r["example_id"], r["method"], r["k"], r["alpha_requested"])
                                            for r in lines}) == 2 * cells
    assert all(r["matches_greedy"] and r["schema"] == 5 and r["new_tokens"] == 12 for r in lines)
    summary = pd.read_csv(out / "summary.csv")
    spec = summary[summary.alpha_requested.notna()]
    assert set(summary.method) == {"greedy", "hf_greedy", "stairs", "stairs_cached", "hf_assisted",
                                   "hf_assisted_default"}
    assert set(spec.method) == set(summary.method) - {"greedy", "hf_greedy"}
    assert sorted(spec.alpha_requested.unique()) == [0.5, 0.7, 0.9]
    assert (spec.alpha - spec.alpha_requested).abs().max() < 0.45     # 24 positions per example: loose, but set
    assert summary.cost_ratio_c.dropna().gt(0).all() and spec.bound_speedup.notna().all()
    env_json = json.loads((out / "env.json").read_text())
    assert env_json["architecture_only"] is True and env_json["controlled_draft"] is True

    from stairs_decoding.report import alpha_sweep_table, crossing_alpha, is_alpha_sweep, plot_alpha_sweep

    assert is_alpha_sweep(out)
    paths = plot_alpha_sweep([out], tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    table = alpha_sweep_table([out])["tiny_test_target_arch"]
    assert list(table.index) == [0.5, 0.7, 0.9] and set(table.columns) == {"stairs", "stairs_cached",
                                                                           "hf_assisted", "hf_assisted_default"}
    assert crossing_alpha([out], "stairs_cached", 1e9) is None
