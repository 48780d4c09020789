"""The training loop: length-bucketed batches, warm-up + cosine learning rate, cross-entropy (target) or
distillation from a teacher's logits (draft), plus the guided-alignment loss on the cross-attention."""
from __future__ import annotations

import math
import random
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import TASK_PREFIX, compress_aligned


def encode_batch(tok, exs, device="cpu"):
    """(input_ids, attention_mask, decoder_input_ids, labels) of a list of examples, right-padded."""
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
    """Linear warm-up to `peak`, then cosine decay to 5 % of it at step `total`."""
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


def distillation_loss(logits, t_logits, labels, temperature=1.0, hard_weight=0.0) -> torch.Tensor:
    """KL(teacher || student) at temperature `temperature`, averaged over real target positions, plus
    `hard_weight` times the cross-entropy on the references."""
    mask = labels != -100
    t_logp = F.log_softmax(t_logits.float()[mask] / temperature, dim=-1)
    s_logp = F.log_softmax(logits.float()[mask] / temperature, dim=-1)
    loss = (t_logp.exp() * (t_logp - s_logp)).sum(-1).mean() * temperature**2
    if hard_weight:
        loss = loss + hard_weight * F.cross_entropy(logits.float()[mask], labels[mask])
    return loss


def step_losses(model, exs, batch, *, teacher=None, temperature=1.0, hard_weight=0.0, align_weight=0.0):
    """(task loss, alignment loss or None) of one encoded batch of examples `exs`."""
    input_ids, attn, dec_in, labels = batch
    out = model(input_ids=input_ids, attention_mask=attn, decoder_input_ids=dec_in,
                output_attentions=bool(align_weight))
    logits = out.logits
    if teacher is None:
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
    else:
        with torch.no_grad():
            t_logits = teacher(input_ids=input_ids, attention_mask=attn, decoder_input_ids=dec_in).logits
        loss = distillation_loss(logits, t_logits, labels, temperature, hard_weight)
    al = alignment_loss(out.cross_attentions, alignment_targets(exs, labels.shape)) if align_weight else None
    return loss, al


def _ema(prev, x):
    return x if prev is None else 0.95 * prev + 0.05 * x


def train_loop(name, model, train, tok, steps, batch_size, lr, warmup, seed,
               teacher=None, temperature=1.0, hard_weight=0.0, align_weight=0.0, bf16=False):
    """Train `model` for exactly `steps` AdamW steps on `train` (deterministic under `seed`); returns a summary."""
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
        batch = encode_batch(tok, exs)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, al = step_losses(model, exs, batch, teacher=teacher, temperature=temperature,
                                   hard_weight=hard_weight, align_weight=align_weight)
            total = loss if al is None else loss + align_weight * al
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = _ema(ema, loss.item())
        post = {"loss": f"{ema:.4f}", "lr": f"{opt.param_groups[0]['lr']:.1e}"}
        if al is not None:
            ema_al = _ema(ema_al, al.item())
            post["align"] = f"{ema_al:.3f}"
        pbar.set_postfix(post)
    model.eval()
    if align_weight:
        model.set_attn_implementation("sdpa")
    return {"steps_done": steps, "seconds": round(time.time() - t0, 1),
            "final_loss_ema": round(ema, 5) if ema is not None else None,
            "final_align_loss_ema": round(ema_al, 5) if ema_al is not None else None}
