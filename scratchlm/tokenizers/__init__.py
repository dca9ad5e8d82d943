"""Tokenizers: text -> ids -> text (Chapter 5; used from Chapter 1 on).

    CharTokenizer   one id per character (char-level models, names)
    WordVocab       one id per whitespace-separated word, with <unk> <s> </s> (PTB, n-grams, NPLM)
    ByteBPE         byte-level byte-pair encoding, trained in Numba (Transformers)

All share the interface in base.py: encode(str) -> int64 ids, decode(ids) -> str, vocab_size,
save(path) / load(path) as JSON. `load(path)` reads any of them. Special tokens for the Transformer
objectives (pad, mask, cls/sep, bos/eos, T5's sentinels; Chapter 9) are added with
`tok.with_specials([...])` after the text's ids and never come out of encode (base.py).
"""

from scratchlm.tokenizers.base import (BOS, CLS, EOS, MASK, PAD, SEP, UNK, Tokenizer, read_tokenizer_json,
                                      sentinels)
from scratchlm.tokenizers.bpe import PATTERN, ByteBPE, train_bpe_numba, train_bpe_ref
from scratchlm.tokenizers.char import CharTokenizer
from scratchlm.tokenizers.word import WordVocab

_CLASSES = {cls.__name__: cls for cls in (CharTokenizer, WordVocab, ByteBPE)}


def load(path) -> Tokenizer:
    """The tokenizer saved in `path`, whichever kind it is."""
    kind = read_tokenizer_json(path)["type"]
    if kind not in _CLASSES:
        raise ValueError(f"{path}: unknown tokenizer type {kind!r} (known: {', '.join(_CLASSES)})")
    return _CLASSES[kind].load(path)


__all__ = ["Tokenizer", "CharTokenizer", "WordVocab", "ByteBPE", "PATTERN", "train_bpe_ref",
           "train_bpe_numba", "load", "UNK", "BOS", "EOS", "PAD", "MASK", "CLS", "SEP", "sentinels"]
