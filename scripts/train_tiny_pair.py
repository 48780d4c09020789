#!/usr/bin/env python
"""Train a tiny, real T5 target/draft pair on CPU for offline speculative-decoding runs.

Data: English prose from the Python documentation shipped with the standard
library (``pydoc_data.topics.topics``, PSF licence), split deterministically by
topic key into train and held-out topics.

Task ("compress"): a deterministic extractive rewrite.  The output is the input
sentence with parenthetical ``(...)`` spans and a fixed list of English
stop-words removed, whitespace normalised.  The output copies (and drops) spans
of the input; ``compress_aligned()`` also says which input byte each output byte
copies.

Pipeline:
  1. build examples, write ``<data-out>/tiny_heldout.jsonl``;
  2. train the target (T5, d_model 192, 12 small heads, 8+8 layers) with cross-entropy plus a
     guided-alignment loss on head 0 of every decoder cross-attention (without
     it, byte-level T5s this small sit on the byte-LM plateau for thousands of
     CPU steps);
  3. save the target (float16), reload it, and build the draft from it: the
     target's encoder (frozen) under a one-layer decoder initialised from the
     target's first decoder block; distil it from the target's logits (KL on
     teacher-forced *reference* training pairs) plus the alignment loss;
  4. save the draft (float16 safetensors + ByT5 tokenizer + generation config);
  5. reload both in float32 and evaluate on the held-out set: target greedy
     chrF, max byte share, acceptance alpha from the engine's own stats
     (stairs_cached, k=4), cost ratio c; write ``<out>/train_metrics.json``.

Fixed seeds, fixed step counts and a fixed thread count: the same command on the
same machine reproduces the weights bit for bit.

Example:
    python scripts/train_tiny_pair.py --seed 0 --out models/tiny-t5
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stairs_decoding.compat import output_cache, with_cache

TASK_PREFIX = "compress: "

STOPWORDS = frozenset(
    """
    the a an of to is are was were be been being that this these those which
    in on at for by with from as it its or and but if then than so such
    there their they them can may will would should could does do has have had
    """.split()
)

# A stop-word only counts when it is a standalone word (not part of a dotted
# name, an identifier, a contraction or a hyphenated word).
_STOP_RE = re.compile(
    r"(?<![\w.'`\-])(" + "|".join(sorted(STOPWORDS, key=len, reverse=True)) + r")(?![\w.'`\-])",
    re.IGNORECASE,
)
_PAREN_RE = re.compile(r"\s*\([^()]*\)")
_WS_RE = re.compile(r"\s+")
_SPACE_PUNCT_RE = re.compile(r"\s+([.,;:!?])")


def compress(sentence: str) -> str:
    """The deterministic target function of the task."""
    s = _PAREN_RE.sub("", sentence)
    s = _STOP_RE.sub("", s)
    s = _WS_RE.sub(" ", s)
    s = _SPACE_PUNCT_RE.sub(r"\1", s)
    return s.strip()


def _drop_matches(s: str, idx: list[int], pattern, keep_group: int | None = None, repl: str | None = None):
    """Apply ``pattern.sub`` to ``s`` while carrying each kept character's source index."""
    out_s, out_i, last = [], [], 0
    for m in pattern.finditer(s):
        out_s.append(s[last : m.start()])
        out_i.extend(idx[last : m.start()])
        if keep_group is not None:  # replacement is the group's text
            out_s.append(m.group(keep_group))
            out_i.extend(idx[m.start(keep_group) : m.end(keep_group)])
        elif repl is not None:  # replacement is one character aligned to the match start
            out_s.append(repl)
            out_i.append(idx[m.start()])
        last = m.end()
    out_s.append(s[last:])
    out_i.extend(idx[last:])
    return "".join(out_s), out_i


