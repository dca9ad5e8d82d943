"""The n-grams of a model as a trie over global indices (Chapters 1-2; used by lm.py and smoothing.py).

Order k's n-grams are kept in lexicographic order, each named by its context (the index of its
first k-1 words in order k-1) and its last word. Numbering all of them in one sequence -- the
unigrams first, at their word ids, then each order in turn -- the children of n-gram g (the
(k+1)-grams that extend it) are one contiguous run [lo[g], hi[g]) sorted by word, so finding
"h w" given h is a binary search in a short run.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scratchlm.ngram import kernels


class Trie:
    """context[k-1], word[k-1]: the order-k n-grams (unigrams: the whole vocabulary, by word id)."""

    def __init__(self, context: Sequence[np.ndarray], word: Sequence[np.ndarray], bos_id: int):
        self.order = len(word)
        self.bos_id = bos_id
        self.sizes = [len(w) for w in word]
        self.offset = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.word = np.concatenate(word).astype(np.int64)
        lo, hi = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for k in range(1, self.order):  # the children of order k are order k+1, sorted by context
            n_children = np.bincount(context[k], minlength=self.sizes[k - 1])
            end = self.offset[k] + np.cumsum(n_children)
            lo.append(end - n_children)
            hi.append(end)
        self.lo, self.hi = np.concatenate(lo), np.concatenate(hi)

    def lookup(self, ids: np.ndarray, use_numba: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """For each position of an id stream: idx (n, order), the global index of the k-gram ending
        there (-1 if absent), and avail (n,), how many orders its history allows (0 at <s>).
        See kernels.lookup."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.sizes[0]):
            raise ValueError(f"token ids must lie in [0, {self.sizes[0]}), got [{ids.min()}, {ids.max()}]")
        fn = kernels.lookup if use_numba else kernels.lookup_ref
        return fn(ids, self.order, self.bos_id, self.word, self.lo, self.hi)

    def children(self, g: int) -> slice:
        """The global indices of the children of n-gram g."""
        return slice(int(self.lo[g]), int(self.hi[g]))
