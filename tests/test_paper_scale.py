"""Architecture-true random-weight T5 builders, the controlled-acceptance draft, the paper-scale benchmark."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_t5

from stairs_decoding import generate
from stairs_decoding.paper_scale import (T5_ARCHITECTURES, ControlledDraft, build_architecture, canonical_name,
                                         ideal_speedup, parameter_count, t5_config)

ROOT = Path(__file__).resolve().parents[1]
N_NEW = 64
SPECULATIVE = ("stairs", "stairs_cached", "hf_assisted")


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
    with pytest.raises(ValueError, match="unknown T5 architecture 't5-xxl-typo'"):
        canonical_name("t5-xxl-typo")


def test_hydra_nodes_build_through_models_build_model():
    from omegaconf import OmegaConf

    from stairs_decoding.models import build_model

    for group, name in (("model", "t5_large_arch"), ("draft", "t5_small_arch"), ("model", "t5_3b_arch")):
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
            method = SPECULATIVE[i % 3]
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


def test_ideal_speedup():
    assert ideal_speedup(0.0, 0.1, 4) == pytest.approx(1 / 1.4)
    assert ideal_speedup(1.0, 0.0, 4) == 5
    assert ideal_speedup(0.8, 0.1, 4) == pytest.approx((1 - 0.8 ** 5) / (0.2 * 1.4))


# -- the benchmark script, end to end on tiny architectures ---------------------------------------------------
def test_bench_script_end_to_end(tmp_path):
    import pandas as pd

    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_paper_scale.py"), "--target", "tiny-test-target",
           "--draft", "tiny-test-draft", "--alphas", "0.5,0.9", "--ks", "1,3", "--examples", "2",
           "--max-new-tokens", "12", "--prompt-len", "8", "--threads", "1", "--out", str(out),
           "--cost-steps", "4", "--no-figure"]
    spec = importlib.util.spec_from_file_location("bench_paper_scale", cmd[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(cmd[2:]) == 0     # in-process: same code path as the command line, no second import
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    # per example: 2 greedy + 3 methods x 2 alphas x 2 ks
    assert len(lines) == 2 * (2 + 3 * 2 * 2)
    assert all(r["matches_greedy"] for r in lines)
    summary = pd.read_csv(out / "summary.csv")
    for col in ("method", "k", "alpha_requested", "alpha_measured", "median_s", "time_reduction_pct", "speedup",
                "mean_accepted", "cost_ratio_c", "bound_speedup", "achieved_over_bound"):
        assert col in summary.columns
    assert set(summary.method) == {"greedy", "stairs", "stairs_cached", "hf_assisted"}
    env = json.loads((out / "env.json").read_text())
    assert env["peak_rss_mb"] > 0 and env["run_seconds"] > 0 and env["architecture_only"] is True

    from stairs_decoding.report import alpha_sweep_table, crossing_alpha, plot_alpha_sweep

    paths = plot_alpha_sweep([out], tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    table = alpha_sweep_table([out])["tiny-test-target_arch"]
    assert list(table.index) == [0.5, 0.9] and set(table.columns) == {"stairs", "stairs_cached", "hf_assisted"}
    assert crossing_alpha([out], "stairs_cached", 1e9) is None