def compress_aligned(sentence: str) -> tuple[str, list[int]]:
    """``compress(sentence)`` plus, for every output character, the index of the input character it copies.

    The output of the task is a subsequence of its input, so this alignment is exact; training uses it
    to supervise one cross-attention head per decoder layer (guided alignment), which shortens the
    long plateau a byte-level T5 otherwise sits on before it discovers copying.
    """
    s, idx = sentence, list(range(len(sentence)))
    s, idx = _drop_matches(s, idx, _PAREN_RE)
    s, idx = _drop_matches(s, idx, _STOP_RE)
    s, idx = _drop_matches(s, idx, _WS_RE, repl=" ")
    s, idx = _drop_matches(s, idx, _SPACE_PUNCT_RE, keep_group=1)
    a, b = len(s) - len(s.lstrip()), len(s.rstrip())
    s, idx = s[a:b], idx[a:b]
    if s != compress(sentence):  # pragma: no cover - guarded by tests
        raise AssertionError(f"alignment drifted from compress(): {s!r}")
    return s, idx


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------
_SENT_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _paragraphs(text: str):
    """Prose paragraphs of a pydoc topic (indented code/grammar blocks skipped)."""
    para: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if para:
                yield " ".join(para)
                para = []
            continue
        if line.startswith(" ") or set(line.strip()) <= set("*=-~^"):
            # indented block (code, grammar, tables) or a heading underline
            if para:
                yield " ".join(para)
                para = []
            continue
        para.append(line.strip())
    if para:
        yield " ".join(para)


def _good_unit(s: str, min_len: int, max_len: int, need_upper: bool = True) -> bool:
    if not (min_len <= len(s) <= max_len):
        return False
    if not s.isascii() or (need_upper and not s[0].isupper()):
        return False
    if ">>>" in s or "::=" in s or "http" in s:
        return False
    letters = sum(c.isalpha() or c == " " for c in s)
    return letters / len(s) >= 0.8


def windows_of(text: str, min_len: int, max_len: int, rng: random.Random, passes: int) -> list[str]:
    """Random word-aligned windows of prose (training augmentation; any text is a valid input)."""
    out = []
    for para in _paragraphs(text):
        words = para.split()
        for _ in range(passes):
            i = rng.randrange(0, 4)
            while i < len(words):
                want = rng.randint(min_len, max_len)
                j, cur = i, ""
                while j < len(words) and len(cur) + len(words[j]) + (1 if cur else 0) <= want:
                    cur = words[j] if not cur else cur + " " + words[j]
                    j += 1
                if _good_unit(cur, min_len, max_len, need_upper=False):
                    out.append(cur)
                i = max(j, i + 1)
    return out


def sentences_of(text: str, min_len: int, max_len: int) -> list[str]:
    out = []
    for para in _paragraphs(text):
        for sent in _SENT_SPLIT_RE.split(para):
            sent = sent.strip()
            units = [sent] if len(sent) <= max_len else [u.strip() for u in sent.split("; ")]
            for u in units:
                if u and len(u) > max_len and ", " in u:
                    # long clause: greedily pack comma-separated pieces
                    buf = ""
                    for piece in u.split(", "):
                        cand = piece if not buf else buf + ", " + piece
                        if len(cand) <= max_len:
                            buf = cand
                        else:
                            if buf:
                                out.append(buf)
                            buf = piece
                    if buf:
                        out.append(buf)
                else:
                    out.append(u)
    return [s for s in out if _good_unit(s, min_len, max_len)]


