"""The n-gram hot loops as Numba kernels, each with a plain-NumPy twin that tests compare it with
(Chapters 1-2).

A corpus is one flat array of token ids, each sentence written `<s> w1 .. wm </s>`. An n-gram
table of order k lists the distinct k-grams in lexicographic order, and names each by two numbers:
its *context* (the index of its first k-1 words in the order k-1 table) and its last *word*. So the
tables form a trie: the k-grams that extend one context are contiguous, sorted by word id.

    count_order(ids, prev, n_prev, V, bos)     one more order of counts   (counting, Chapter 1)
    lookup(ids, order, bos, word, lo, hi)      which n-grams end where     (scoring)
    backoff_logprobs(idx, avail, lp, bo, miss) back-off log-probabilities  (scoring)

Counting sorts the positions where a k-gram ends by (context, word) with two stable counting
sorts -- first by word, then by context -- which is a two-digit radix sort: O(tokens + V + n_{k-1})
time, no comparisons, and no packed key that could overflow however large the vocabulary.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _counting_sort(order, keys, shift, n_buckets):
    """`order` stably sorted by keys[order + shift] (each key in [0, n_buckets))."""
    start = np.zeros(n_buckets + 1, np.int64)
    for p in order:
        start[keys[p + shift] + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    out = np.empty_like(order)
    for p in order:
        b = keys[p + shift]
        out[start[b]] = p
        start[b] += 1
    return out


@njit(cache=True)
def count_order(ids, prev, n_prev, vocab_size, bos):
    """Count the k-grams of a corpus, given where its (k-1)-grams end.

    ids:   (n,) int64 token ids, sentences written `<s> w1 .. wm </s>`
    prev:  (n,) int64, prev[i] = index of the (k-1)-gram ending at position i, or -1 where none
           does (for k = 2, prev = ids: a unigram's index is its word id)
    n_prev: number of (k-1)-grams
    Returns, for the n_k distinct k-grams in lexicographic order,
      context (n_k,) index of w_1..w_{k-1};  word (n_k,) w_k;  count (n_k,);
      suffix (n_k,) index of w_2..w_k among the (k-1)-grams,
    and cur (n,): the index of the k-gram ending at each position, or -1 (so the next order can
    be counted from it). A k-gram ends at i when a (k-1)-gram ends at i-1 and ids[i] is not <s>.
    """
    n = ids.shape[0]
    m = 0
    for i in range(1, n):
        if ids[i] != bos and prev[i - 1] >= 0:
            m += 1
    ends = np.empty(m, np.int64)
    m = 0
    for i in range(1, n):
        if ids[i] != bos and prev[i - 1] >= 0:
            ends[m] = i
            m += 1
    # lexicographic order of (context, word): sort by word, then stably by context
    ends = _counting_sort(ends, ids, 0, vocab_size)
    ends = _counting_sort(ends, prev, -1, n_prev)

    # each run of equal (context, word) is one k-gram
    starts_run = np.empty(m, np.bool_)
    n_k = 0
    for j in range(m):
        p = ends[j]
        starts_run[j] = j == 0 or prev[p - 1] != prev[ends[j - 1] - 1] or ids[p] != ids[ends[j - 1]]
        n_k += starts_run[j]
    context = np.empty(n_k, np.int64)
    word = np.empty(n_k, np.int64)
    count = np.zeros(n_k, np.int64)
    suffix = np.empty(n_k, np.int64)
    cur = np.full(n, -1, np.int64)
    g = -1
    for j in range(m):
        p = ends[j]
        if starts_run[j]:
            g += 1
            context[g] = prev[p - 1]
            word[g] = ids[p]
            suffix[g] = prev[p]  # the (k-1)-gram ending at p is w_2..w_k
        count[g] += 1
        cur[p] = g
    return context, word, count, suffix, cur


def count_order_ref(ids, prev, n_prev, vocab_size, bos):
    """NumPy twin of `count_order` (same contract): np.unique over packed keys."""
    # BEGIN SOLUTION 1.1: Counting n-grams with packed keys (chapters/ch01_ngrams.py §1.2)
    ids = np.asarray(ids, np.int64)
    i = np.arange(1, len(ids))
    ends = i[(ids[1:] != bos) & (prev[:-1] >= 0)]
    keys = prev[ends - 1] * vocab_size + ids[ends]
    uniq, first, inverse, count = np.unique(keys, return_index=True, return_inverse=True,
                                            return_counts=True)
    cur = np.full(len(ids), -1, np.int64)
    cur[ends] = inverse.ravel()
    return (uniq // vocab_size, uniq % vocab_size, count.astype(np.int64), prev[ends[first]], cur)
    # END SOLUTION


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _find(word, lo, hi, w):
    """Index of `w` in the sorted slice word[lo:hi], or -1 (binary search)."""
    end = hi
    while lo < hi:
        mid = (lo + hi) // 2
        if word[mid] < w:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and word[lo] == w else -1


@njit(cache=True)
def lookup(ids, order, bos, word, child_lo, child_hi):
    """Which n-grams of a model end at each position of a token stream.

    ids:  (n,) int64 token ids; `<s>` starts a sentence, and the first token of the stream has no
          history (so a context given without `<s>` is a mid-sentence context)
    word, child_lo, child_hi: the model's trie over global n-gram indices -- unigrams first, at
          their word id, then each order in turn; the children (k+1-grams) of n-gram g are
          word[child_lo[g]:child_hi[g]], sorted by word
    Returns idx (n, order): idx[i, k-1] = global index of the k-gram ending at i, or -1 when it is
    not in the model; and avail (n,): how many orders the history allows at i, min(order, 1 +
    tokens since the last <s>), 0 at <s> itself (never predicted).
    """
    n = ids.shape[0]
    idx = np.full((n, order), -1, np.int64)
    avail = np.zeros(n, np.int64)
    history = 0  # tokens before i in this sentence (or in the stream)
    for i in range(n):
        w = ids[i]
        idx[i, 0] = w  # every word is a unigram of the model
        if w == bos:
            history = 1
            continue
        k_max = min(order, history + 1)
        avail[i] = k_max
        for k in range(1, k_max):
            parent = idx[i - 1, k - 1]  # the k-gram ending at i-1: the context of the (k+1)-gram
            if parent < 0:
                break
            g = _find(word, child_lo[parent], child_hi[parent], w)
            if g < 0:
                break  # no (k+1)-gram here, so no longer one either (its suffix would be missing)
            idx[i, k] = g
        history += 1
    return idx, avail


def lookup_ref(ids, order, bos, word, child_lo, child_hi):
    """NumPy twin of `lookup`: per order, a binary search of packed (parent, word) keys."""
    ids = np.asarray(ids, np.int64)
    n = len(ids)
    # every n-gram above the unigrams is a child of the one before it in global order
    n_parents = len(child_lo)
    parent_of = np.concatenate([np.full(len(word) - int((child_hi - child_lo).sum()), -1),
                                np.repeat(np.arange(n_parents), child_hi - child_lo)])
    base = max(int(word.max()), int(ids.max(initial=0))) + 1
    keys = np.where(parent_of >= 0, parent_of * base + word, -1)
    order_of_keys = np.argsort(keys, kind="stable")
    sorted_keys = keys[order_of_keys]

    starts = np.flatnonzero(ids == bos)
    last_reset = np.full(n, -1, np.int64)
    last_reset[starts] = starts
    last_reset = np.maximum.accumulate(last_reset)
    history = np.where(last_reset >= 0, np.arange(n) - last_reset, np.arange(n))
    avail = np.where(ids == bos, 0, np.minimum(order, history + 1))

    idx = np.full((n, order), -1, np.int64)
    idx[:, 0] = ids
    for k in range(1, order):
        parent = np.full(n, -1, np.int64)
        parent[1:] = idx[:-1, k - 1]
        ok = (avail > k) & (parent >= 0)
        want = parent * base + ids
        pos = np.minimum(np.searchsorted(sorted_keys, want), len(sorted_keys) - 1)
        found = ok & (sorted_keys[pos] == want)
        idx[found, k] = order_of_keys[pos[found]]
    return idx, avail


@njit(cache=True)
def backoff_logprobs(idx, avail, logprob, logbo, missing_logbo):
    """Back-off scores from `lookup`'s output.

    With L the longest order found at i and K = avail[i] the longest the history allows,
        log p(w_i | h) = logprob[L-gram] + sum over context lengths j = L..K-1 of logbo[j-gram
                         ending at i-1], or `missing_logbo` for a context the model lacks
    (0 in ARPA semantics: an absent context backs off with weight 1). 0 where avail is 0 (<s>).
    """
    n, order = idx.shape
    out = np.zeros(n)
    for i in range(n):
        k_max = avail[i]
        if k_max == 0:
            continue
        longest = k_max
        while idx[i, longest - 1] < 0:
            longest -= 1
        lp = logprob[idx[i, longest - 1]]
        for j in range(longest, k_max):
            ctx = idx[i - 1, j - 1]
            lp += logbo[ctx] if ctx >= 0 else missing_logbo
        out[i] = lp
    return out


def backoff_logprobs_ref(idx, avail, logprob, logbo, missing_logbo):
    """NumPy twin of `backoff_logprobs`."""
    n, order = idx.shape
    k = np.arange(1, order + 1)
    found = (idx >= 0) & (k[None, :] <= avail[:, None])
    longest = np.where(found, k[None, :], 0).max(axis=1)
    scored = avail > 0
    out = np.zeros(n)
    rows = np.nonzero(scored)[0]
    out[rows] = logprob[idx[rows, longest[rows] - 1]]
    prev = np.full_like(idx, -1)
    prev[1:] = idx[:-1]
    for j in range(1, order):  # context length j backs off where longest <= j < avail
        use = scored & (longest <= j) & (j < avail)
        ctx = prev[use, j - 1]
        out[use] += np.where(ctx >= 0, logbo[np.maximum(ctx, 0)], missing_logbo)
    return out
