"""The `compress:` task and its data: English prose from the Python documentation shipped with the standard library
(``pydoc_data.topics.topics``, PSF licence), split deterministically by topic key into train and held-out topics.

Task: a deterministic extractive rewrite. The output is the input sentence with parenthetical ``(...)`` spans and a
fixed list of English stop-words removed, whitespace normalised. The output copies (and drops) spans of the input;
`compress_aligned()` also says which input character each output character copies.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

TASK_PREFIX = "compress: "
HELDOUT_FILE = "tiny_heldout.jsonl"

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
_SENT_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


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


def _pack_clauses(unit: str, max_len: int) -> list[str]:
    """A long clause greedily packed into comma-separated pieces of at most `max_len` characters."""
    out, buf = [], ""
    for piece in unit.split(", "):
        cand = piece if not buf else buf + ", " + piece
        if len(cand) <= max_len:
            buf = cand
        else:
            if buf:
                out.append(buf)
            buf = piece
    if buf:
        out.append(buf)
    return out


def sentences_of(text: str, min_len: int, max_len: int) -> list[str]:
    """Sentences of the prose (long ones split at "; ", then packed at ", ") of `min_len`..`max_len` characters."""
    out = []
    for para in _paragraphs(text):
        for sent in _SENT_SPLIT_RE.split(para):
            sent = sent.strip()
            units = [sent] if len(sent) <= max_len else [u.strip() for u in sent.split("; ")]
            for u in units:
                if u and len(u) > max_len and ", " in u:
                    out.extend(_pack_clauses(u, max_len))
                else:
                    out.append(u)
    return [s for s in out if _good_unit(s, min_len, max_len)]


def is_heldout_topic(key: str, heldout_mod: int) -> bool:
    """Deterministic, seed-independent split by topic key."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return h % heldout_mod == 0


def _split_sentences(topics: dict, min_src, max_src, min_tgt, max_tgt, heldout_mod, seen: set[str]):
    """Sentence examples of every topic, in the split of its topic key; fills `seen` with every sentence."""
    train, heldout, train_keys, heldout_keys = [], [], [], []
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
    return train, heldout, train_keys, heldout_keys


def _window_examples(topics: dict, keys, min_src, max_src, min_tgt, max_tgt, window_passes, seed, seen: set[str]):
    """Augmentation: random word windows of the given (train) topics that are not already examples."""
    rng = random.Random(seed)
    out = []
    for key in keys:
        for i, w in enumerate(windows_of(topics[key], min_src, max_src, rng, window_passes)):
            if w in seen:
                continue
            seen.add(w)
            tgt = compress(w)
            if min_tgt <= len(tgt) <= max_tgt:
                out.append({"id": f"{key}-w{i}", "source": TASK_PREFIX + w, "target": tgt})
    return out


def build_examples(min_src: int, max_src: int, min_tgt: int, max_tgt: int, heldout_mod: int,
                   window_passes: int = 0, seed: int = 0):
    """(train, heldout, train_keys, heldout_keys): examples ``{"id", "source", "target"}`` split by topic key."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    train, heldout, train_keys, heldout_keys = _split_sentences(
        topics, min_src, max_src, min_tgt, max_tgt, heldout_mod, seen)
    n_sent = len(train)
    # augmentation: random word windows from TRAIN topics only
    train += _window_examples(topics, train_keys, min_src, max_src, min_tgt, max_tgt, window_passes, seed, seen)
    # a text that occurs in both splits must not leak: drop it from train
    ho_src = {e["source"] for e in heldout}
    train = [e for e in train if e["source"] not in ho_src]
    print(f"train: {n_sent} sentences + {len(train) - n_sent} windows")
    return train, heldout, train_keys, heldout_keys


def write_heldout(heldout: list[dict], data_out: Path, filename: str = HELDOUT_FILE) -> Path:
    """Write the held-out examples as JSON lines to ``<data_out>/<filename>`` (tiny_heldout.jsonl); returns the
    path."""
    data_out = Path(data_out)
    data_out.mkdir(parents=True, exist_ok=True)
    path = data_out / filename
    with open(path, "w", encoding="utf-8") as f:
        for e in heldout:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    return path
