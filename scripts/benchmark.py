#!/usr/bin/env python
"""Quick decoding benchmark (issue #2): every method on one pair, interleaved per example, plus HF's own
`target.generate(do_sample=False)` ("hf_greedy") so the overhead of our greedy loop is visible.

    python scripts/benchmark.py --pair tiny-random-t5 --k 4
    python scripts/benchmark.py --pair tiny-random-gpt2 --draft-equals-target
    python scripts/benchmark.py --pair models/tiny-t5/target,models/tiny-t5/draft

Random-weight pairs generate exactly --max-new-tokens tokens (EOS ignored). Not a timed test: numbers depend
on the machine; for the paper's experiments use scripts/run.py.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from stairs_decoding import GenerationInputError, generate
from stairs_decoding.errors import HarnessError
from stairs_decoding.metrics import speedup_bound
from stairs_decoding.timing import interleaved_order, measure_cost_ratio, timed

METHODS = ["greedy", "stairs", "stairs_cached", "hf_assisted", "draft_greedy", "hf_greedy"]


def load_pair(spec: str, draft_equals_target: bool):
    from stairs_decoding import testing

    if spec == "tiny-random-t5":
        target, draft = testing.tiny_t5(0), testing.tiny_t5(1, d_model=32, layers=1)
        random_weights = True
    elif spec == "tiny-random-gpt2":
        target, draft = testing.tiny_gpt2(0), testing.tiny_gpt2(1, d_model=32, layers=1)
        random_weights = True
    else:
        if "," not in spec:
            raise HarnessError("--pair must be tiny-random-t5, tiny-random-gpt2 or <target_path>,<draft_path>")
        from transformers import AutoConfig

        from stairs_decoding.models import load_pretrained

        paths = spec.split(",", 1)
        arch = "encoder_decoder" if AutoConfig.from_pretrained(paths[0]).is_encoder_decoder else "decoder_only"
        target, draft = (load_pretrained(p, arch=arch, device="cpu") for p in paths)
        random_weights = False
    if draft_equals_target:
        draft = target
    return target, draft, random_weights


def hf_greedy(target, ids, max_new_tokens, ignore_eos):
    """HF greedy. With ignore_eos the EOS id is unset (not min_new_tokens, which would suppress EOS and so
    change the argmax whenever EOS is the top token)."""
    from transformers import GenerationConfig

    eos = None if ignore_eos else target.config.eos_token_id
    cfg = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=0,
                           pad_token_id=target.config.pad_token_id, eos_token_id=eos,
                           decoder_start_token_id=getattr(target.config, "decoder_start_token_id", None))
    saved = target.generation_config.eos_token_id
    target.generation_config.eos_token_id = eos
    try:
        with torch.inference_mode():
            out = target.generate(ids, generation_config=cfg, attention_mask=torch.ones_like(ids))
    finally:
        target.generation_config.eos_token_id = saved
    start = 1 if target.config.is_encoder_decoder else ids.shape[1]
    return out[0, start:].tolist()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="tiny-random-t5")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--examples", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draft-equals-target", action="store_true", help="draft = target (α = 1: pure overhead)")
    args = ap.parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        target, draft, ignore_eos = load_pair(args.pair, args.draft_equals_target)
        vocab = target.config.vocab_size
        gen = torch.Generator().manual_seed(args.seed)
        prompts = [torch.randint(3, vocab, (1, args.prompt_len), generator=gen)
                   for _ in range(args.examples + args.warmup)]

        def run(method, ids):
            if method == "hf_greedy":
                toks, sec = timed(lambda: hf_greedy(target, ids, args.max_new_tokens, ignore_eos))
                return toks, None, sec
            res, sec = timed(lambda: generate(target, ids, draft=draft, method=method, num_draft_tokens=args.k,
                                              max_new_tokens=args.max_new_tokens, ignore_eos=ignore_eos))
            return res.tokens[0], res.stats, sec

        for ids in prompts[args.examples:]:
            for m in METHODS:
                run(m, ids)
        cost = measure_cost_ratio(target, draft, prompts[0], context=args.max_new_tokens // 2)
        rows = {m: {"s": [], "tok": 0, "acc": [], "rej": 0, "rounds": 0, "over": 0.0, "match": 0} for m in METHODS}
        for i, ids in enumerate(prompts[:args.examples]):
            ref = None
            for m in interleaved_order(METHODS, i, pinned=1):
                toks, st, sec = run(m, ids)
                if m == "greedy":
                    ref = toks
                r = rows[m]
                r["s"].append(sec)
                r["tok"] += len(toks)
                r["match"] += toks == ref
                if st is not None:
                    r["acc"] += st.accepted
                    r["rej"] += st.rejections
                    r["rounds"] += st.rounds if st.rounds else st.target_calls or st.draft_calls
                    r["over"] += st.overhead_seconds
    except (GenerationInputError, HarnessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    g = statistics.median(rows["greedy"]["s"])
    print(f"pair={args.pair}{' (draft = target)' if args.draft_equals_target else ''} k={args.k} "
          f"examples={args.examples} max_new_tokens={args.max_new_tokens} prompt_len={args.prompt_len} "
          f"threads={torch.get_num_threads()} device=cpu  c={cost['cost_ratio_c']:.3f}")
    head = (f"{'method':14s} {'median s/ex':>11s} {'tok/s':>8s} {'greedy/x':>8s} {'acc/round':>9s} {'alpha':>6s} "
            f"{'bound':>6s} {'ovh ms/round':>12s} {'= greedy':>8s}")
    print(head)
    print("-" * len(head))
    for m in METHODS:
        r = rows[m]
        med = statistics.median(r["s"])
        tot = sum(r["s"])
        acc = sum(r["acc"])
        alpha = acc / (acc + r["rej"]) if (acc + r["rej"]) else float("nan")
        mean_acc = f"{acc / len(r['acc']):.2f}" if r["acc"] else "-"
        bound = speedup_bound(alpha, cost["cost_ratio_c"], args.k) if m in ("stairs", "stairs_cached",
                                                                             "hf_assisted") else float("nan")
        over = f"{1000 * r['over'] / r['rounds']:.3f}" if r["rounds"] else "-"
        print(f"{m:14s} {med:11.4f} {r['tok'] / tot:8.1f} {g / med:8.3f} {mean_acc:>9s} "
              f"{'-' if alpha != alpha else f'{alpha:.3f}':>6s} {'-' if bound != bound else f'{bound:.2f}':>6s} "
              f"{over:>12s} {r['match']:>4d}/{args.examples}")
    print("greedy/x = median greedy time / median time of the method (>1 = faster than our greedy); "
          "ovh = (total - target - draft seconds) per round (per decoder step for greedy/draft_greedy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
