"""Stage 1-2 of n-gram estimation: count, then adjust counts (Chapter 1; Kneser-Ney in Chapter 2).

Text -> ids. Every sentence is written `<s> w1 .. wm </s>` (lmplz's convention: one `<s>`, however
high the order), words outside the vocabulary become `<unk>` (id 0), and the stream of all
sentences is one int64 array.

Stage 1, `count_ngrams`: the raw count c(w_1..w_k) of every k-gram inside a sentence, k = 1..N, as
one sorted table per order (see kernels.py for the layout). The unigram table is indexed by word
id and covers the whole vocabulary, so words never seen (`<unk>` in most corpora) have count 0.

Stage 2, `adjust_counts`: what Kneser-Ney counts at each order (Chen & Goodman 1999, sec. 3.2;
KenLM's adjust_counts),

    a(w_1..w_k) = c(w_1..w_k)                         k = N, or w_1 = <s> (nothing precedes it)
                = N1+(. w_1..w_k) = |{v : c(v w_1..w_k) > 0}|   otherwise (continuation count)

i.e. a lower-order n-gram counts the distinct words it follows, not how often it occurs: "Francisco"
is frequent but follows almost only "San" (3 distinct words in PTB train), so as a unigram it should
be rare.

Count-of-counts n_r (how many k-grams have count r) feed the discounts (discounts.py).

Every public entry point that takes text (a sentence, a list of sentences, a context) passes it
through `token_list` or `sentence_list` first: a Python string is iterable too, so "the cat" where
["the", "cat"] was meant would otherwise be read, silently, as the characters t, h, e, ' ', c, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from typing import Iterable, Sequence

import numpy as np

from scratchlm.ngram import kernels
from scratchlm.tokenizers.word import BOS, EOS, SPECIALS, WordVocab

Sentences = Iterable[Sequence[str]]


def token_list(tokens: Iterable[str], what: str = "context") -> list[str]:
    """`tokens` as a list; a plain string is a TypeError (its characters are not its words).
    `what` names the argument in the message."""
    if isinstance(tokens, str):
        shown = tokens if len(tokens) <= 40 else tokens[:37] + "..."
        raise TypeError(f"{what} is the string {shown!r}; pass a list of tokens instead "
                        f"(e.g. line.split()), or a string would be read as its characters")
    return tokens if isinstance(tokens, list) else list(tokens)


def sentence_list(sentences: Sentences, what: str = "sentences") -> list[Sequence[str]]:
    """`sentences` as a list (the sentences themselves are not copied), none of them a string (see
    `token_list`). Checked on the set of the sentences' types, a C-speed pass, never per token."""
    if isinstance(sentences, str):
        raise TypeError(f"{what} is one string; pass a list of sentences, each a list of tokens "
                        "(e.g. [line.split() for line in lines])")
    sentences = sentences if isinstance(sentences, list) else list(sentences)
    if any(issubclass(t, str) for t in set(map(type, sentences))):
        n = next(n for n, s in enumerate(sentences) if isinstance(s, str))
        token_list(sentences[n], f"{what}[{n}]")  # raises, naming the sentence
    return sentences


def build_vocab(sentences: Sentences, words: Iterable[str] | None = None) -> WordVocab:
    """`<unk> <s> </s>`, then every word of `sentences` in order of first appearance (as lmplz
    numbers them) -- or exactly `words` when given (a fixed vocabulary; the rest become <unk>)."""
    if words is None:
        seen = dict.fromkeys(chain.from_iterable(sentence_list(sentences)))
    else:
        seen = dict.fromkeys(token_list(words, "vocab"))
    bad = next((w for w in seen if not isinstance(w, str)), None)  # one check per distinct word
    if bad is not None:
        raise TypeError(f"tokens must be strings, got {bad!r} ({type(bad).__name__})")
    return WordVocab([*SPECIALS, *(w for w in seen if w not in SPECIALS)])


