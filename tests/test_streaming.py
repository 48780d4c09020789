"""Streaming (transformers' streamer protocol) from every method at batch 1: the prompt first (an encoder-decoder's
decoder start), then the committed tokens in order, each once, then end() — the same stream model.generate gives."""
import pytest
import torch
from transformers import TextStreamer

from conftest import VOCAB, tiny_gpt2, tiny_t5
from stairs_decoding import generate
from stairs_decoding.errors import GenerationInputError
from stairs_decoding.methods import METHODS
from stairs_decoding.testing import related_draft


class Recorder:
    def __init__(self):
        self.puts, self.ended = [], 0

    def put(self, value):
        assert not self.ended, "put after end"
        self.puts.append(value.reshape(-1).tolist() if value.dim() < 2 or value.shape[0] == 1 else value.tolist())

    def end(self):
        self.ended += 1


_PAIRS = {}


def pair(arch):
    if arch not in _PAIRS:
        target = tiny_t5(0) if arch == "t5" else tiny_gpt2(0)
        _PAIRS[arch] = (target, related_draft(target, 0.05))
    return _PAIRS[arch]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
@pytest.mark.parametrize("eos", [None, 9])
def test_streamed_tokens_are_the_returned_tokens_in_order_once_each(arch, method, eos):
    target, draft = pair(arch)
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        ids = torch.randint(2, VOCAB, (1, 7), generator=g)
        rec = Recorder()
        kw = {"eos_token_id": eos} if eos is not None else {"ignore_eos": True}
        res = generate(target, ids, draft=draft if METHODS[method].needs_draft else None, method=method,
                       num_draft_tokens=3, max_new_tokens=20, streamer=rec, **kw)
        prompt = [target.generation_config.decoder_start_token_id] if arch == "t5" else ids[0].tolist()
        assert rec.puts[0] == prompt and rec.ended == 1
        assert [t for put in rec.puts[1:] for t in put] == res.tokens[0]
        if METHODS[method].speculative and not METHODS[method].caller_mask:
            assert len(rec.puts) - 1 == res.stats.rounds       # one put per round: tokens as each round commits
        if method == "greedy" and eos is not None:              # the stream model.generate itself gives
            mine = Recorder()
            target.generate(ids, do_sample=False, num_beams=1, max_new_tokens=20, streamer=mine, eos_token_id=eos,
                            pad_token_id=0)
            assert mine.puts == rec.puts


def test_a_text_streamer_prints_the_returned_text(capsys):
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    target = tiny_t5(0, vocab=len(tok))
    draft = related_draft(target, 0.05)
    ids = tok(["compress: a text"], return_tensors="pt").input_ids
    res = generate(target, ids, draft=draft, method="stairs_cached", num_draft_tokens=3, max_new_tokens=12,
                   ignore_eos=True, streamer=TextStreamer(tok, skip_prompt=True, skip_special_tokens=True))
    assert capsys.readouterr().out.strip() == tok.decode(res.tokens[0], skip_special_tokens=True).strip()


def test_a_streamer_needs_batch_size_one():
    target, draft = pair("t5")
    with pytest.raises(GenerationInputError, match="streamer= streams one sequence: batch size 1"):
        generate(target, torch.randint(2, VOCAB, (2, 5)), draft=draft, method="stairs_cached", streamer=Recorder())
    with pytest.raises(GenerationInputError, match="streamer must have put"):
        generate(target, torch.randint(2, VOCAB, (1, 5)), method="greedy", streamer=object())
