"""Stage 5: ARPA files, the text format every n-gram toolkit reads and writes (Chapter 2).

    \\data\\
    ngram 1=<number of unigrams>
    ...
    \\1-grams:
    <log10 p>\t<w1>\t<log10 back-off>
    ...
    \\N-grams:
    <log10 p>\t<w1> .. <wN>
    \\end\\

Values are base-10 logarithms; a missing back-off is 0 (weight 1); the highest order has none.
We write lmplz's conventions: probabilities as min(0, log10 p), `<s>` with probability "0" (it is
never predicted), log 0 as -99, every value with enough digits to read back the same float64.

Reading accepts any whitespace between fields and checks the file as it goes; an error names the
file and the line. It runs in stages, each a function below with its input and output:

    _read_counts     '\\data\\' and 'ngram K=COUNT' lines  -> the declared count of each order
    _read_section    one '\\K-grams:' section              -> its n-grams, log10 p, log10 back-off
    _arpa_vocab      the unigrams                         -> the vocabulary (specials checked)
    _unigram_tables  the unigrams                         -> ln p and ln back-off by word id
    _link_order      order k's n-grams                    -> trie tables (context, word) sorted by key

_Lines holds the lines and the cursor the stages advance, and names the line of every error. A
log10 probability above 0 (a probability above 1) is refused, as KenLM's reader refuses it.

This module depends on lm.py (it builds an NgramLM); lm.py knows nothing of files.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.fileio import atomic_write, read_text
from scratchlm.ngram.lm import NgramLM
from scratchlm.tokenizers.word import SPECIALS, UNK, WordVocab

LN10 = math.log(10.0)
UNK_LOG10 = -100.0  # KenLM's probability for <unk> when a file lacks it


class ArpaError(ValueError):
    """A malformed ARPA file; the message names the file and the line."""


# -- writing ----------------------------------------------------------------------------------

def write_arpa(lm: NgramLM, path) -> None:
    """Write a back-off model to `path` (atomically: a temp file, then rename)."""
    if not isinstance(lm, NgramLM):
        raise TypeError(f"{getattr(lm, 'smoothing', '') or type(lm).__name__} is not a back-off model, "
                        "so it has no ARPA form")
    if lm.unseen_context_logbo != 0.0:
        raise TypeError(f"{lm.smoothing or 'this model'} backs off from unseen contexts with weight "
                        f"exp({lm.unseen_context_logbo}), which an ARPA file cannot express")
    words = np.array(lm.vocab.words, dtype=object)
    bad = [w for w in lm.vocab.words if not w or any(ch.isspace() for ch in w)]
    if bad:
        raise ValueError(f"ARPA words cannot be empty or contain whitespace: {bad[0]!r}")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for k, n in enumerate(lm.sizes(), 1):
            f.write(f"ngram {k}={n}\n")
        for k in range(1, lm.order + 1):
            f.write(f"\n\\{k}-grams:\n")
            text = [" ".join(g) for g in words[lm.ngrams(k)]]
            prob = _log10_text(np.minimum(lm.logp_table[k - 1], 0.0))
            if k == 1:
                prob[lm.vocab.bos_id] = "0"
            if k < lm.order:
                bo = _log10_text(lm.logbo_table[k - 1])
                f.writelines(f"{p}\t{t}\t{b}\n" for p, t, b in zip(prob, text, bo))
            else:
                f.writelines(f"{p}\t{t}\n" for p, t in zip(prob, text))
        f.write("\n\\end\\\n")


def _log10_text(ln_values: np.ndarray) -> list[str]:
    """Natural logs as log10 text that reads back as the same float64; log 0 as ARPA's -99."""
    return [repr(float(x)) if x > -99 else "-99" for x in ln_values / LN10]


# -- reading ----------------------------------------------------------------------------------

