"""What every tokenizer shares: the interface, special tokens and the JSON file format (Chapters 5, 9).

    ids = tok.encode(text)      # str -> np.ndarray of int64 ids, each < tok.vocab_size
    text = tok.decode(ids)      # ids -> str
    tok.save("tok.json"); tok = type(tok).load("tok.json")   # or scratchlm.tokenizers.load(path)

Special tokens (Chapter 9). The Transformer objectives need ids that stand for no text: padding,
BERT's mask, a sequence's start and end, T5's sentinels. `tok.with_specials(names)` returns the
same tokenizer with one new id per name, after every id of the text:

    ids [0, n_text)             what encode() produces from text, unchanged
    ids [n_text, vocab_size)    the specials, in the order they were added

so a tokenizer without specials keeps its ids and its file exactly as in Chapters 1-7. Specials
are put into a sequence by code (`tok.special_id("<mask>")`, `tok.mask_id`), never by encode: a
text that contains the characters "<mask>" encodes as those characters (or words), not as the
mask. decode writes a special as its name, or drops it with skip_special=True. The names are only
labels for decode and for lookup; the usual ones are

    <pad> <mask> <cls> <sep>      BERT (Devlin et al. 2019) writes them [PAD] [MASK] [CLS] [SEP]
    <s> </s>                      start and end of a sequence (bos / eos), as WordVocab's
    <extra_id_0> <extra_id_1> ... T5's sentinels (Raffel et al. 2020), one per corrupted span

A saved tokenizer is one UTF-8 JSON object, {"type": <class name>, ...its fields}, with a field
"specials" (the names, in id order) only when it has any; it is written atomically, and loading
checks the type and the fields and never executes anything from the file. Every error in a file
names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scratchlm.fileio import read_text, write_json

PAD, MASK, CLS, SEP, BOS, EOS, UNK = "<pad>", "<mask>", "<cls>", "<sep>", "<s>", "</s>", "<unk>"


def sentinels(n: int) -> list[str]:
    """The names of T5's first n sentinels: <extra_id_0>, ..., <extra_id_{n-1}>."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of sentinels must be an integer >= 0, got {n!r}")
    return [f"<extra_id_{k}>" for k in range(n)]


