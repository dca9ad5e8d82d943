"""Characters as tokens (Chapters 1, 5, 6): the vocabulary is the set of characters in a text.

Ids are assigned in code-point order. A character outside the vocabulary is an error by default;
with `unk=True` id 0 is reserved for it and decodes as U+FFFD, the Unicode replacement character.
Special tokens (base.py; Chapter 9) follow the characters' ids. Encoding and decoding go through
UTF-32 code points, so neither loops over the text in Python.
"""

from __future__ import annotations

import numpy as np

from scratchlm.tokenizers.base import Tokenizer, specials_field

UNK_CHAR = "\ufffd"


def code_points(text: str) -> np.ndarray:
    """The Unicode code points of `text` as a uint32 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class CharTokenizer(Tokenizer):
    def __init__(self, chars, unk: bool = False, specials=()):
        chars = list(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = chars
        self.unk = unk
        self.unk_id = 0 if unk else None
        points = code_points("".join(chars))
        self._order = np.argsort(points, kind="stable")           # sorted position -> char index
        self._sorted_points = points[self._order]
        self._points = np.concatenate([code_points(UNK_CHAR)[:unk], points])  # id -> code point
        self._set_specials(specials, n_text=len(chars) + unk)

    @classmethod
    def fit(cls, text: str, unk: bool = False) -> "CharTokenizer":
        """The tokenizer whose vocabulary is the distinct characters of `text`."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.fit takes the text as one str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer.fit: the text is empty, so there are no characters to build "
                             "a vocabulary from")
        return cls(sorted(set(text)), unk=unk)

    def encode(self, text: str) -> np.ndarray:
        cp = code_points(text)
        pos = np.searchsorted(self._sorted_points, cp).clip(max=max(len(self.chars) - 1, 0))
        known = self._sorted_points[pos] == cp if len(self.chars) else np.zeros(len(cp), bool)
        ids = self._order[pos].astype(np.int64) + self.unk
        if known.all():
            return ids
        if not self.unk:
            i = int(np.argmin(known))
            raise ValueError(f"character {text[i]!r} (U+{ord(text[i]):04X}) at position {i} is not among "
                             f"the {len(self.chars)} characters of this tokenizer; fit it on this text "
                             "or use unk=True")
        ids[~known] = 0
        return ids

    def _decode_text(self, ids: np.ndarray) -> str:
        return self._points[ids].tobytes().decode("utf-32-le")

    def _is_text_token(self, name: str) -> str:
        if name in self.chars or (self.unk and name == UNK_CHAR):
            return f"the character {name!r}"
        return ""

    def to_dict(self) -> dict:
        return {"chars": "".join(self.chars), "unk": self.unk, **self._specials_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        return cls(d["chars"], unk=bool(d["unk"]), specials=specials_field(d))
