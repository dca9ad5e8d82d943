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
never predicted), log 0 as -99, every value with enough digits to read back the same float64. Reading accepts any whitespace between
fields and checks the file as it goes; an error names the file and the line.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from scratchlm.fileio import atomic_write
from scratchlm.ngram.lm import NgramLM
from scratchlm.tokenizers.word import SPECIALS, UNK, WordVocab

LN10 = math.log(10.0)
UNK_LOG10 = -100.0  # KenLM's probability for <unk> when a file lacks it


class ArpaError(ValueError):
    """A malformed ARPA file; the message names the file and the line."""


def write_arpa(lm: NgramLM, path) -> None:
    """Write a back-off model to `path` (atomically: a temp file, then rename)."""
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


def read_arpa(path) -> NgramLM:
    """Read an ARPA file into a model with the same interface as a fitted one.

    The vocabulary is `<unk> <s> </s>` then the other unigrams in file order. A file without
    `<unk>` gets it with log10 p = -100 (as KenLM does), with a warning.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")

    def fail(lineno: int, msg: str):
        raise ArpaError(f"{path}:{min(lineno, len(lines))}: {msg}")

    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or lines[i].strip() != "\\data\\":
        fail(i + 1, "expected '\\data\\' to open the file")
    i += 1
    declared: list[int] = []
    while i < len(lines) and lines[i].strip():
        line = lines[i].strip()
        head, _, value = line.partition("=")
        parts = head.split()
        if len(parts) != 2 or parts[0] != "ngram" or not parts[1].isdigit() or not value.strip().isdigit():
            fail(i + 1, f"expected 'ngram K=COUNT', got {line!r}")
        if int(parts[1]) != len(declared) + 1:
            fail(i + 1, f"expected the count of order {len(declared) + 1}, got order {parts[1]}")
        declared.append(int(value))
        i += 1
    if not declared:
        fail(i + 1, "no 'ngram K=COUNT' lines after '\\data\\'")
    N = len(declared)

    sections: list[tuple[list[str], list[float], list[float], list[int]]] = []
    for k in range(1, N + 1):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i == len(lines) or lines[i].strip() != f"\\{k}-grams:":
            fail(i + 1, f"expected '\\{k}-grams:'")
        i += 1
        grams, probs, bos_, linenos = [], [], [], []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith("\\"):
            fields = lines[i].split()
            if len(fields) not in (k + 1, k + 2) or (k == N and len(fields) == k + 2):
                want = f"{k + 1}" if k == N else f"{k + 1} or {k + 2}"
                fail(i + 1, f"a {k}-gram line needs {want} fields (log10 p, {k} words"
                     f"{'' if k == N else ', optional back-off'}), got {len(fields)}")
            try:
                prob = float(fields[0])
                bo = float(fields[k + 1]) if len(fields) == k + 2 else 0.0
            except ValueError:
                fail(i + 1, f"not a number in {lines[i].strip()!r}")
            if not (math.isfinite(prob) and math.isfinite(bo)):
                fail(i + 1, f"values must be finite, got {lines[i].strip()!r}")
            grams.append(" ".join(fields[1:k + 1]))
            probs.append(prob)
            bos_.append(bo)
            linenos.append(i + 1)
            i += 1
        if len(grams) != declared[k - 1]:
            fail(i + 1, f"the header declares {declared[k - 1]} {k}-grams, the section has {len(grams)}")
        sections.append((grams, probs, bos_, linenos))
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or lines[i].strip() != "\\end\\":
        fail(i + 1, "expected '\\end\\' after the last section")

    # the vocabulary, from the unigrams
    unigrams, uprob, ubo, ulines = sections[0]
    where = {}
    for w, ln in zip(unigrams, ulines):
        if w in where:
            fail(ln, f"unigram {w!r} is listed twice (first at line {where[w]})")
        where[w] = ln
    for special in SPECIALS[1:]:
        if special not in where:
            fail(ulines[0] if ulines else i, f"the unigrams lack {special!r}")
    if UNK not in where:
        warnings.warn(f"{path}: no <unk> unigram; unknown words get log10 p = {UNK_LOG10} (as KenLM)")
    vocab = WordVocab([*SPECIALS, *(w for w in unigrams if w not in SPECIALS)])
    V = len(vocab)
    logprob = [np.full(V, UNK_LOG10 * LN10)]
    ids = vocab.ids(unigrams)
    logprob[0][ids] = np.array(uprob) * LN10
    logbo = []
    if N > 1:  # the highest order has no back-off column
        logbo.append(np.zeros(V))
        logbo[0][ids] = np.array(ubo) * LN10
    logprob[0][vocab.bos_id] = -math.inf  # never predicted, whatever the file says
    context, word = [np.full(V, -1, np.int64)], [np.arange(V, dtype=np.int64)]

    keys = [np.arange(V, dtype=np.int64)]  # sorted packed (context, word) keys of each order
    for k in range(2, N + 1):
        grams, probs, bos_, linenos = sections[k - 1]
        rows = np.empty((len(grams), k), np.int64)
        get = vocab.index.get
        for r, (g, ln) in enumerate(zip(grams, linenos)):
            for j, w in enumerate(g.split()):
                wid = get(w)
                if wid is None:
                    fail(ln, f"word {w!r} of {k}-gram {g!r} is not among the unigrams")
                rows[r, j] = wid
        # index of each prefix w_1..w_{k-1}: walk down the orders
        ctx = rows[:, 0]
        for j in range(2, k):
            ctx = _find_keys(keys[j - 1], ctx * V + rows[:, j - 1])
            if (ctx < 0).any():
                r = int(np.argmax(ctx < 0))
                fail(linenos[r], f"{k}-gram {grams[r]!r}: its context {' '.join(grams[r].split()[:j])!r} "
                     f"is not a {j}-gram of the file")
        key = ctx * V + rows[:, -1]
        order = np.argsort(key, kind="stable")
        key = key[order]
        dup = np.nonzero(key[1:] == key[:-1])[0]
        if len(dup):
            a, b = sorted((order[dup[0]], order[dup[0] + 1]))
            fail(linenos[b], f"{k}-gram {grams[b]!r} is listed twice (first at line {linenos[a]})")
        keys.append(key)
        context.append(ctx[order])
        word.append(rows[order, -1])
        logprob.append(np.array(probs)[order] * LN10)
        if k < N:
            logbo.append(np.array(bos_)[order] * LN10)
    return NgramLM(vocab, context, word, logprob, logbo, 0.0, "arpa", {"path": str(path)})


def _find_keys(sorted_keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Position of each wanted key in sorted_keys, -1 where absent."""
    pos = np.minimum(np.searchsorted(sorted_keys, want), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == want, pos, -1)
