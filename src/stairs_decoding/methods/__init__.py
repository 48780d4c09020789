"""The method registry: one `Method` descriptor per decoding method, read by `generate()`, the harness, the report
and the tests. A new method is its own module plus one `register(Method(...))` line below; the tests parametrize
over `METHODS`, so it is tested from then on.

A descriptor's `module` is the method's code. Our own methods' modules define `run(target_state, draft_state, seq,
*, k, schedule, stats, options, encoder_inputs)` over the shared decoding state (methods/_engine.py builds it); a
method that drives transformers itself (hf_assisted, hf_greedy) defines `generate_run(target, draft, input_ids,
attention_mask, *, k, max_new_tokens, schedule, settings, stats, clock, options)` instead. `Method.run` is that call
either way, and returns the new tokens of each row; `generate()` has validated the arguments against the descriptor
first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import (draft_greedy, greedy, hf_assisted, hf_assisted_default, hf_greedy, lookup, stairs, stairs_cached,
               stairs_tree)
from ._engine import engine_run

# Options of `generate()` that some methods read (`Method.options`), with their defaults: the branches of a
# stairs_tree round, the n-gram sizes of the source lookup (lookup, stairs_tree), and the draft's probability below
# which schedule="confidence" stops drafting (transformers' default assistant_confidence_threshold), and how the draft's
# decoder steps run (methods/_lean.py: "auto" = the lean T5 step where the draft is a T5-family model), and which SDPA
# kernel the target's forwards of several tokens run (verifications; "default" = torch's choice; "math" = torch's
# math backend, for CPUs whose fused kernel costs several times more for several query rows than for one).
OPTION_DEFAULTS = {"num_branches": 3, "max_ngram": 2, "min_ngram": 1, "confidence_threshold": 0.4,
                   "draft_forward": "auto", "verify_attention": "default"}


@dataclass(frozen=True)
class Method:
    name: str
    module: object                        # the method's code (see the module docstring)
    summary: str                          # one line, for docs and errors
    needs_draft: bool = False
    uses_target: bool = True              # False: the draft alone (draft_greedy)
    uses_k: bool = False                  # k (num_draft_tokens) means something; else recorded as k = 0
    speculative: bool = False             # draft proposes, target verifies: α, bound and c apply
    exact: bool = True                    # returns the target's greedy output (draft_greedy does not)
    schedules: tuple[str, ...] = ("constant",)
    batch: bool = True                    # batch size > 1 accepted
    sampling: bool = False                # do_sample=True supported (speculative sampling for the speculative ones)
    options: tuple[str, ...] = ()         # the OPTION_DEFAULTS it reads (others given to generate() are refused)
    caller_mask: bool = False             # runs transformers' own generate(): gets attention_mask exactly as given
    verify_row: bool = False              # verifies k+1 tokens as one cached causal row: costs v(k+1) target steps
    label: str = ""                       # legend label in figures
    color: str = "#555555"
    marker: str = "o"

    @property
    def run(self) -> Callable:
        own = getattr(self.module, "generate_run", None)
        return own if own is not None else (lambda *args, **kw: engine_run(self, *args, **kw))

    def option_values(self, given: dict) -> dict:
        """Every option this method reads: `given` (not None) over OPTION_DEFAULTS."""
        return {name: given.get(name) if given.get(name) is not None else OPTION_DEFAULTS[name]
                for name in self.options}


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


register(Method("greedy", greedy, "the target alone, KV cache, one decoder call per token (the reference)",
                sampling=True, label="greedy (target alone)", color="#555555", marker="D"))
register(Method("stairs", stairs, "the paper's stairs batch: k+1 prefixes verified in one uncached forward",
                needs_draft=True, uses_k=True, speculative=True,
                schedules=("constant", "heuristic", "confidence", "auto", "cost"), sampling=True,
                options=("confidence_threshold", "draft_forward", "verify_attention"), label="stairs (paper)",
                color="#1f77b4", marker="o"))
register(Method("stairs_cached", stairs_cached, "ours: one causal row of k+1 tokens through persistent "
                "KV caches, rolled back after each round", needs_draft=True, uses_k=True, speculative=True,
                verify_row=True, schedules=("constant", "heuristic", "confidence", "auto", "cost"), sampling=True,
                options=("confidence_threshold", "draft_forward", "verify_attention"), label="stairs_cached (ours)",
                color="#2ca02c", marker="s"))
register(Method("lookup", lookup, "ours: no draft model; n-gram lookup in the source (encoder input or prompt) and "
                "the output so far proposes up to k tokens, verified as in stairs_cached", uses_k=True,
                speculative=True, verify_row=True, schedules=("constant", "heuristic", "cost"),
                options=("max_ngram", "min_ngram", "verify_attention"),
                label="lookup (ours, no draft)", color="#17becf", marker="*"))
register(Method("stairs_tree", stairs_tree, "ours: one target call verifies several branches as rows of a batch "
                "(the draft's continuation, source lookups, the draft's runner-up tokens); the longest verified "
                "wins and its cache row is kept", needs_draft=True, uses_k=True, speculative=True,
                schedules=("constant", "heuristic", "confidence"),
                options=("num_branches", "max_ngram", "min_ngram", "confidence_threshold", "draft_forward",
                         "verify_attention"),
                label="stairs_tree (ours)", color="#e377c2", marker="h"))
register(Method("hf_assisted", hf_assisted, "Hugging Face assisted generation, target.generate("
                "assistant_model=draft), constant k", needs_draft=True, uses_k=True, speculative=True,
                verify_row=True, batch=False, schedules=("constant", "confidence"), sampling=True, options=("confidence_threshold",),
                caller_mask=True, label="HF assisted (transformers)", color="#d62728", marker="^"))
register(Method("hf_assisted_default", hf_assisted_default, "Hugging Face assisted generation with transformers' "
                "defaults (confidence stop 0.4, no decoder mask), k set on the draft's generation_config",
                needs_draft=True, uses_k=True, speculative=True, verify_row=True, batch=False, caller_mask=True,
                sampling=True, label="HF assisted, defaults", color="#ff7f0e", marker="P"))
register(Method("draft_greedy", draft_greedy, "the draft alone, greedily (the quality/speed floor)",
                needs_draft=True, uses_target=False, exact=False, sampling=True, label="draft alone", color="#9467bd", marker="v"))
register(Method("hf_greedy", hf_greedy, "transformers' own target.generate(do_sample=False): the overhead "
                "reference for our greedy loop", sampling=True, caller_mask=True, label="HF greedy (transformers)",
                color="#8c564b", marker="x"))

SCHEDULES = tuple(dict.fromkeys(s for m in METHODS.values() for s in m.schedules))


def get(name: str) -> Method:
    """The descriptor of `name`; KeyError with the valid names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


def speculative() -> list[str]:
    return [m.name for m in METHODS.values() if m.speculative]


__all__ = ["METHODS", "Method", "OPTION_DEFAULTS", "SCHEDULES", "get", "register", "speculative"]
