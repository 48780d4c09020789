"""Sampling (do_sample=True): speculative sampling returns the target's own sampling distribution.

The statistical test: on tiny random targets with a 12-token vocabulary (encoder-decoder and decoder-only), the
exact distribution of the first three new tokens (cut at EOS) is computed by enumerating every prefix through the
target, with transformers' own warpers (and, in one setting, a repetition penalty, which puts the batch in lockstep);
thousands of rows, two prompts of different lengths (padded), are sampled in one batched `generate()` call per
method, and a chi-square goodness-of-fit test compares the counts with the exact probabilities. Controls: the
target's own sampling passes; the draft alone and a deliberately broken acceptance rule are rejected. Seeds are
fixed, so every p-value is deterministic.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration
from transformers.generation import logits_process as lp

from stairs_decoding import generate
from stairs_decoding.errors import GenerationInputError
from stairs_decoding.methods import _speculative
from stairs_decoding.testing import related_draft, tiny_gpt2, tiny_t5

V, EOS, PAD, T = 12, 1, 0, 3         # vocabulary, special ids, new tokens whose joint distribution is tested
ROWS = 5000                          # samples per prompt (two prompts per call)
PASS_P, REJECT_P = 1e-3, 1e-6        # a correct method must have p > PASS_P; a control must have p < REJECT_P
PROMPTS = ([5, 7, 3, 9, 4], [8, 2, 6])

SETTINGS = {
    "T1": dict(temperature=1.0),
    "T0.7_topk5": dict(temperature=0.7, top_k=5),
    "T1.3_topp0.8": dict(temperature=1.3, top_p=0.8),
}
# A processor that reads the prefix puts a batch in lockstep (every row keeps the batch's shortest accepted run:
# with thousands of rows, none), so that case is sampled in many small batches (test_with_a_logits_processor).
PROCESSOR = dict(temperature=1.3, top_p=0.8, repetition_penalty=1.3)


def _t5(seed: int, d_model: int) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=V, d_model=d_model, d_ff=2 * d_model, d_kv=8, num_heads=2, num_layers=1,
                   num_decoder_layers=1, initializer_factor=0.28, feed_forward_proj="gated-gelu",
                   tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=PAD, eos_token_id=EOS,
                   pad_token_id=PAD)
    return T5ForConditionalGeneration(cfg).eval()


def _gpt2(seed: int, d_model: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=V, n_embd=d_model, n_layer=1, n_head=2, n_positions=64, initializer_range=0.3,
                     bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module", params=["t5", "gpt2"])
def pair(request):
    build = _t5 if request.param == "t5" else _gpt2
    target = build(0, 32)
    return request.param, target, related_draft(target, 0.6, seed=3), build(1, 16)


def _warpers(setting: dict) -> list:
    """transformers' warpers for `setting`, in the order `_get_logits_processor` applies them."""
    out = []
    if setting.get("repetition_penalty"):
        out.append(lp.RepetitionPenaltyLogitsProcessor(setting["repetition_penalty"]))
    if setting.get("temperature", 1.0) != 1.0:
        out.append(lp.TemperatureLogitsWarper(setting["temperature"]))
    if setting.get("top_k"):
        out.append(lp.TopKLogitsWarper(setting["top_k"]))
    if setting.get("top_p", 1.0) < 1.0:
        out.append(lp.TopPLogitsWarper(setting["top_p"]))
    return out


@torch.no_grad()
def exact_distribution(model, prompt: list[int], setting: dict) -> dict[tuple, float]:
    """P(first T new tokens, cut after EOS) under `model`'s sampling with `setting`, by enumerating all prefixes."""
    procs = _warpers(setting)
    enc_dec = model.config.is_encoder_decoder
    head = [PAD] if enc_dec else list(prompt)
    probs: dict[tuple, float] = {(): 1.0}
    for step in range(T):
        grown: dict[tuple, float] = {}
        live = [s for s in probs if not (s and s[-1] == EOS)]
        rows = torch.tensor([head + list(s) for s in live])
        if enc_dec:
            enc = torch.tensor([prompt] * len(live))
            logits = model(input_ids=enc, decoder_input_ids=rows).logits[:, -1].float()
        else:
            logits = model(input_ids=rows, attention_mask=torch.ones_like(rows)).logits[:, -1].float()
        for proc in procs:
            logits = proc(rows, logits)
        p = logits.softmax(-1).double()
        for i, s in enumerate(live):
            for tok in range(V):
                if p[i, tok] > 0:
                    grown[s + (tok,)] = probs[s] * float(p[i, tok])
        grown.update({s: pr for s, pr in probs.items() if s and s[-1] == EOS})
        probs = grown
    return probs


