r"""Byte-level byte-pair encoding (Chapter 5; the Transformer chapters tokenize with it).

The base vocabulary is the 256 byte values, so any text can be encoded (as UTF-8) and
decode(encode(s)) == s. Training (Sennrich et al. 2016, on bytes as in GPT-2):

  1. pre-tokenize: cut the text into chunks with PATTERN and count them, {chunk: frequency};
     merges never cross a chunk boundary, so no token glues a word to the punctuation after it;
  2. repeat vocab_size - 256 times: count adjacent pairs of symbols over all chunks, weighted by
     frequency; the most frequent pair (ties: the smallest (left id, right id)) becomes the new
     symbol 256 + k and replaces each of its occurrences, left to right.

The learned merges, in order, are the tokenizer. A vocabulary of size V is the first V - 256
merges of any larger one trained on the same text. Encoding applies the merges to each chunk in
the order they were learned, which is the same as repeatedly merging the adjacent pair of lowest
rank (a merge can only create pairs that involve its new symbol, so of higher rank).

PATTERN is GPT-2's pre-tokenizer written for Python's `re`, which has no \p{L} / \p{N}:

    '(?:[sdmt]|ll|ve|re)     English contractions ('s 't 're 've 'm 'll 'd), as in GPT-2
    | ?[^\W\d_]+             letters: word characters that are neither digits nor '_'
                             (Latin, Greek, Cyrillic, Han ideographs, ..., and numerals like ½ Ⅻ)
    | ?\d+                   decimal digits (any script)
    | ?(?:[^\s\w]|_)+        everything else: punctuation, symbols, '_', combining marks
    |\s+(?!\S)|\s+           whitespace; a run keeps its last space for the next word

Every character is whitespace, a letter, a digit or "else", so the chunks concatenate back to the
text. A run of Han characters is one chunk, cut at punctuation (，。？), so Chinese merges
happen within clauses. Two trainers give the same merges: `train_bpe_ref`, the algorithm as
stated above, and `train_bpe_numba`, which updates pair counts incrementally (bpe_kernels.py).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from scratchlm.tokenizers.base import Tokenizer, gather_slices, specials_field
from scratchlm.tokenizers.bpe_kernels import encode_words, train_merges

PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def chunk_counts(text: str, pattern: str = PATTERN) -> Counter:
    """Step 1: {pre-token chunk: number of times it occurs in text}."""
    return Counter(re.findall(pattern, text))


def merge_pair(seq: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """seq with each occurrence of `pair`, left to right, replaced by `new_id`."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def train_bpe_ref(text: str, vocab_size: int, pattern: str = PATTERN) -> list[tuple[int, int]]:
    """The merges learned from `text`, by the algorithm exactly as stated (slow; for reading)."""
    _check_vocab_size(vocab_size)
    words = [(list(chunk.encode("utf-8")), freq) for chunk, freq in chunk_counts(text, pattern).items()]
    merges = []
    for new_id in range(256, vocab_size):
        pairs = Counter()
        for seq, freq in words:
            for pair in zip(seq, seq[1:]):
                pairs[pair] += freq
        if not pairs:
            break  # every chunk is a single token: nothing left to merge
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent; ties -> smallest ids
        merges.append(best)
        words = [(merge_pair(seq, best, new_id), freq) for seq, freq in words]
    return merges


def train_bpe_numba(text: str, vocab_size: int, pattern: str = PATTERN) -> list[tuple[int, int]]:
    """The same merges as `train_bpe_ref`, from the Numba kernel (fast)."""
    _check_vocab_size(vocab_size)
    counts = chunk_counts(text, pattern)
    symbols, offsets = _flatten(counts)
    freqs = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    # Each merge shortens some chunk by at least one symbol, so there can be no more merges than
    # symbols minus chunks: the kernel's merge table is never larger than that, however large vocab_size.
    n_merges = min(int(vocab_size) - 256, len(symbols) - len(counts))
    return [(int(a), int(b)) for a, b in train_merges(symbols, offsets, freqs, n_merges)]


TRAINERS = {"python": train_bpe_ref, "numba": train_bpe_numba}


