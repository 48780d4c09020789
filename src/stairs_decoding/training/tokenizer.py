"""Tokenizers of the shipped pairs: ByT5's bytes (the `compress:` pair), or a SentencePiece-style unigram model
trained on the training side of the data (the translation pair), with T5's special ids: pad 0, EOS 1, unk 2."""
from __future__ import annotations


def byte_tokenizer():
    """ByT5's byte tokenizer (vocab 384: pad 0, EOS 1, unk 2, 256 bytes, 125 extra ids)."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def unigram_tokenizer(texts: list[str], vocab_size: int):
    """A unigram (SentencePiece-style: NFKC, "▁" word boundaries) tokenizer trained on `texts`, wrapped for
    transformers; encoding appends EOS as T5's does. Deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tk.train_from_iterator(texts, trainer)
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                      special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    return tok