def chi_square_p(counts: dict[tuple, int], expected: dict[tuple, float], n: int) -> tuple[float, float, int]:
    """(statistic, p-value, degrees of freedom) of Pearson's test; outcomes expected < 5 times are pooled."""
    big = [s for s, pr in expected.items() if pr * n >= 5]
    small_p = sum(pr for s, pr in expected.items() if pr * n < 5)
    observed = [counts.get(s, 0) for s in big]
    exp = [expected[s] * n for s in big]
    other = n - sum(observed)
    unexpected = sum(c for s, c in counts.items() if s not in expected)
    if small_p * n > 0:
        observed.append(other)
        exp.append(small_p * n)
    elif other or unexpected:
        return float("inf"), 0.0, len(big) - 1             # an outcome of probability 0 was sampled
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, exp))
    dof = len(exp) - 1
    p = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                      torch.tensor(stat / 2, dtype=torch.float64)))
    return stat, p, dof


def _batch(rows: int):
    """`rows` rows of each prompt, interleaved, right-padded (the encoder-decoder's side; generate() moves a
    decoder-only batch to the left itself)."""
    width = max(len(p) for p in PROMPTS)
    ids = torch.full((rows * len(PROMPTS), width), PAD)
    mask = torch.zeros_like(ids)
    for r in range(ids.shape[0]):
        p = PROMPTS[r % len(PROMPTS)]
        ids[r, :len(p)], mask[r, :len(p)] = torch.tensor(p), 1
    return ids, mask


def sample_counts(target, draft, method: str, k: int, setting: dict, seed: int, rows: int = ROWS,
                  calls: int = 1) -> tuple[list[dict], object]:
    """Outcome counts per prompt of `calls` generate() calls of `rows` rows per prompt, and the last call's stats."""
    ids, mask = _batch(rows)
    torch.manual_seed(seed)
    counts: list[dict] = [{} for _ in PROMPTS]
    for _ in range(calls):
        res = generate(target, ids, attention_mask=mask, draft=draft, method=method, num_draft_tokens=k,
                       max_new_tokens=T, eos_token_id=EOS, do_sample=True, **setting)
        for r, toks in enumerate(res.tokens):
            c = counts[r % len(PROMPTS)]
            c[tuple(toks)] = c.get(tuple(toks), 0) + 1
    return counts, res.stats


def goodness_of_fit(target, counts: list[dict], setting: dict) -> tuple[float, float, int]:
    """The two prompts' chi-square statistics summed (independent samples): (statistic, p, dof)."""
    total_stat, total_dof = 0.0, 0
    for prompt, c in zip(PROMPTS, counts):
        stat, _, dof = chi_square_p(c, exact_distribution(target, prompt, setting), sum(c.values()))
        total_stat, total_dof = total_stat + stat, total_dof + dof
    if total_stat == float("inf"):
        return total_stat, 0.0, total_dof
    p = float(torch.special.gammaincc(torch.tensor(total_dof / 2, dtype=torch.float64),
                                      torch.tensor(total_stat / 2, dtype=torch.float64)))
    return total_stat, p, total_dof


def _varied(target, setting):
    """The test means something only if the target's distribution is spread out (that it differs from the draft's,
    the draft-alone control shows)."""
    dist = exact_distribution(target, PROMPTS[0], setting)
    assert max(dist.values()) < 0.5 and sum(pr > 0.005 for pr in dist.values()) >= 15, dist