class Tokenizer:
    """Base class: subclasses define encode, _decode_text (text ids -> str), n_text, to_dict and from_dict,
    take `specials=` in their constructor and call _set_specials from it."""

    vocab_size: int
    n_text: int                       # ids below n_text are text; the specials follow
    specials: tuple[str, ...] = ()    # the added special tokens, in id order from n_text
    unk_id: int | None = None         # the id that stands for unknown text (kept by skip_special)

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def _decode_text(self, ids: np.ndarray) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict):
        raise NotImplementedError

    # --- special tokens ---------------------------------------------------------------------

    def _set_specials(self, specials, n_text: int, builtin: dict[str, int] | None = None) -> None:
        """Give the names `specials` the ids n_text, n_text + 1, ...; refuse names that are not
        non-empty strings, repeat, or are already text of this tokenizer (`_is_text_token`).
        `builtin`: specials that are part of the text vocabulary itself (WordVocab's <s> and </s>)."""
        specials = tuple(specials)
        _check_names(specials)
        if len(set(specials)) != len(specials):
            twice = next(s for s in specials if specials.count(s) > 1)
            raise ValueError(f"special token {twice!r} is listed twice")
        for name in specials:
            clash = self._is_text_token(name)
            if clash:
                raise ValueError(f"special token {name!r} is also {clash} of this {type(self).__name__}, so "
                                 "decoded text could not tell them apart; choose another name")
        self.specials, self.n_text = specials, n_text
        self.vocab_size = n_text + len(specials)
        self._special_index = {**(builtin or {}), **{name: n_text + k for k, name in enumerate(specials)}}

    def _is_text_token(self, name: str) -> str:
        """A description of the text token spelled `name` ("the character '<'"), or "" if none is."""
        return ""

    def with_specials(self, names) -> "Tokenizer":
        """This tokenizer with the special tokens `names` added after its ids (names it already has as
        specials keep their ids). Text ids, and so encode(), are unchanged."""
        if isinstance(names, str):
            raise TypeError(f"with_specials takes a list of names, got the string {names!r} "
                            f"(write [{names!r}])")
        names = list(names)
        _check_names(names)
        new = [n for n in names if n not in self._special_index]
        return type(self).from_dict({**self.to_dict(), "specials": [*self.specials, *new]})

    @property
    def special_names(self) -> tuple[str, ...]:
        """Every special token's name (WordVocab's <s> and </s> included), in id order."""
        return tuple(self._special_index)

    def special_id(self, name: str) -> int:
        """The id of the special token `name`."""
        if name not in self._special_index:
            have = ", ".join(self._special_index) or "none"
            raise ValueError(f"this {type(self).__name__} has no special token {name!r} (it has: {have}); "
                           f"add it with tok = tok.with_specials([{name!r}])")
        return self._special_index[name]

    def special_ids(self, names=None) -> np.ndarray:
        """The ids of the special tokens `names` (default: all of them), int64, in that order."""
        names = self._special_index if names is None else names
        return np.array([self.special_id(n) for n in names], dtype=np.int64)

    def sentinel_ids(self) -> np.ndarray:
        """The ids of T5's sentinels <extra_id_0>, <extra_id_1>, ..., as many as this tokenizer has
        consecutively from 0 (T5's span corruption takes them in this order)."""
        n = 0
        while f"<extra_id_{n}>" in self._special_index:
            n += 1
        return self.special_ids(sentinels(n))

    def is_special(self, ids) -> np.ndarray:
        """A boolean array: which of `ids` are special tokens (never the unknown-text id)."""
        return np.isin(np.asarray(ids, dtype=np.int64), self.special_ids())

    pad_id = property(lambda self: self.special_id(PAD), doc="the id of <pad>")
    mask_id = property(lambda self: self.special_id(MASK), doc="the id of <mask>")
    cls_id = property(lambda self: self.special_id(CLS), doc="the id of <cls>")
    sep_id = property(lambda self: self.special_id(SEP), doc="the id of <sep>")
    bos_id = property(lambda self: self.special_id(BOS), doc="the id of <s>")
    eos_id = property(lambda self: self.special_id(EOS), doc="the id of </s>")

    # --- decoding ---------------------------------------------------------------------------

    def decode(self, ids, skip_special: bool = False) -> str:
        """The text of `ids`, each special written as its name, or left out with skip_special=True."""
        ids = check_ids(ids, self.vocab_size)
        if not self._special_index:
            return self._decode_text(ids)
        special = self.is_special(ids)
        if skip_special or not special.any():
            return self._decode_text(ids[~special])
        # text runs between specials decode on their own (a byte sequence never spans a special)
        names = {i: n for n, i in self._special_index.items()}
        pieces, start = [], 0
        for i in np.flatnonzero(special):
            pieces += [self._decode_text(ids[start:i]), names[int(ids[i])]]
            start = i + 1
        return "".join(pieces) + self._decode_text(ids[start:])

    # --- files ------------------------------------------------------------------------------

    def _specials_dict(self) -> dict:
        """{"specials": [...]} when there are any (to_dict adds it), so older files stay the same."""
        return {"specials": list(self.specials)} if self.specials else {}

    def save(self, path) -> Path:
        return write_json(Path(path), {"type": type(self).__name__, **self.to_dict()})

    @classmethod
    def load(cls, path):
        d = read_tokenizer_json(path)
        if d.get("type") != cls.__name__:
            raise ValueError(f"{path}: holds a {d.get('type')!r} tokenizer, not a {cls.__name__}")
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid {cls.__name__} file ({type(e).__name__}: {e})") from e


def _check_names(names) -> None:
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a special token is a non-empty string, got {name!r}")


def specials_field(d: dict) -> list[str]:
    """The "specials" field of a tokenizer dict ([] when absent), checked to be a list of strings."""
    specials = d.get("specials", [])
    if not isinstance(specials, list) or not all(isinstance(s, str) for s in specials):
        raise ValueError(f"'specials' must be a list of strings, got {specials!r}")
    return specials


def read_tokenizer_json(path) -> dict:
    """The JSON object in `path`, with an error naming the file when it is not one (or not UTF-8)."""
    try:
        d = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"{path}: expected a JSON object with a 'type' field")
    return d


def check_ids(ids, vocab_size: int) -> np.ndarray:
    """`ids` as an int64 array, with an error naming the first id outside [0, vocab_size)."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"id {ids[i]} at position {i} is outside the vocabulary [0, {vocab_size})")
    return ids


def gather_slices(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate the slices flat[starts[i] : starts[i] + lengths[i]] without a Python loop."""
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    # position k of the output comes from slice i = the slice that covers k, at offset k - (ends[i] - len[i])
    offset_in_slice = np.arange(total) - np.repeat(ends - lengths, lengths)
    return flat[np.repeat(starts, lengths) + offset_in_slice]
