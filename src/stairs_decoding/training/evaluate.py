"""Saving the pair and evaluating it on the held-out set: greedy chrF, byte share, acceptance α from the engine's
own statistics, and the cost ratio c from `stairs_decoding.timing.measure_cost_ratio` (the harness's estimator)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from .. import timing
from .architecture import n_params

# c: single-token decoder steps with a KV cache of COST_CONTEXT tokens (about the mean decoding position on the
# held-out set, whose references are 32-128 bytes); COST_ROUNDS alternating bursts of COST_STEPS steps per model.
COST_CONTEXT, COST_STEPS, COST_ROUNDS = 32, 24, 5


def save_model(model, tok, path: Path, dtype):
    """Save `model` as `dtype` safetensors with a greedy generation config and the tokenizer; `model` is left fp32."""
    from transformers import GenerationConfig

    path.mkdir(parents=True, exist_ok=True)
    model.config.decoder_start_token_id = 0
    model.config.eos_token_id = 1
    model.config.pad_token_id = 0
    gen = GenerationConfig(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0,
                           bos_token_id=None, do_sample=False, num_beams=1, max_new_tokens=160)
    model.generation_config = gen
    half = model.to(dtype)
    half.save_pretrained(path, safe_serialization=True)
    model.float()
    gen.save_pretrained(path)
    tok.save_pretrained(path)


@torch.no_grad()
def greedy_batch(model, tok, sources, max_new_tokens=160, batch_size=32):
    """Greedy outputs (token ids, decoder start dropped, cut after the first EOS) of `model.generate`."""
    outs = []
    for i in range(0, len(sources), batch_size):
        enc = tok(sources[i : i + batch_size], return_tensors="pt", padding=True)
        gen = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                             decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)
        outs.extend(gen[:, 1:].tolist())  # drop decoder start
    # cut after first eos
    cleaned = []
    for o in outs:
        if 1 in o:
            o = o[: o.index(1) + 1]
        else:
            o = [t for t in o if t != 0]
        cleaned.append(o)
    return cleaned


@torch.no_grad()
def acceptance_proxy(draft, tok, sources, target_ids, batch_size=32):
    """Fraction of positions where draft argmax (teacher-forced on target greedy output) == target token."""
    agree = total = 0
    for i in range(0, len(sources), batch_size):
        enc = tok(sources[i : i + batch_size], return_tensors="pt", padding=True)
        seqs = target_ids[i : i + batch_size]
        T = max(1, max(map(len, seqs)))
        labels = torch.full((len(seqs), T), -100, dtype=torch.long)
        for j, s in enumerate(seqs):
            labels[j, : len(s)] = torch.tensor(s)
        dec_in = labels.clone()
        dec_in[dec_in == -100] = 0
        dec_in = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), dec_in[:, :-1]], 1)
        logits = draft(**enc, decoder_input_ids=dec_in).logits
        mask = labels != -100
        agree += (logits.argmax(-1)[mask] == labels[mask]).sum().item()
        total += mask.sum().item()
    return agree / max(1, total)


@torch.no_grad()
def engine_acceptance(target, draft, tok, sources, reference_ids, k=4, max_new_tokens=160):
    """alpha = accepted / (accepted + rejected rounds) from the decoding engine's own stats (stairs_cached, batch 1).

    Also checks that every output equals the target's greedy output (``reference_ids``).
    """
    from .. import generate

    accepted = rejections = rounds = 0
    for src, ref in zip(sources, reference_ids):
        ids = tok([src], return_tensors="pt").input_ids
        res = generate(target, ids, draft=draft, method="stairs_cached", num_draft_tokens=k,
                       max_new_tokens=max_new_tokens)
        if res.tokens[0] != ref:
            raise AssertionError(f"stairs_cached differs from greedy on {src[:60]!r}")
        accepted += sum(res.stats.accepted)
        rejections += res.stats.rejections
        rounds += len(res.stats.accepted)
    return {"alpha": accepted / max(1, accepted + rejections),
            "accepted_per_round": accepted / max(1, rounds), "k": k, "rounds": rounds}


def cost_ratio(target, draft, tok, source: str) -> dict:
    """`timing.measure_cost_ratio` on one held-out input (batch 1, KV cache of COST_CONTEXT tokens)."""
    input_ids = tok([source], return_tensors="pt").input_ids
    return timing.measure_cost_ratio(target, draft, input_ids, context=COST_CONTEXT, steps=COST_STEPS,
                                     rounds=COST_ROUNDS)


def chrf_baselines(examples: list[dict], prefix: str = "", seeds=(0, 1, 2)) -> dict:
    """Held-out chrF of two outputs that know nothing of the task, the floor a model must clear: the source copied
    (without its task `prefix`), and the references shuffled against each other (one score per seed)."""
    import random

    import sacrebleu

    refs = [e["target"] for e in examples]
    copied = [e["source"][len(prefix):] if e["source"].startswith(prefix) else e["source"] for e in examples]
    shuffled = []
    for seed in seeds:
        other = refs[:]
        random.Random(seed).shuffle(other)
        shuffled.append(round(sacrebleu.corpus_chrf(other, [refs]).score, 2))
    return {"chrf_source_copied": round(sacrebleu.corpus_chrf(copied, [refs]).score, 2),
            "chrf_references_shuffled": shuffled}


def evaluate_heldout(target, draft, tok, examples: list[dict]) -> tuple[dict, list[tuple[str, str, str]]]:
    """(held-out numbers of the pair, keyed as in train_metrics.json; (source, target greedy, reference) of each
    example)."""
    import sacrebleu

    srcs = [e["source"] for e in examples]
    refs = [e["target"] for e in examples]
    tgt_ids = greedy_batch(target, tok, srcs)
    hyps = tok.batch_decode(tgt_ids, skip_special_tokens=True)
    chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    counts = Counter(b for h in hyps for b in h.encode("utf-8"))
    tot = sum(counts.values())
    top_byte, top_n = counts.most_common(1)[0] if counts else (0, 0)
    alpha = acceptance_proxy(draft, tok, srcs, tgt_ids)
    engine = engine_acceptance(target, draft, tok, srcs, tgt_ids)
    dhyps = tok.batch_decode(greedy_batch(draft, tok, srcs), skip_special_tokens=True)
    draft_chrf = sacrebleu.corpus_chrf(dhyps, [refs]).score
    cost = cost_ratio(target, draft, tok, srcs[0])
    numbers = {
        "target_params": n_params(target),
        "draft_params": n_params(draft),
        "target_chrf": round(chrf, 2),
        "target_exact_match": round(exact, 4),
        "draft_greedy_chrf": round(draft_chrf, 2),
        "max_byte_share": round(top_n / max(1, tot), 4),
        "max_byte": chr(top_byte),
        "alpha_proxy": round(alpha, 4),
        "engine_alpha_k4": round(engine["alpha"], 4),
        "engine_accepted_per_round_k4": round(engine["accepted_per_round"], 4),
        "cost_ratio_c": round(cost["cost_ratio_c"], 4),
        "target_decoder_step_ms": round(1000 * cost["target_step_s"], 3),
        "draft_decoder_step_ms": round(1000 * cost["draft_step_s"], 3),
    }
    return numbers, list(zip(srcs, hyps, refs))


def summary_line(ev: dict) -> str:
    """One line of the held-out numbers of `evaluate_heldout`."""
    return (f"held-out: chrF={ev['target_chrf']:.2f} exact={ev['target_exact_match']:.3f} "
            f"draft_chrF={ev['draft_greedy_chrf']:.2f} max_byte_share={ev['max_byte_share']:.3f} "
            f"({ev['max_byte']!r}) alpha_proxy={ev['alpha_proxy']:.3f} engine_alpha_k4={ev['engine_alpha_k4']:.3f} "
            f"c={ev['cost_ratio_c']:.3f} (target {ev['target_decoder_step_ms']:.2f} ms/tok, "
            f"draft {ev['draft_decoder_step_ms']:.2f} ms/tok)")