# -- the goodness-of-fit tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("method,k", [("stairs_cached", 1), ("stairs_cached", 3), ("stairs", 1), ("stairs", 3)])
def test_speculative_sampling_matches_target_distribution(pair, method, k, setting):
    arch, target, draft, _ = pair
    _varied(target, SETTINGS[setting])
    counts, stats = sample_counts(target, draft, method, k, SETTINGS[setting], seed=11)
    stat, p, dof = goodness_of_fit(target, counts, SETTINGS[setting])
    assert p > PASS_P, f"{arch} {method} k={k} {setting}: chi2={stat:.1f} dof={dof} p={p:.2e}"
    alpha = stats.acceptance_rate
    assert alpha is not None and 0.05 < alpha < 0.98, alpha      # drafts were both kept and rejected
    assert stats.ragged


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_control_target_alone_passes(pair, setting):
    arch, target, _, _ = pair
    counts, _ = sample_counts(target, None, "greedy", 1, SETTINGS[setting], seed=11)
    stat, p, dof = goodness_of_fit(target, counts, SETTINGS[setting])
    assert p > PASS_P, f"{arch} target alone {setting}: chi2={stat:.1f} dof={dof} p={p:.2e}"


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_control_draft_alone_is_rejected(pair, setting):
    arch, target, draft, _ = pair
    counts, _ = sample_counts(target, draft, "draft_greedy", 1, SETTINGS[setting], seed=11)
    stat, p, dof = goodness_of_fit(target, counts, SETTINGS[setting])
    assert p < REJECT_P, f"{arch} draft alone {setting}: chi2={stat:.1f} dof={dof} p={p:.2e}"


def _broken_rule(drafts, q, scores, *, residual: bool, ratio: bool):
    """Speculative sampling with one deliberate bug: `residual=False` draws the token after a rejection from p
    instead of norm(max(0, p − q)); `ratio=False` keeps every draft token (no acceptance test at all)."""
    batch, k = drafts.shape
    p = scores.float().softmax(-1)
    q = p.new_zeros(batch, 0, p.shape[-1]) if q is None else q
    p_d = p[:, :k].gather(-1, drafts[..., None])[..., 0]
    q_d = q.gather(-1, drafts[..., None])[..., 0]
    ok = torch.rand_like(p_d) < (p_d / q_d if ratio else torch.ones_like(p_d))
    n = ok.int().cumprod(1).sum(1)
    out = torch.cat([drafts, drafts.new_zeros(batch, 1)], dim=1)
    for b in range(batch):
        nb = int(n[b])
        dist = p[b, nb] - (q[b, nb] if residual and nb < k else 0)
        dist = dist.clamp(min=0)
        token = torch.multinomial(dist / dist.sum(), 1)
        if nb < k and int(token) == int(drafts[b, nb]):        # keep `agreement` reading n off the tokens
            token = torch.multinomial(p[b, nb], 1)
            while int(token) == int(drafts[b, nb]) and bool((p[b, nb] < 1).all()):
                token = torch.multinomial(p[b, nb], 1)
        out[b, nb] = token
    return out


def residual_from_p(drafts, q, scores):
    return _broken_rule(drafts, q, scores, residual=False, ratio=True)


def always_accept(drafts, q, scores):
    return _broken_rule(drafts, q, scores, residual=True, ratio=False)


