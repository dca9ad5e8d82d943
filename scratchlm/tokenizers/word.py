"""Words as tokens, for word-level language models (Chapters 1, 2, 4, 5).

A text is split on whitespace. The vocabulary is

    <unk> <s> </s>   then every other word with count >= min_count, by descending count, ties
                     alphabetically (so ids are the same on every run), cut at max_size entries in all

Words outside it map to <unk>. Penn Treebank already writes its rare words as the literal token
`<unk>`, which is this vocabulary's unknown word, so PTB ids mean what the corpus means.
`encode_lines` adds the sentence boundaries <s> and </s> that n-gram and neural LMs condition on.

These three are words of the text (Chapters 1-4 write them in text form). <s> and </s> are also
this vocabulary's start and end specials (`bos_id`, `eos_id`, `special_id("</s>")`, dropped by
decode(skip_special=True)); <unk> stands for a word and is not special. The special tokens added
with `with_specials` (base.py; Chapter 9) follow the words' ids and never come from encode: the
word "<mask>" in a text is <unk> (or its own word), never the mask. A special cannot be named like
a word of the vocabulary.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from scratchlm.tokenizers.base import BOS, EOS, UNK, Tokenizer, check_ids, specials_field

SPECIALS = (UNK, BOS, EOS)


class WordVocab(Tokenizer):
    unk_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, words: Iterable[str], specials=()):
        """`words` in id order, starting with <unk>, <s>, </s>; then the added `specials`."""
        self.words = list(words)
        if tuple(self.words[:3]) != SPECIALS:
            raise ValueError(f"a word vocabulary starts with {SPECIALS}, got {self.words[:3]}")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("words must be distinct")
        self._set_specials(specials, n_text=len(self.words), builtin={BOS: self.bos_id, EOS: self.eos_id})
        self._strings = np.array(self.words + list(self.specials), dtype=object)  # id -> its word or name

    @classmethod
    def fit(cls, tokens: str | Iterable[str], min_count: int = 1, max_size: int | None = None) -> "WordVocab":
        """The vocabulary of `tokens` (a list of words, or a text that is split on whitespace)."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        counts = Counter(tokens)
        words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size < len(SPECIALS):
                raise ValueError(f"max_size={max_size} leaves no room for the {len(SPECIALS)} special tokens")
            words = words[:max_size - len(SPECIALS)]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return self.vocab_size

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """The id of each word, <unk> for words outside the vocabulary."""
        get, unk = self.index.get, self.unk_id
        return np.fromiter((get(w, unk) for w in words), dtype=np.int64)

    def encode(self, text: str) -> np.ndarray:
        return self.ids(text.split())

    def encode_lines(self, lines: Iterable[str], bos: bool = False, eos: bool = True) -> np.ndarray:
        """All lines as one id array, each line wrapped in <s> ... </s> as asked (PTB: eos only)."""
        def tokens():
            for line in lines:
                if bos:
                    yield BOS
                yield from line.split()
                if eos:
                    yield EOS
        return self.ids(tokens())

    def decode(self, ids, skip_special: bool = False) -> str:
        """The words of `ids` joined by spaces; specials (<s>, </s> and the added ones) by name, or
        left out with skip_special=True."""
        ids = check_ids(ids, self.vocab_size)
        if skip_special:
            ids = ids[~self.is_special(ids)]
        return " ".join(self._strings[ids].tolist())

    def _is_text_token(self, name: str) -> str:
        return f"the word {name!r} (id {self.index[name]})" if name in self.index else ""

    def to_dict(self) -> dict:
        return {"words": self.words, **self._specials_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "WordVocab":
        if not all(isinstance(w, str) for w in d["words"]):
            raise ValueError("'words' must be a list of strings")
        return cls(d["words"], specials_field(d))