class _Lines:
    """The lines of an ARPA file and a cursor `i` (0-based) that the reading stages advance."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = read_text(path).split("\n")  # a non-UTF-8 file: an error naming the byte offset
        self.i = 0

    def fail(self, lineno: int, msg: str):
        raise ArpaError(f"{self.path}:{min(lineno, len(self.lines))}: {msg}")

    def skip_blank(self) -> None:
        while self.i < len(self.lines) and not self.lines[self.i].strip():
            self.i += 1

    def expect(self, text: str, what: str) -> None:
        """Consume the line `text` (after blank lines), or fail with `what` expected."""
        self.skip_blank()
        if self.i == len(self.lines) or self.lines[self.i].strip() != text:
            self.fail(self.i + 1, f"expected {what}")
        self.i += 1


@dataclass
class _Section:
    """The lines of one '\\K-grams:' section, in file order."""

    grams: list[str]        # the n-grams as space-separated words
    log10p: list[float]
    log10bo: list[float]    # 0 where a line has no back-off
    linenos: list[int]      # 1-based line of each


def read_arpa(path) -> NgramLM:
    """Read an ARPA file into a model with the same interface as a fitted one.

    The vocabulary is `<unk> <s> </s>` then the other unigrams in file order. A file without
    `<unk>` gets it with log10 p = -100 (as KenLM does), with a warning.
    """
    src = _Lines(Path(path))
    declared = _read_counts(src)
    N = len(declared)
    sections = [_read_section(src, k, N, declared[k - 1]) for k in range(1, N + 1)]
    src.expect("\\end\\", "'\\end\\' after the last section")
    vocab = _arpa_vocab(src, sections[0])
    logprob, logbo = _unigram_tables(vocab, sections[0], N)
    context, word = [np.full(len(vocab), -1, np.int64)], [np.arange(len(vocab), dtype=np.int64)]
    keys = [np.arange(len(vocab), dtype=np.int64)]  # sorted packed (context, word) keys of each order
    for k in range(2, N + 1):
        ctx, w, lp, bo, key = _link_order(src, vocab, sections[k - 1], k, keys)
        keys.append(key)
        context.append(ctx)
        word.append(w)
        logprob.append(lp)
        if k < N:
            logbo.append(bo)
    return NgramLM(vocab, context, word, logprob, logbo, 0.0, "arpa", {"path": str(src.path)})


def _read_counts(src: _Lines) -> list[int]:
    """In: the file from its start. Out: the declared number of n-grams of orders 1..N (the
    '\\data\\' block), the cursor past it."""
    src.expect("\\data\\", "'\\data\\' to open the file")
    declared: list[int] = []
    while src.i < len(src.lines) and src.lines[src.i].strip():
        line = src.lines[src.i].strip()
        head, _, value = line.partition("=")
        parts = head.split()
        if len(parts) != 2 or parts[0] != "ngram" or not parts[1].isdigit() or not value.strip().isdigit():
            src.fail(src.i + 1, f"expected 'ngram K=COUNT', got {line!r}")
        if int(parts[1]) != len(declared) + 1:
            src.fail(src.i + 1, f"expected the count of order {len(declared) + 1}, got order {parts[1]}")
        declared.append(int(value))
        src.i += 1
    if not declared:
        src.fail(src.i + 1, "no 'ngram K=COUNT' lines after '\\data\\'")
    return declared


def _read_section(src: _Lines, k: int, N: int, declared: int) -> _Section:
    """In: the cursor before '\\k-grams:'. Out: its `declared` lines parsed and checked (field count,
    finite numbers, log10 p <= 0), the cursor past them."""
    src.expect(f"\\{k}-grams:", f"'\\{k}-grams:'")
    sec = _Section([], [], [], [])
    lines = src.lines
    while src.i < len(lines) and lines[src.i].strip() and not lines[src.i].startswith("\\"):
        fields = lines[src.i].split()
        if len(fields) not in (k + 1, k + 2) or (k == N and len(fields) == k + 2):
            want = f"{k + 1}" if k == N else f"{k + 1} or {k + 2}"
            src.fail(src.i + 1, f"a {k}-gram line needs {want} fields (log10 p, {k} words"
                     f"{'' if k == N else ', optional back-off'}), got {len(fields)}")
        try:
            prob = float(fields[0])
            bo = float(fields[k + 1]) if len(fields) == k + 2 else 0.0
        except ValueError:
            src.fail(src.i + 1, f"not a number in {lines[src.i].strip()!r}")
        if not (math.isfinite(prob) and math.isfinite(bo)):
            src.fail(src.i + 1, f"values must be finite, got {lines[src.i].strip()!r}")
        gram = " ".join(fields[1:k + 1])
        if prob > 0:  # a probability above 1: refused, as KenLM's reader does by default
            src.fail(src.i + 1, f"{k}-gram {gram!r} has log10 probability {fields[0]} > 0 (probability above 1)")
        sec.grams.append(gram)
        sec.log10p.append(prob)
        sec.log10bo.append(bo)
        sec.linenos.append(src.i + 1)
        src.i += 1
    if len(sec.grams) != declared:
        src.fail(src.i + 1, f"the header declares {declared} {k}-grams, the section has {len(sec.grams)}")
    return sec


def _arpa_vocab(src: _Lines, unigrams: _Section) -> WordVocab:
    """In: the unigram section. Out: the vocabulary `<unk> <s> </s>` + the other unigrams in file
    order. Each unigram must be listed once, and <s> and </s> must be there; a missing <unk> is a
    warning (it gets log10 p = UNK_LOG10)."""
    where = {}
    for w, ln in zip(unigrams.grams, unigrams.linenos):
        if w in where:
            src.fail(ln, f"unigram {w!r} is listed twice (first at line {where[w]})")
        where[w] = ln
    for special in SPECIALS[1:]:
        if special not in where:
            src.fail(unigrams.linenos[0] if unigrams.linenos else src.i, f"the unigrams lack {special!r}")
    if UNK not in where:
        warnings.warn(f"{src.path}: no <unk> unigram; unknown words get log10 p = {UNK_LOG10} (as KenLM)")
    return WordVocab([*SPECIALS, *(w for w in unigrams.grams if w not in SPECIALS)])


def _unigram_tables(vocab: WordVocab, unigrams: _Section, N: int) -> tuple[list, list]:
    """In: the vocabulary and the unigram section. Out: [ln p] and (N > 1) [ln back-off], indexed by
    word id; ln p(<s>) = -inf whatever the file says (never predicted)."""
    V = len(vocab)
    logprob = [np.full(V, UNK_LOG10 * LN10)]
    ids = vocab.ids(unigrams.grams)
    logprob[0][ids] = np.array(unigrams.log10p) * LN10
    logbo = []
    if N > 1:  # the highest order has no back-off column
        logbo.append(np.zeros(V))
        logbo[0][ids] = np.array(unigrams.log10bo) * LN10
    logprob[0][vocab.bos_id] = -math.inf
    return logprob, logbo


def _link_order(src: _Lines, vocab: WordVocab, sec: _Section, k: int, keys: list[np.ndarray]) -> tuple:
    """In: order k's section and the sorted keys of orders 1..k-1. Out, in lexicographic order:
    each n-gram's context (index in order k-1), last word, ln p, ln back-off, and the sorted keys
    (context * V + word) of order k. Unknown words, missing contexts and repeats are errors."""
    V = len(vocab)
    rows = np.empty((len(sec.grams), k), np.int64)
    get = vocab.index.get
    for r, (g, ln) in enumerate(zip(sec.grams, sec.linenos)):
        for j, w in enumerate(g.split()):
            wid = get(w)
            if wid is None:
                src.fail(ln, f"word {w!r} of {k}-gram {g!r} is not among the unigrams")
            rows[r, j] = wid
    # index of each prefix w_1..w_{k-1}: walk down the orders
    ctx = rows[:, 0]
    for j in range(2, k):
        ctx = _find_keys(keys[j - 1], ctx * V + rows[:, j - 1])
        if (ctx < 0).any():
            r = int(np.argmax(ctx < 0))
            src.fail(sec.linenos[r], f"{k}-gram {sec.grams[r]!r}: its context "
                     f"{' '.join(sec.grams[r].split()[:j])!r} is not a {j}-gram of the file")
    key = ctx * V + rows[:, -1]
    order = np.argsort(key, kind="stable")
    key = key[order]
    dup = np.nonzero(key[1:] == key[:-1])[0]
    if len(dup):
        a, b = sorted((order[dup[0]], order[dup[0] + 1]))
        src.fail(sec.linenos[b], f"{k}-gram {sec.grams[b]!r} is listed twice (first at line {sec.linenos[a]})")
    logprob = np.array(sec.log10p)[order] * LN10
    logbo = np.array(sec.log10bo)[order] * LN10
    return ctx[order], rows[order, -1], logprob, logbo, key


def _find_keys(sorted_keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Position of each wanted key in sorted_keys, -1 where absent."""
    pos = np.minimum(np.searchsorted(sorted_keys, want), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == want, pos, -1)