@pytest.mark.parametrize("broken", [residual_from_p, always_accept], ids=["residual_from_p", "always_accept"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_control_broken_acceptance_rule_is_rejected(pair, monkeypatch, broken, setting):
    arch, target, draft, _ = pair
    monkeypatch.setattr(_speculative, "speculative_sample", broken)
    counts, _ = sample_counts(target, draft, "stairs_cached", 3, SETTINGS[setting], seed=11)
    stat, p, dof = goodness_of_fit(target, counts, SETTINGS[setting])
    assert p < REJECT_P, f"{arch} {broken.__name__} {setting}: chi2={stat:.1f} dof={dof} p={p:.2e}"


def test_the_enumeration_itself_is_a_distribution(pair):
    _, target, _, _ = pair
    for setting in (*SETTINGS.values(), PROCESSOR):
        for prompt in PROMPTS:
            assert abs(sum(exact_distribution(target, prompt, setting).values()) - 1.0) < 1e-5


@pytest.mark.parametrize("method", ["stairs_cached", "greedy"])
def test_with_a_logits_processor(pair, method):
    """Warpers after a repetition penalty (it reads each position's prefix: lockstep rows), 300 calls of one row per
    prompt, so that drafts are kept; the target alone is the control."""
    arch, target, draft, _ = pair
    _varied(target, PROCESSOR)
    counts, stats = sample_counts(target, draft, method, 3, PROCESSOR, seed=5, rows=1, calls=300)
    stat, p, dof = goodness_of_fit(target, counts, PROCESSOR)
    assert p > PASS_P, f"{arch} {method} {PROCESSOR}: chi2={stat:.1f} dof={dof} p={p:.2e}"
    assert not stats.ragged


# -- the same draws as transformers, and the settings ------------------------------------------------------------
@pytest.mark.parametrize("build", [tiny_t5, tiny_gpt2], ids=["t5", "gpt2"])
@pytest.mark.parametrize("setting", [dict(temperature=0.7), dict(temperature=1.0, top_k=20), dict(top_p=0.8)])
def test_same_seed_same_tokens_as_transformers(build, setting):
    """At batch 1 our loops draw from torch's RNG exactly as transformers' do: the target alone equals
    `model.generate(do_sample=True)` (and hf_greedy, which is that call), and stairs_cached equals hf_assisted,
    transformers' assisted generation at the same constant k (its speculative sampling), token for token, under the
    same seed. The latter only where applying the warpers twice changes nothing (temperature 1, top-k):
    transformers 5.24's assistant applies the target's warpers twice (they are passed to the assistant's generate()
    as a logits_processor and built again from its generation_config), so at temperature 0.7 its draft samples at
    0.49 — still exact (its q is the distribution it drew from), but a different draft than ours."""
    target, draft = build(0), related_draft(build(0), 0.5)
    ids = torch.randint(2, 100, (1, 9), generator=torch.Generator().manual_seed(4))
    prefix = 1 if target.config.is_encoder_decoder else ids.shape[1]
    for seed in range(3):
        torch.manual_seed(seed)
        ref = target.generate(ids, do_sample=True, max_new_tokens=24, **setting)[0, prefix:].tolist()
        ref = ref[:ref.index(EOS) + 1] if EOS in ref else ref
        torch.manual_seed(seed)
        hf_spec = generate(target, ids, draft=draft, method="hf_assisted", max_new_tokens=24, do_sample=True,
                           num_draft_tokens=5, **setting).tokens[0]
        assert hf_spec != ref or seed       # a different draw sequence than the target alone's (not a tautology)
        same_draft = setting.get("temperature", 1.0) == 1.0 and "top_p" not in setting
        for method, expected in (("greedy", ref), ("hf_greedy", ref)) + ((("stairs_cached", hf_spec),)
                                                                         if same_draft else ()):
            torch.manual_seed(seed)
            out = generate(target, ids, draft=draft, method=method, max_new_tokens=24, do_sample=True,
                           num_draft_tokens=5, **setting).tokens[0]
            assert out == expected, (method, seed)


def test_reproducible_varied_and_greedy_at_temperature_zero():
    target = tiny_gpt2(0)
    draft = related_draft(target, 0.5)
    ids = torch.randint(2, 100, (3, 7), generator=torch.Generator().manual_seed(1))
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(generate(target, ids, draft=draft, method="stairs_cached", max_new_tokens=16, do_sample=True,
                             temperature=1.0).tokens)
    assert runs[0] == runs[1] and runs[0] != runs[2]
    greedy = generate(target, ids, draft=draft, method="stairs_cached", max_new_tokens=16).tokens
    assert generate(target, ids, draft=draft, method="stairs_cached", max_new_tokens=16, do_sample=True,
                    temperature=0).tokens == greedy
    assert generate(target, ids, method="greedy", max_new_tokens=16, do_sample=False).tokens == greedy


def test_sampling_setting_without_do_sample_is_refused():
    target = tiny_gpt2(0)
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(GenerationInputError, match="top_p=0.9 only applies to sampling"):
        generate(target, ids, method="greedy", max_new_tokens=4, top_p=0.9)


def test_every_schedule_samples(pair):
    """heuristic, confidence and auto only change how many drafts a round proposes: still the target's law."""
    arch, target, draft, _ = pair
    for schedule in ("heuristic", "confidence", "auto"):
        ids, mask = _batch(ROWS)
        torch.manual_seed(2)
        res = generate(target, ids, attention_mask=mask, draft=draft, method="stairs_cached", num_draft_tokens=2,
                       max_new_tokens=T, eos_token_id=EOS, do_sample=True, schedule=schedule, temperature=1.0)
        counts: list[dict] = [{} for _ in PROMPTS]
        for r, toks in enumerate(res.tokens):
            counts[r % 2][tuple(toks)] = counts[r % 2].get(tuple(toks), 0) + 1
        stat, p, dof = goodness_of_fit(target, counts, dict(temperature=1.0))
        assert p > PASS_P, f"{arch} schedule={schedule}: chi2={stat:.1f} dof={dof} p={p:.2e}"