def encode(vocab: WordVocab, sentences: Sentences) -> np.ndarray:
    """All sentences as one int64 id array `<s> w1 .. wm </s> <s> ...`; unknown words -> <unk>.

    A sentence is a list of token strings; it may not contain `<s>` or `</s>` itself (they are
    added here). `<unk>` in the text is the unknown word (PTB writes its rare words that way).
    """
    sentences = sentence_list(sentences)
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = np.fromiter(map(vocab.index.get, chain.from_iterable(sentences), repeat(vocab.unk_id)),
                        dtype=np.int64, count=int(lengths.sum()))
    bad = np.flatnonzero((words == vocab.bos_id) | (words == vocab.eos_id))
    if len(bad):
        n = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise ValueError(f"sentence {n} contains {BOS!r} or {EOS!r}; they are added automatically")
    # sentence j occupies [start_j, start_j + len_j + 2): <s>, its words, </s>
    start = np.cumsum(lengths + 2) - (lengths + 2)
    out = np.empty(int(lengths.sum()) + 2 * len(sentences), dtype=np.int64)
    out[start] = vocab.bos_id
    out[start + lengths + 1] = vocab.eos_id
    is_word = np.ones(len(out), bool)
    is_word[start] = False
    is_word[start + lengths + 1] = False
    out[is_word] = words
    return out