def is_heldout_topic(key: str, heldout_mod: int) -> bool:
    """Deterministic, seed-independent split by topic key."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return h % heldout_mod == 0


def build_examples(min_src: int, max_src: int, min_tgt: int, max_tgt: int, heldout_mod: int,
                   window_passes: int = 0, seed: int = 0):
    from pydoc_data.topics import topics

    train, heldout = [], []
    seen: set[str] = set()
    train_keys, heldout_keys = [], []
    for key in sorted(topics):
        ho = is_heldout_topic(key, heldout_mod)
        (heldout_keys if ho else train_keys).append(key)
        for i, sent in enumerate(sentences_of(topics[key], min_src, max_src)):
            if sent in seen:
                continue
            seen.add(sent)
            tgt = compress(sent)
            if not (min_tgt <= len(tgt) <= max_tgt):
                continue
            ex = {"id": f"{key}-{i}", "source": TASK_PREFIX + sent, "target": tgt}
            (heldout if ho else train).append(ex)
    # augmentation: random word windows from TRAIN topics only
    rng = random.Random(seed)
    n_sent = len(train)
    for key in train_keys:
        for i, w in enumerate(windows_of(topics[key], min_src, max_src, rng, window_passes)):
            if w in seen:
                continue
            seen.add(w)
            tgt = compress(w)
            if min_tgt <= len(tgt) <= max_tgt:
                train.append({"id": f"{key}-w{i}", "source": TASK_PREFIX + w, "target": tgt})
    # a text that occurs in both splits must not leak: drop it from train
    ho_src = {e["source"] for e in heldout}
    train = [e for e in train if e["source"] not in ho_src]
    print(f"train: {n_sent} sentences + {len(train) - n_sent} windows")
    return train, heldout, train_keys, heldout_keys


# ----------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------
def make_config(d_model, d_ff, heads, layers, d_kv=None):
    """T5 config with equal encoder and decoder depth: transformers 5.x sizes the decoder KV cache
    from ``num_layers`` (the encoder's), so a deeper decoder crashes cached decoding."""
    from transformers import T5Config

    return T5Config(
        vocab_size=384,
        d_model=d_model,
        d_kv=d_kv or d_model // heads,
        d_ff=d_ff,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def draft_from_target(target, dec_layers: int):
    """The draft: the target's encoder (frozen copy) under a shallow decoder initialised from the target's first
    ``dec_layers`` decoder blocks (block 0 holds the relative-position bias) and its final norm.

    Only the decoder runs per token, so the draft's per-token cost is set by ``dec_layers``; sharing the target's
    encoder representation lets a one-layer decoder learn to copy in a few hundred distillation steps (a
    from-scratch 1+1-layer draft stayed on the byte-LM plateau).  Encoder deeper than decoder is fine for
    transformers' cache (the reverse crashes it).
    """
    import copy

    from transformers import T5ForConditionalGeneration

    cfg = copy.deepcopy(target.config)
    cfg.num_decoder_layers = dec_layers
    draft = T5ForConditionalGeneration(cfg)
    keep = {k: v.detach().clone() for k, v in target.state_dict().items()
            if not k.startswith("decoder.block.") or int(k.split(".")[2]) < dec_layers}
    draft.load_state_dict(keep, strict=True)
    for prm in draft.encoder.parameters():  # includes the shared (tied) embedding / LM head
        prm.requires_grad_(False)
    return draft


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_batch(tok, exs, device="cpu"):
    src = [tok(e["source"]).input_ids for e in exs]  # ends with eos (1)
    tgt = [tok(e["target"]).input_ids for e in exs]
    S = max(map(len, src))
    T = max(map(len, tgt))
    input_ids = torch.zeros(len(exs), S, dtype=torch.long)
    attn = torch.zeros(len(exs), S, dtype=torch.long)
    labels = torch.full((len(exs), T), -100, dtype=torch.long)
    for i, (s, t) in enumerate(zip(src, tgt)):
        input_ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        labels[i, : len(t)] = torch.tensor(t)
    dec_in = labels.clone()
    dec_in[dec_in == -100] = 0
    dec_in = torch.cat([torch.zeros(len(exs), 1, dtype=torch.long), dec_in[:, :-1]], dim=1)
    return input_ids, attn, dec_in, labels


def batches(examples, batch_size, rng: random.Random, tok_len):
    """Length-bucketed batches (cheaper padding), deterministic under rng."""
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    chunk = batch_size * 20
    out = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c : c + chunk], key=tok_len)
        out.extend(part[b : b + batch_size] for b in range(0, len(part), batch_size))
    rng.shuffle(out)
    return [b for b in out if len(b) == batch_size] or out


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    prog = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))


def alignment_targets(exs, shape) -> torch.Tensor:
    """Source position each target token copies (EOS -> source EOS), -100 on padding."""
    out = torch.full(shape, -100, dtype=torch.long)
    p = len(TASK_PREFIX)
    for i, e in enumerate(exs):
        src = e["source"][p:]
        _, idx = compress_aligned(src)
        pos = [p + j for j in idx] + [len(e["source"])]  # bytes == tokens (ASCII); EOS after the source
        out[i, : len(pos)] = torch.tensor(pos)
    return out


def alignment_loss(cross_attentions, targets: torch.Tensor) -> torch.Tensor:
    """Guided alignment: NLL of the copied source position under head 0 of every decoder layer."""
    losses = [F.nll_loss(torch.log(a[:, 0].float().clamp_min(1e-6)).reshape(-1, a.size(-1)),
                         targets.view(-1), ignore_index=-100) for a in cross_attentions]
    return sum(losses) / len(losses)


