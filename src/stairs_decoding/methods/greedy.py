"""Target alone: encoder once, KV cache, one decoder call per token (the baseline every method must match); with
do_sample=True each token is drawn from the processed scores' softmax, as `model.generate(do_sample=True)` draws it."""
from __future__ import annotations

from ._state import ModelState, Sequence


def decode(model: ModelState, seq: Sequence) -> None:
    while not seq.done:
        logits = model.step(seq)                       # feed the newest committed token(s)
        seq.append(seq.settings.choose(seq.settings(seq.tokens, logits[:, -1])))
        model.select(seq.drop_finished())              # finished rows leave the batch (when it compacts)


def run(target: ModelState, draft: ModelState | None, seq: Sequence, **_) -> None:
    decode(target, seq)