def ngram_rows(context: Sequence[np.ndarray], word: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(n_k, k) word ids of the order-k n-grams of a trie (context/word lists as in NgramCounts)."""
    rows = word[k - 1][:, None]
    ctx = context[k - 1]
    for j in range(k - 1, 0, -1):
        rows = np.concatenate([word[j - 1][ctx][:, None], rows], axis=1)
        ctx = context[j - 1][ctx]
    return rows


@dataclass
class NgramCounts:
    """Raw counts of every k-gram (k = 1..N) of a corpus, one lexicographically sorted table per
    order. Index [k-1] of each list holds order k; unigram index = word id.

        count[k-1]    (n_k,) c(w_1..w_k)
        context[k-1]  (n_k,) index of w_1..w_{k-1} in order k-1 (unigrams: -1)
        word[k-1]     (n_k,) w_k
        suffix[k-1]   (n_k,) index of w_2..w_k in order k-1 (unigrams: -1)
    """

    vocab: WordVocab
    count: list[np.ndarray]
    context: list[np.ndarray]
    word: list[np.ndarray]
    suffix: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.count)

    def sizes(self) -> list[int]:
        return [len(c) for c in self.count]

    def ngrams(self, k: int) -> np.ndarray:
        """(n_k, k) word ids of the order-k n-grams, in table order."""
        return ngram_rows(self.context, self.word, k)

    def first_word(self, k: int) -> np.ndarray:
        """(n_k,) w_1 of each order-k n-gram."""
        g = np.arange(len(self.count[k - 1]))
        for j in range(k, 1, -1):
            g = self.context[j - 1][g]
        return self.word[0][g]

    def context_sum(self, values: np.ndarray, k: int) -> np.ndarray:
        """Sum `values` (one per order-k n-gram) over the continuations of each context: for k >= 2
        an array over the (k-1)-grams h of sum_w values(h w) (0 where h has none); for k = 1 a
        1-element array, the sum over every word but <s> (the empty context)."""
        if k == 1:
            keep = np.arange(len(values)) != self.vocab.bos_id
            return np.array([np.sum(values[keep], dtype=np.float64)])
        return np.bincount(self.context[k - 1], weights=values, minlength=len(self.count[k - 2]))

    def context_of(self, k: int) -> np.ndarray:
        """(n_k,) index of each order-k n-gram's context in `context_sum`'s output (0 for k = 1)."""
        return self.context[k - 1] if k > 1 else np.zeros(len(self.count[0]), np.int64)


def check_order(order) -> int:
    """`order` if it is an int >= 1 (NumPy ints too); else a clear error instead of a failure deep
    in the counting (2.5 or "3" would reach range() or a comparison with an int)."""
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise TypeError(f"order must be an int >= 1, got {order!r} ({type(order).__name__})")
    if order < 1:
        raise ValueError(f"order must be an int >= 1, got {order}")
    return int(order)


def count_ngrams(ids: np.ndarray, order: int, vocab: WordVocab, use_numba: bool = True) -> NgramCounts:
    """Stage 1: raw counts of orders 1..`order` of an encoded corpus (see `encode`).

    Each order is one Numba pass (kernels.count_order) over the positions where the previous order's
    n-grams end; `use_numba=False` runs the NumPy twin instead (tests compare the two).
    """
    check_order(order)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    V = len(vocab)
    if not len(ids):
        raise ValueError("nothing to count: no sentences")
    if ids.min() < 0 or ids.max() >= V:
        raise ValueError(f"token ids must lie in [0, {V}), got [{ids.min()}, {ids.max()}]")
    count_order = kernels.count_order if use_numba else kernels.count_order_ref
    none = np.full(V, -1, np.int64)
    count, context, word, suffix = [np.bincount(ids, minlength=V)], [none], [np.arange(V)], [none]
    prev = ids  # where each unigram ends: its word id
    for _ in range(2, order + 1):
        ctx, w, c, suf, prev = count_order(ids, prev, len(count[-1]), V, vocab.bos_id)
        count.append(c)
        context.append(ctx)
        word.append(w)
        suffix.append(suf)
    return NgramCounts(vocab, count, context, word, suffix)


def prune(counts: NgramCounts, min_count: Sequence[int]) -> NgramCounts:
    """Drop the k-grams (k >= 2) seen fewer than min_count[k-1] times, renumbering the links.

    Unigrams are the vocabulary and always stay. min_count must not decrease with the order, so that
    every kept n-gram keeps its prefix and its suffix (both are seen at least as often as it is).
    """
    if len(min_count) != counts.order or any(a > b for a, b in zip(min_count, min_count[1:])):
        raise ValueError(f"min_count needs one non-decreasing value per order (1..{counts.order}), "
                         f"got {tuple(min_count)}")
    keep = [np.ones(len(counts.count[0]), bool)] + [c >= m for c, m in zip(counts.count[1:], min_count[1:])]
    new_index = [np.cumsum(kp) - 1 for kp in keep]
    out = NgramCounts(counts.vocab, [counts.count[0]], [counts.context[0]], [counts.word[0]], [counts.suffix[0]])
    for k in range(2, counts.order + 1):
        kp = keep[k - 1]
        out.count.append(counts.count[k - 1][kp])
        out.word.append(counts.word[k - 1][kp])
        out.context.append(new_index[k - 2][counts.context[k - 1][kp]])
        out.suffix.append(new_index[k - 2][counts.suffix[k - 1][kp]])
    return out


def adjust_counts(counts: NgramCounts) -> list[np.ndarray]:
    """Stage 2: Kneser-Ney adjusted counts a(w_1..w_k) per order (see the module docstring).

    In: raw counts. Out: one int64 array per order, aligned with counts.count. The unigram <s> gets
    0 (it is never predicted; nothing precedes it). Highest order and <s>-initial n-grams keep
    their raw counts; every other n-gram gets the number of distinct words seen before it.
    """
    # BEGIN SOLUTION 2.4: Kneser-Ney continuation counts (chapters/ch02_smoothing.py §2.6)
    N = counts.order
    bos = counts.vocab.bos_id
    adjusted = []
    for k in range(1, N + 1):
        raw = counts.count[k - 1]
        if k == N:
            adjusted.append(raw.copy())
            continue
        left = np.bincount(counts.suffix[k], minlength=len(raw))  # N1+(. w_1..w_k)
        a = np.where(counts.first_word(k) == bos, raw, left) if k > 1 else left
        adjusted.append(a.astype(np.int64))
    adjusted[0][bos] = 0
    return adjusted
    # END SOLUTION


def count_of_counts(counts_k: np.ndarray, max_r: int = 4) -> np.ndarray:
    """n_r for r = 0..max_r: how many entries of counts_k equal r (index 0 is unused, kept 0)."""
    n = np.bincount(counts_k[(counts_k >= 1) & (counts_k <= max_r)], minlength=max_r + 1)
    n[0] = 0
    return n.astype(np.int64)