def train_loop(name, model, train, tok, steps, batch_size, lr, warmup, seed,
               teacher=None, temperature=1.0, hard_weight=0.0, align_weight=0.0, bf16=False):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=lr, betas=(0.9, 0.98),
                            weight_decay=0.01)
    if align_weight:
        model.set_attn_implementation("eager")  # sdpa does not return attention weights
    model.train()
    lens = [len(e["source"]) + len(e["target"]) for e in train]
    queue: list = []
    ema = ema_al = None
    t0 = time.time()
    pbar = tqdm(range(steps), desc=f"train {name}", dynamic_ncols=True, mininterval=2.0)
    for step in pbar:
        if not queue:
            queue = batches(train, batch_size, rng, lambda i: lens[i])
        exs = [train[i] for i in queue.pop()]
        input_ids, attn, dec_in, labels = encode_batch(tok, exs)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=input_ids, attention_mask=attn, decoder_input_ids=dec_in,
                        output_attentions=bool(align_weight))
            logits = out.logits
            mask = labels != -100
            if teacher is None:
                loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
            else:
                with torch.no_grad():
                    t_logits = teacher(input_ids=input_ids, attention_mask=attn, decoder_input_ids=dec_in).logits
                t_logp = F.log_softmax(t_logits.float()[mask] / temperature, dim=-1)
                s_logp = F.log_softmax(logits.float()[mask] / temperature, dim=-1)
                # KL(teacher || student), averaged over real target positions
                loss = (t_logp.exp() * (t_logp - s_logp)).sum(-1).mean() * temperature**2
                if hard_weight:
                    loss = loss + hard_weight * F.cross_entropy(logits.float()[mask], labels[mask])
            total = loss
            if align_weight:
                al = alignment_loss(out.cross_attentions, alignment_targets(exs, labels.shape))
                total = loss + align_weight * al
                ema_al = al.item() if ema_al is None else 0.95 * ema_al + 0.05 * al.item()
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        li = loss.item()
        ema = li if ema is None else 0.95 * ema + 0.05 * li
        post = {"loss": f"{ema:.4f}", "lr": f"{opt.param_groups[0]['lr']:.1e}"}
        if ema_al is not None:
            post["align"] = f"{ema_al:.3f}"
        pbar.set_postfix(post)
    model.eval()
    if align_weight:
        model.set_attn_implementation("sdpa")
    return {"steps_done": steps, "seconds": round(time.time() - t0, 1),
            "final_loss_ema": round(ema, 5) if ema is not None else None,
            "final_align_loss_ema": round(ema_al, 5) if ema_al is not None else None}


# ----------------------------------------------------------------------------
# saving / evaluation
# ----------------------------------------------------------------------------
def save_model(model, tok, path: Path, dtype):
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
def decoder_step_time(model, tok, source, steps=64, repeats=7):
    """Median per-token decoder time (batch 1, KV cache, encoder output fixed)."""
    enc = tok([source], return_tensors="pt")
    enc_out = model.get_encoder()(**enc)
    times = []
    for r in range(repeats):
        past = None
        tokid = torch.zeros(1, 1, dtype=torch.long)
        t0 = time.perf_counter()
        for _ in range(steps):
            out = model(encoder_outputs=enc_out, attention_mask=enc["attention_mask"],
                        decoder_input_ids=tokid, use_cache=True, **with_cache(model, past))
            past = output_cache(out)
            tokid = out.logits[:, -1:].argmax(-1)
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times[1:])  # first repeat is warm-up


@torch.no_grad()
def engine_acceptance(target, draft, tok, sources, reference_ids, k=4, max_new_tokens=160):
    """alpha = accepted / (accepted + rejected rounds) from the decoding engine's own stats (stairs_cached, batch 1).

    Also checks that every output equals the target's greedy output (``reference_ids``).
    """
    from stairs_decoding import generate

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


def measure_cost_ratio(target, draft, tok, source):
    # interleave to reduce drift
    tt, td = [], []
    for _ in range(3):
        tt.append(decoder_step_time(target, tok, source))
        td.append(decoder_step_time(draft, tok, source))
    t, d = statistics.median(tt), statistics.median(td)
    return d / t, t, d


# ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="models/tiny-t5")
    p.add_argument("--data-out", default="data")
    p.add_argument("--target-steps", type=int, default=1600)
    p.add_argument("--draft-steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--target-lr", type=float, default=1e-3)
    p.add_argument("--draft-lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--temperature", type=float, default=1.0, help="distillation temperature")
    p.add_argument("--hard-weight", type=float, default=0.0, help="extra CE weight on references for the draft")
    p.add_argument("--align-weight", type=float, default=1.0,
                   help="weight of the guided-alignment loss on head 0 of each decoder cross-attention (0 = off)")
    # architecture
    # deep and narrow: the draft is one decoder layer, and at batch 1 each layer costs about the same whatever its
    # width, so many target decoder layers per draft layer is what makes the draft cheap (c 0.17 at 8 vs 0.36 at 4)
    p.add_argument("--target-d-model", type=int, default=192)
    p.add_argument("--target-d-ff", type=int, default=768)
    p.add_argument("--target-heads", type=int, default=12,
                   help="many small heads (d_kv 16): the copy circuit forms much sooner with 16 than with 4 heads")
    p.add_argument("--target-layers", type=int, default=8, help="encoder and decoder layers each")
    p.add_argument("--draft-layers", type=int, default=1,
                   help="decoder layers of the draft; its encoder is a frozen copy of the target's (it runs "
                        "once per input, so only the decoder sets the per-token cost)")
    # data
    p.add_argument("--min-src", type=int, default=40)
    p.add_argument("--max-src", type=int, default=132)
    p.add_argument("--min-tgt", type=int, default=32)
    p.add_argument("--max-tgt", type=int, default=128)
    p.add_argument("--heldout-mod", type=int, default=5, help="topic is held out iff sha1(key) %% mod == 0")
    p.add_argument("--window-passes", type=int, default=4,
                   help="random word-window passes over train-topic prose (augmentation)")
    p.add_argument("--eval-max", type=int, default=0, help="evaluate on at most N held-out examples (0 = all)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast for training (faster only on CPUs with native bf16 and no contention)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads (fixed, for bit-reproducible training on one machine; another thread "
                        "count gives other bits)")
    p.add_argument("--skip-train", action="store_true", help="only (re)evaluate models already in --out")
    p.add_argument("--target-from", default=None,
                   help="experiments only: load this trained target instead of training one, then train the draft")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)

    t_start = time.time()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    tok = ByT5Tokenizer()
    out = Path(args.out)
    data_out = Path(args.data_out)

    train, heldout, train_keys, heldout_keys = build_examples(
        args.min_src, args.max_src, args.min_tgt, args.max_tgt, args.heldout_mod,
        args.window_passes, args.seed)
    print(f"topics: {len(train_keys)} train / {len(heldout_keys)} held-out; "
          f"examples: {len(train)} train / {len(heldout)} held-out")
    print("held-out topics:", ", ".join(heldout_keys))
    data_out.mkdir(parents=True, exist_ok=True)
    with open(data_out / "tiny_heldout.jsonl", "w", encoding="utf-8") as f:
        for e in heldout:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    for e in heldout[:2]:
        print("  example:", json.dumps(e))

    tcfg = make_config(args.target_d_model, args.target_d_ff, args.target_heads, args.target_layers)
    info = {}
    if not args.skip_train:
        torch.manual_seed(args.seed)
        if args.target_from:
            target = T5ForConditionalGeneration.from_pretrained(args.target_from, dtype=torch.float32)
            info["target_from"] = str(args.target_from)
            prev = Path(args.target_from).parent / "train_info.json"
            if prev.exists() and "target_train" in json.load(open(prev)):
                info["target_train"] = json.load(open(prev))["target_train"]
        else:
            target = T5ForConditionalGeneration(tcfg)
            info["target_train"] = train_loop(
                "target", target, train, tok, args.target_steps, args.batch_size, args.target_lr,
                args.warmup, args.seed, align_weight=args.align_weight, bf16=args.bf16)
            print("target:", info["target_train"])
        # the draft is distilled from exactly the shipped target: its float16 weights, reloaded as float32
        save_model(target, tok, out / "target", torch.float16)
        target = T5ForConditionalGeneration.from_pretrained(out / "target", dtype=torch.float32).eval()
        for prm in target.parameters():
            prm.requires_grad_(False)
        torch.manual_seed(args.seed + 1)
        draft = draft_from_target(target, args.draft_layers)
        print(f"params: target {n_params(target):,}  draft {n_params(draft):,} "
              f"({n_params(draft.decoder) - n_params(draft.shared):,} in its decoder)")
        info["draft_train"] = train_loop(
            "draft", draft, train, tok, args.draft_steps, args.batch_size, args.draft_lr,
            args.warmup, args.seed + 1, teacher=target, temperature=args.temperature,
            hard_weight=args.hard_weight, align_weight=args.align_weight, bf16=args.bf16)
        print("draft:", info["draft_train"])
        save_model(draft, tok, out / "draft", torch.float16)
        info["train_wall_seconds"] = round(time.time() - t_start, 1)
        if args.target_from and "target_train" in info:
            info["train_wall_seconds_incl_target"] = round(
                info["train_wall_seconds"] + info["target_train"]["seconds"], 1)
        with open(out / "train_info.json", "w") as f:
            json.dump(info, f, indent=2)
        del target, draft
    elif (out / "train_info.json").exists():
        info = json.load(open(out / "train_info.json"))
    train_seconds = time.time() - t_start

    # ---- evaluation on the saved (float16 -> float32) weights ----
    import sacrebleu

    target = T5ForConditionalGeneration.from_pretrained(out / "target", dtype=torch.float32).eval()
    draft = T5ForConditionalGeneration.from_pretrained(out / "draft", dtype=torch.float32).eval()
    ev = heldout if not args.eval_max else heldout[: args.eval_max]
    srcs = [e["source"] for e in ev]
    refs = [e["target"] for e in ev]
    t0 = time.time()
    tgt_ids = greedy_batch(target, tok, srcs)
    hyps = tok.batch_decode(tgt_ids, skip_special_tokens=True)
    chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    counts = Counter(b for h in hyps for b in h.encode("utf-8"))
    tot = sum(counts.values())
    top_byte, top_n = counts.most_common(1)[0] if counts else (0, 0)
    max_share = top_n / max(1, tot)
    alpha = acceptance_proxy(draft, tok, srcs, tgt_ids)
    engine = engine_acceptance(target, draft, tok, srcs, tgt_ids)
    dgen_ids = greedy_batch(draft, tok, srcs)
    dhyps = tok.batch_decode(dgen_ids, skip_special_tokens=True)
    draft_chrf = sacrebleu.corpus_chrf(dhyps, [refs]).score
    c, t_step, d_step = measure_cost_ratio(target, draft, tok, srcs[0])
    eval_seconds = time.time() - t0
    for s, h, r in list(zip(srcs, hyps, refs))[:5]:
        print(f"SRC : {s}\nREF : {r}\nHYP : {h}\n")

    metrics = {
        "seed": args.seed,
        "heldout_examples": len(ev),
        "train_examples": len(train),
        "train_topics": len(train_keys),
        "heldout_topics": heldout_keys,
        "target_params": n_params(target),
        "draft_params": n_params(draft),
        "target_chrf": round(chrf, 2),
        "target_exact_match": round(exact, 4),
        "draft_greedy_chrf": round(draft_chrf, 2),
        "max_byte_share": round(max_share, 4),
        "max_byte": chr(top_byte),
        "alpha_proxy": round(alpha, 4),
        "engine_alpha_k4": round(engine["alpha"], 4),
        "engine_accepted_per_round_k4": round(engine["accepted_per_round"], 4),
        "cost_ratio_c": round(c, 4),
        "target_decoder_step_ms": round(1000 * t_step, 3),
        "draft_decoder_step_ms": round(1000 * d_step, 3),
        "train_wall_seconds": info.get("train_wall_seconds", round(train_seconds, 1)),
        "eval_wall_seconds": round(eval_seconds, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "args": vars(args),
        **info,
    }
    print(f"held-out: chrF={chrf:.2f} exact={exact:.3f} draft_chrF={draft_chrf:.2f} "
          f"max_byte_share={max_share:.3f} ({chr(top_byte)!r}) alpha_proxy={alpha:.3f} engine_alpha_k4={engine['alpha']:.3f} "
          f"c={c:.3f} (target {1000*t_step:.2f} ms/tok, draft {1000*d_step:.2f} ms/tok)")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"wrote {out / 'train_metrics.json'}; total wall {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