def apply_merges(seq: list[int], merges: list[tuple[int, int]]) -> list[int]:
    """Encode one chunk's bytes by applying every merge in order (the definition; slow reference)."""
    for k, pair in enumerate(merges):
        seq = merge_pair(seq, pair, 256 + k)
    return seq


def _check_vocab_size(vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size={vocab_size!r} ({type(vocab_size).__name__}): a BPE vocabulary size is "
                        "an integer >= 256 (the 256 byte tokens, then one per merge)")
    if vocab_size < 256:
        raise ValueError(f"vocab_size={vocab_size}: a byte-level BPE has at least the 256 byte tokens")


def _flatten(chunks) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of all chunks as one int32 array, and the (n + 1,) offsets where each starts."""
    encoded = [c.encode("utf-8") for c in chunks]
    symbols = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.int32)
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return symbols, offsets


class ByteBPE(Tokenizer):
    def __init__(self, merges=(), pattern: str = PATTERN, specials=()):
        self.merges = [(int(a), int(b)) for a, b in merges]
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"merge {k} = ({a}, {b}) uses a token that does not exist yet")
        self.pattern = pattern
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"pre-tokenizer pattern {pattern!r} is not a valid regular expression: {e}") from None
        self.vocab = [bytes([i]) for i in range(256)]  # text token id -> its bytes (specials have none)
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        # the merge table as arrays for the kernel: sorted pair keys and the merge index of each
        self._merge_array = np.array(self.merges, dtype=np.int32).reshape(-1, 2)
        keys = self._merge_array[:, 0].astype(np.int64) << 32 | self._merge_array[:, 1]
        self._ranks = np.argsort(keys, kind="stable")
        self._keys = keys[self._ranks]
        if len(np.unique(keys)) != len(keys):
            raise ValueError("the same pair is merged twice")
        # every token's bytes laid end to end, for decoding without a Python loop
        self._token_len = np.array([len(t) for t in self.vocab], dtype=np.int64)
        self._token_start = np.cumsum(self._token_len) - self._token_len
        self._token_bytes = np.frombuffer(b"".join(self.vocab), dtype=np.uint8)
        # every string is text to a byte-level BPE, so a special's name never clashes with a token:
        # the specials simply follow the 256 + len(merges) text ids
        self._set_specials(specials, n_text=256 + len(self.merges))

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = PATTERN, trainer: str = "numba") -> "ByteBPE":
        """Learn vocab_size - 256 merges from `text` (fewer if the text runs out of pairs)."""
        if trainer not in TRAINERS:
            raise ValueError(f"unknown trainer {trainer!r}; choose one of {list(TRAINERS)}")
        return cls(TRAINERS[trainer](text, vocab_size, pattern), pattern)

    def truncated(self, vocab_size: int) -> "ByteBPE":
        """The tokenizer with only the first vocab_size - 256 merges (what training to vocab_size gives);
        its special tokens, if any, follow its text ids (so their ids are lower than here)."""
        _check_vocab_size(vocab_size)
        return ByteBPE(self.merges[:vocab_size - 256], self.pattern, self.specials)

    def encode(self, text: str) -> np.ndarray:
        chunks = self.regex.findall(text)
        # encode each distinct chunk once: `which` maps every chunk to its distinct chunk
        distinct: dict[str, int] = {}
        which = np.fromiter((distinct.setdefault(c, len(distinct)) for c in chunks), dtype=np.int64,
                            count=len(chunks))
        symbols, offsets = _flatten(distinct)
        lengths = encode_words(symbols, offsets, self._keys, self._ranks, self._merge_array)
        return gather_slices(symbols, offsets[:-1][which], lengths[which]).astype(np.int64)

    def _decode_text(self, ids: np.ndarray) -> str:
        """The text of `ids`; a byte sequence that is not valid UTF-8 decodes with U+FFFD in its place."""
        raw = gather_slices(self._token_bytes, self._token_start[ids], self._token_len[ids])
        return raw.tobytes().decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "merges": [list(m) for m in self.merges], **self._specials_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "ByteBPE":
        if not isinstance(d["pattern"], str) or not all(
                isinstance(m, list) and len(m) == 2 and all(type(x) is int for x in m) for m in d["merges"]):
            raise ValueError("'pattern' must be a string and 'merges' a list of [int, int] pairs")
        return cls(d["merges"], d["pattern"], specials_field(d))
