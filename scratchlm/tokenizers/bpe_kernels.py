"""Numba kernels for byte-level BPE (Chapter 5): training by incremental pair counts, and encoding.

Both work on a batch of "words" (pre-tokenized chunks) stored flat: the symbols of word w are
symbols[offsets[w] : offsets[w] + length[w]]; a merge rewrites them in place and shortens length[w].
A pair of symbols (a, b) is keyed as a << 32 | b, so ordering keys orders pairs by (a, b).

Plain-Python references that the tests compare against: `bpe.train_bpe_ref` for `train_merges`
and `bpe.apply_merges` for `encode_words`.
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit, types
from numba.typed import Dict

NO_RANK = np.iinfo(np.int64).max


@njit(cache=True)
def _key(a, b):
    return (np.int64(a) << 32) | np.int64(b)


@njit(cache=True)
def _merge_in_place(symbols, start, n, a, b, new):
    """Replace each (a, b) in symbols[start : start+n], left to right, by `new`; return the new length."""
    i = start
    j = start
    end = start + n
    while i < end:
        if i + 1 < end and symbols[i] == a and symbols[i + 1] == b:
            symbols[j] = new
            i += 2
        else:
            symbols[j] = symbols[i]
            i += 1
        j += 1
    return j - start


@njit(cache=True)
def _add_pairs(symbols, start, n, weight, counts, touched):
    """counts[(s_i, s_i+1)] += weight for every adjacent pair of the word; note which keys changed."""
    for i in range(start, start + n - 1):
        k = _key(symbols[i], symbols[i + 1])
        counts[k] = counts.get(k, 0) + weight
        touched[k] = True


@njit(cache=True)
def train_merges(symbols, offsets, freqs, n_merges):
    """Learn up to `n_merges` merges from words with frequencies; returns (m, 2) int32 pairs, m <= n_merges.

    symbols: int32 (total,), the byte values of all words; offsets: int64 (n_words + 1,);
    freqs: int64 (n_words,). Pair counts are kept in a dict and updated only for the words a merge
    touches (subtract the word's old pairs, merge, add its new pairs); the most frequent pair is
    found with a max-heap of (-count, key) whose stale entries are skipped when popped, so ties go
    to the smallest (a, b), as in the plain-Python trainer.
    """
    symbols = symbols.copy()
    n_words = freqs.shape[0]
    lengths = offsets[1:] - offsets[:-1]
    counts = Dict.empty(key_type=types.int64, value_type=types.int64)
    touched = Dict.empty(key_type=types.int64, value_type=types.boolean)
    for w in range(n_words):
        _add_pairs(symbols, offsets[w], lengths[w], freqs[w], counts, touched)
    heap = [(-c, k) for k, c in counts.items()]
    heapq.heapify(heap)
    merges = np.empty((n_merges, 2), dtype=np.int32)
    m = 0
    while m < n_merges and len(heap) > 0:
        neg_count, k = heapq.heappop(heap)
        if neg_count == 0 or counts[k] != -neg_count:
            continue  # stale entry: the count changed after it was pushed
        a, b, new = k >> 32, k & 0xFFFFFFFF, 256 + m
        merges[m, 0], merges[m, 1] = a, b
        touched.clear()
        for w in range(n_words):
            start, n = offsets[w], lengths[w]
            for i in range(start, start + n - 1):
                if symbols[i] == a and symbols[i + 1] == b:
                    _add_pairs(symbols, start, n, -freqs[w], counts, touched)
                    lengths[w] = _merge_in_place(symbols, start, n, a, b, new)
                    _add_pairs(symbols, start, lengths[w], freqs[w], counts, touched)
                    break
        for k2 in touched:
            if counts[k2] > 0:
                heapq.heappush(heap, (-counts[k2], k2))
        m += 1
    return merges[:m]


@njit(cache=True)
def _rank(a, b, keys, ranks):
    """The rank of the merge (a, b) (its position in the merge list), NO_RANK if there is none."""
    k = _key(a, b)
    i = np.searchsorted(keys, k)
    if i < keys.shape[0] and keys[i] == k:
        return ranks[i]
    return NO_RANK


@njit(cache=True)
def encode_words(symbols, offsets, keys, ranks, merges):
    """Apply the merges to each word: repeatedly merge the adjacent pair of lowest rank.

    symbols: int32 (total,), bytes of the words, rewritten in place into token ids;
    offsets: int64 (n_words + 1,); keys: sorted int64 pair keys of the merges, ranks their merge
    index; merges: (M, 2). Returns the token count of each word, int64 (n_words,).
    """
    n_words = offsets.shape[0] - 1
    lengths = np.empty(n_words, dtype=np.int64)
    for w in range(n_words):
        start, n = offsets[w], offsets[w + 1] - offsets[w]
        while n >= 2:
            best = NO_RANK
            for i in range(start, start + n - 1):
                best = min(best, _rank(symbols[i], symbols[i + 1], keys, ranks))
            if best == NO_RANK:
                break
            n = _merge_in_place(symbols, start, n, merges[best, 0], merges[best, 1], 256 + best)
        lengths[w] = n
    return lengths
