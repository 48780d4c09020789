"""Model-free drafts: n-gram lookup in the source and in the text generated so far (used by `lookup` and as
branches of `stairs_tree`).

transformers' prompt lookup (`prompt_lookup_num_tokens`) searches the decoder's own tokens; on an encoder-decoder
model that is only the output so far, so it never sees the input that translation and summarisation copy from.
Here each row's haystack is its **source** — the encoder input of an encoder-decoder model, the prompt of a
decoder-only one — followed by what the row has generated. A round matches the row's newest n committed tokens
(n from `max_ngram` down to `min_ngram`: the longest match first) and proposes what followed each match, up to k
tokens.

Among matches of the same length the nearest to the row's **cursor** comes first: where the last accepted proposal
ended in the haystack (an encoder-decoder row starts at the source's beginning, a decoder-only row at the end of
its prompt: the most recent text). Copying tasks walk through the source roughly in order, so the occurrence
next to the last copied span is the likely one; the others are offered as further branches.

The index maps every n-gram of the haystack to the positions after it; it is built once per row and extended by
each round's committed tokens, so a round costs a few dictionary lookups per row. Output exactness never depends
on the proposals: the target verifies every token.
"""
from __future__ import annotations

import torch

SEP = -1          # between an encoder-decoder row's source and its output: no n-gram spans both


class RowLookup:
    """One input row's haystack (source, then generated tokens), its n-gram index and its cursor."""

    def __init__(self, source: list[int], *, enc_dec: bool, max_ngram: int, min_ngram: int):
        self.max_n, self.min_n, self.enc_dec = max_ngram, min_ngram, enc_dec
        self.text: list[int] = list(source) + ([SEP] if enc_dec else [])
        self.start = len(self.text)            # where the generated tokens begin
        self.index: dict[tuple, list[int]] = {}
        self._indexed = 0
        self._extend_index()
        self.cursor = 0 if enc_dec else len(self.text)
        self.offered: list[tuple[int, list[int]]] = []   # the last round's proposals: (haystack position, tokens)
        self.offered_at = self.start

    def _extend_index(self) -> None:
        text = self.text
        for end in range(self._indexed + 1, len(text) + 1):
            for n in range(self.min_n, self.max_n + 1):
                if end - n < 0:
                    break
                gram = tuple(text[end - n:end])
                if SEP in gram:
                    break
                self.index.setdefault(gram, []).append(end)
        self._indexed = len(text)

    def sync(self, generated: list[int]) -> None:
        """Catch up with the row's committed output; the cursor moves past the proposal that was accepted."""
        new = generated[len(self.text) - self.start:]
        if new:
            self.text.extend(new)
            self._extend_index()
        best = 0
        for pos, tokens in self.offered:
            kept = 0
            for a, b in zip(tokens, self.text[self.offered_at:]):
                if a != b:
                    break
                kept += 1
            if kept > best:
                best, self.cursor = kept, pos + kept
        self.offered = []

    def propose(self, k: int, branches: int) -> list[list[int]]:
        """Up to `branches` distinct continuations of at most k tokens, the best first."""
        text, n_text = self.text, len(self.text)
        generated = n_text - self.start
        out: list[list[int]] = []
        if k < 1:
            return out
        for n in range(min(self.max_n, generated if self.enc_dec else n_text), self.min_n - 1, -1):
            ends = [e for e in self.index.get(tuple(text[n_text - n:]), ()) if e < n_text]
            if not ends:
                continue
            cursor = self.cursor
            ends.sort(key=lambda e: (abs(e - cursor), e < cursor))
            for e in ends:
                tokens = text[e:e + k]
                if SEP in tokens:
                    tokens = tokens[:tokens.index(SEP)]
                if tokens and not any(t[:len(tokens)] == tokens for t in out):
                    out.append(tokens)
                    self.offered.append((e, tokens))
                    if len(out) == branches:
                        break
            break                                   # the longest matching n only
        self.offered_at = n_text
        return out


def _unpadded(ids: torch.Tensor, mask: torch.Tensor | None) -> list[list[int]]:
    rows = ids.tolist()
    if mask is None:
        return rows
    return [[t for t, m in zip(row, keep) if m] for row, keep in zip(rows, mask.tolist())]


class Lookup:
    """The rows' lookups for one `generate()` call; `propose` gives each running row's candidates."""

    def __init__(self, seq, encoder_inputs: tuple | None, *, max_ngram: int, min_ngram: int):
        """`encoder_inputs`: (input_ids, attention_mask) of an encoder-decoder model, whose rows are the sources;
        None for a decoder-only model, whose source is its prompt (each row's committed prefix, read from `seq`).
        An encoder input that is not token ids (speech features, pixels) gives no source: the output alone is
        searched (`source` says which)."""
        enc_dec = encoder_inputs is not None
        if not enc_dec:
            sources, self.source = _unpadded(seq.tokens, seq.mask), "prompt+output"
        elif encoder_inputs[0].is_floating_point():
            sources, self.source = [[] for _ in range(seq.tokens.shape[0])], "output"
        else:
            sources, self.source = _unpadded(*encoder_inputs), "input+output"
        self.rows = [RowLookup(src, enc_dec=enc_dec, max_ngram=max_ngram, min_ngram=min_ngram) for src in sources]

    def propose(self, seq, k: int, branches: int = 1) -> list[list[list[int]]]:
        """Per batch row: its candidate continuations (a finished row gets none); each at most k tokens and no
        more than the row may still emit before its last token."""
        tokens, start = seq.tokens.tolist(), seq.gen_start.tolist()
        lengths, finished = seq.lengths.tolist(), seq.finished.tolist()
        out = []
        for b, row in enumerate(seq.rows.tolist()):
            if finished[b]:
                out.append([])
                continue
            look = self.rows[row]
            look.sync(tokens[b][start[b]:start[b] + lengths[b]])
            out.append(look.propose(min(k, seq.max_new_tokens - lengths[b] - 1), branches))
        return out


def as_tensor(candidates: list[list[int]], width: int, fill: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of token lists → [B, width] (short rows filled with `fill`, never counted as proposed) and their
    lengths [B]."""
    out = torch.full((len(candidates), width), fill, dtype=torch.long)
    for b, tokens in enumerate(candidates):
        if tokens:
            out[b, :len(tokens)] = torch.tensor(tokens[:width])
    lengths = torch.tensor([min(len(t), width) for t in candidates], dtype=torch.long)
    return out.to(device), lengths.to(device)
