"""What every tokenizer shares: the interface and its JSON file format (Chapter 5).

    ids = tok.encode(text)      # str -> np.ndarray of int64 ids, each < tok.vocab_size
    text = tok.decode(ids)      # ids -> str
    tok.save("tok.json"); tok = type(tok).load("tok.json")   # or scratchlm.tokenizers.load(path)

A saved tokenizer is one UTF-8 JSON object, {"type": <class name>, ...its fields}, written
atomically; loading checks the type and the fields and never executes anything from the file. Every
error in a file names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scratchlm.fileio import read_text, write_json


class Tokenizer:
    """Base class: subclasses define encode, decode, vocab_size, to_dict and from_dict."""

    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict):
        raise NotImplementedError

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
