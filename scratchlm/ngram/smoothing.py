"""Stages 3-4 of n-gram estimation: the nine estimators, one interface (Chapter 2).

Each estimator takes the counts of stage 1 (counts.py) and returns a model with lm.py's interface:
an `NgramLM` (back-off form), or for add-k an `AdditiveLM` (defined here). Most are
*interpolated*: at every order they split p(w | h) into a part u(w | h) estimated from the counts
of h and a weight gamma(h) given to the next-shorter context h',

    p(w | h) = u(w | h) + gamma(h) p(w | h'),      p(w) = u(w) + gamma() / |V|

(|V| = the vocabulary without <s>, which is never predicted), and differ only in u and gamma:

    method                u(w | h)                                  gamma(h)
    mle                   c(hw) / c(h.)                             0
    witten_bell           c(hw) / (c(h.) + N1+(h.))                 N1+(h.) / (c(h.) + N1+(h.))
    jelinek_mercer        lambda_k c(hw) / c(h.)                    1 - lambda_k
    absolute_discounting  (c(hw) - D) / c(h.)                       D N1+(h.) / c(h.)
    kneser_ney            (a(hw) - D) / a(h.)                       D N1+(h.) / a(h.)
    modified_kneser_ney   (a(hw) - D(a(hw))) / a(h.)                (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / a(h.)

with c raw counts, a Kneser-Ney adjusted counts (counts.adjust_counts), c(h.) = sum_w c(hw) and
N_r(h.) the number of words seen r times after h. A context with no continuation has gamma = 1 (an
unseen context leaves everything to the shorter one). The pipeline is KenLM's:

    count -> adjust counts -> discount (discounts.py) -> initial_probabilities -> interpolate -> write

Three estimators are not interpolated: `good_turing` (Katz back-off: Good-Turing discounted
estimates for what was seen, the rest shared in proportion to the shorter context; its stages are
the functions `katz_*` below), `add_k` (Laplace; it has no back-off form, so it keeps its counts
and scores from them), and `stupid_backoff` (Brants et al. 2007: relative frequencies, alpha = 0.4
per back-off step; *scores, not probabilities* -- they do not sum to 1).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from scratchlm.ngram.counts import NgramCounts, adjust_counts, count_of_counts, prune
from scratchlm.ngram.discounts import check_discounts, good_turing_discounts, kneser_ney_discounts
from scratchlm.ngram.lm import LanguageModel, NgramLM
from scratchlm.ngram.trie import Trie


def _raw(counts: NgramCounts, k: int) -> np.ndarray:
    """Raw order-k counts as floats; the unigram <s> is zeroed (a context, never predicted)."""
    c = counts.count[k - 1].astype(np.float64)
    if k == 1:
        c[counts.vocab.bos_id] = 0.0
    return c


def _ratio(num: np.ndarray, den: np.ndarray, where_zero: float) -> np.ndarray:
    """num / den, and `where_zero` where den is 0."""
    out = np.full(len(den), where_zero, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ---------------------------------------------------------------------------------------------
# Stages shared by the interpolated estimators
# ---------------------------------------------------------------------------------------------

def initial_probabilities(counts: NgramCounts, used: Sequence[np.ndarray],
                          discount: Sequence[np.ndarray]) -> tuple[list, list]:
    """Stage 3b for the discounting estimators (absolute discounting, Kneser-Ney, modified KN).

    In: the counts each order uses (`used[k-1]`, raw or adjusted, aligned with the order-k table)
    and its discounts `discount[k-1]` = [0, D1, D2, D3+]. Out: u[k-1] for every order-k n-gram and
    gamma[k-1] for every context of order k-1 (gamma[0]: one value, the empty context)

        u(w | h) = (a(hw) - D(a(hw))) / a(h.),    gamma(h) = sum_w D(a(hw)) / a(h.)
    """
    # BEGIN SOLUTION 2.3: Discounted probabilities, back-off weights (chapters/ch02_smoothing.py §2.5)
    u, gamma = [], []
    for k in range(1, counts.order + 1):
        a = used[k - 1].astype(np.float64)
        if k == 1:
            a[counts.vocab.bos_id] = 0.0
        d = np.asarray(discount[k - 1])[np.minimum(a, 3).astype(np.int64)]
        total = counts.context_sum(a, k)
        ctx = counts.context_of(k)
        u.append(_ratio(a - d, total[ctx], 0.0))
        gamma.append(_ratio(counts.context_sum(d, k), total, 1.0))
    return u, gamma
    # END SOLUTION


def interpolate(counts: NgramCounts, u: Sequence[np.ndarray], gamma: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Stage 4: final probabilities of every n-gram, lowest order first.

        p(w) = u(w) + gamma() / |V|,     p(w | h) = u(w | h) + gamma(h) p(w | h')

    p(w | h') of an n-gram h w is its suffix's probability, one gather per order. p(<s>) = 0.
    """
    n_pred = len(counts.vocab) - 1
    p = [u[0] + gamma[0][0] / n_pred]
    p[0][counts.vocab.bos_id] = 0.0
    for k in range(2, counts.order + 1):
        p.append(u[k - 1] + gamma[k - 1][counts.context[k - 1]] * p[k - 2][counts.suffix[k - 1]])
    return p


def backoff_model(counts: NgramCounts, p: Sequence[np.ndarray], bo: Sequence[np.ndarray], smoothing: str,
                  info: dict, unseen_context_bo: float = 1.0) -> NgramLM:
    """Package probabilities p[k-1] and back-off weights bo[k-1] (contexts of order k-1, k >= 2)
    as a model. Interpolated estimators pass bo = gamma."""
    with np.errstate(divide="ignore"):
        logprob = [np.log(x) for x in p]
        logbo = [np.log(b) for b in bo]
        missing = math.log(unseen_context_bo) if unseen_context_bo > 0 else -math.inf
    return NgramLM(counts.vocab, counts.context, counts.word, logprob, logbo, missing, smoothing, info)


def _interpolated(counts, u, gamma, smoothing, info, unseen_context_bo=1.0) -> NgramLM:
    return backoff_model(counts, interpolate(counts, u, gamma), gamma[1:], smoothing, info, unseen_context_bo)


# ---------------------------------------------------------------------------------------------
# The estimators
# ---------------------------------------------------------------------------------------------

def relative_frequencies(counts: NgramCounts) -> tuple[list, list]:
    """p_ML(w | h) = c(hw) / c(h.) for every n-gram, and for every context whether it was seen
    (has a continuation). Maximum likelihood, Jelinek-Mercer and stupid back-off build on these."""
    # BEGIN SOLUTION 1.2: Maximum-likelihood probabilities (chapters/ch01_ngrams.py §1.3)
    ml, seen = [], []
    for k in range(1, counts.order + 1):
        c = _raw(counts, k)
        total = counts.context_sum(c, k)
        ml.append(_ratio(c, total[counts.context_of(k)], 0.0))
        seen.append(total > 0)
    return ml, seen
    # END SOLUTION


def mle(counts: NgramCounts) -> NgramLM:
    """Maximum likelihood: p(w | h) = c(hw) / c(h.). Zero for anything unseen -- including every
    word after a context never seen (there is no estimate there) -- so it is a distribution only
    for seen contexts, and test perplexity is infinite as soon as one test n-gram is new."""
    ml, seen = relative_frequencies(counts)
    return _interpolated(counts, ml, [np.zeros(len(x)) for x in seen], "mle", {}, unseen_context_bo=0.0)


class AdditiveLM(LanguageModel):
    """Add-k smoothing (Laplace for k = 1) on the highest order the history allows:

        p(w | h) = (c(hw) + k) / (c(h .) + k |V|),   |V| counting every word but <s>

    A context never seen gives the uniform 1/|V|. Not a back-off model (a word unseen after h gets
    k / (c(h .) + k |V|), not a multiple of p(w | h')), so it has no ARPA form: it keeps the counts
    and scores from them.
    """

    def __init__(self, counts: NgramCounts, k: float):
        if not 0 < k < math.inf:
            raise ValueError(f"add_k needs k > 0 (and finite), got k={k!r}")
        super().__init__(counts.vocab, counts.context, counts.word, "add_k", {"k": float(k)})
        V = len(counts.vocab)
        self.k = float(k)
        self._count = np.concatenate(counts.count).astype(np.float64)
        self._count[counts.vocab.bos_id] = 0.0
        totals = [counts.context_sum(self._count[:V], 1)]  # the empty context
        totals += [counts.context_sum(c.astype(np.float64), order) for order, c in enumerate(counts.count[1:], 2)]
        self._empty_total = float(totals[0][0])
        self._total = np.concatenate([*totals[1:], np.zeros(len(counts.count[-1]))])
        self._unigram_logprob = np.log(self._count[:V] + k) - np.log(self._empty_total + k * (V - 1))
        self._unigram_logprob[counts.vocab.bos_id] = -math.inf

    def _scores(self, idx: np.ndarray, avail: np.ndarray) -> np.ndarray:
        out = np.zeros(len(avail))
        rows = np.nonzero(avail > 0)[0]
        top = avail[rows]                                   # the order used at each scored token
        g = idx[rows, top - 1]                              # that n-gram, or -1 if unseen
        c = np.where(g >= 0, self._count[np.maximum(g, 0)], 0.0)
        ctx = np.where(top > 1, idx[np.maximum(rows - 1, 0), np.maximum(top - 2, 0)], -1)
        total = np.where(top > 1, np.where(ctx >= 0, self._total[np.maximum(ctx, 0)], 0.0), self._empty_total)
        n_pred = len(self.vocab) - 1
        out[rows] = np.log(c + self.k) - np.log(total + self.k * n_pred)
        return out

    def next_logprobs(self, context: Sequence[str] = ()) -> np.ndarray:
        ctx, n_ctx = self._context_ngrams(context)
        n_pred = len(self.vocab) - 1
        if n_ctx == 0:
            return self._unigram_logprob.copy()
        g = ctx[n_ctx - 1]
        total = self._total[g] if g >= 0 else 0.0
        lp = np.full(len(self.vocab), math.log(self.k) - math.log(total + self.k * n_pred))
        if g >= 0:
            kids = self.trie.children(g)
            lp[self.trie.word[kids]] = np.log(self._count[kids] + self.k) - math.log(total + self.k * n_pred)
        lp[self.vocab.bos_id] = -math.inf
        return lp


def add_k(counts: NgramCounts, k: float = 1.0) -> AdditiveLM:
    """Add-k (Lidstone; Laplace for k = 1) on the highest order: see AdditiveLM."""
    return AdditiveLM(counts, k)


def witten_bell(counts: NgramCounts) -> NgramLM:
    """Witten-Bell (interpolated): the weight of the shorter context grows with the number of
    distinct words seen after h, N1+(h.) -- how often h was followed by something new."""
    # BEGIN SOLUTION 2.2: Witten-Bell interpolation weights (chapters/ch02_smoothing.py §2.3)
    u, gamma = [], []
    for k in range(1, counts.order + 1):
        c = _raw(counts, k)
        total = counts.context_sum(c, k)
        types = counts.context_sum((c > 0).astype(np.float64), k)
        u.append(_ratio(c, (total + types)[counts.context_of(k)], 0.0))
        gamma.append(_ratio(types, total + types, 1.0))
    # END SOLUTION
    return _interpolated(counts, u, gamma, "witten_bell", {})


def jelinek_mercer(counts: NgramCounts, lambdas: Sequence[float] | None = None,
                   heldout: np.ndarray | None = None, iterations: int = 100) -> NgramLM:
    """Jelinek-Mercer (linear interpolation): p(w | h) = lambda_k p_ML(w | h) + (1 - lambda_k) p(w | h'),
    one lambda per order, p(w | h) = p(w | h') where h is unseen.

    `lambdas` (orders 1..N), or `heldout`: an encoded id stream (counts.encode) on which the lambdas
    that maximise the likelihood are found by EM (Jelinek & Mercer 1980). `ngram.fit` holds out
    every 10th training sentence when given neither.
    """
    if lambdas is None:
        if heldout is None:
            raise ValueError("jelinek_mercer needs lambdas or held-out data to tune them on")
        lambdas = tune_lambdas(counts, heldout, iterations)
    lambdas = np.asarray(lambdas, dtype=np.float64)
    if lambdas.shape != (counts.order,) or not np.all((lambdas >= 0) & (lambdas <= 1)):
        raise ValueError(f"jelinek_mercer needs one lambda in [0, 1] per order, got {lambdas.tolist()}")
    ml, seen = relative_frequencies(counts)
    u = [lam * x for lam, x in zip(lambdas, ml)]
    gamma = [np.where(s, 1 - lam, 1.0) for lam, s in zip(lambdas, seen)]
    return _interpolated(counts, u, gamma, "jelinek_mercer", {"lambdas": lambdas.tolist()})


def tune_lambdas(counts: NgramCounts, heldout: np.ndarray, iterations: int = 100, tol: float = 1e-7) -> np.ndarray:
    """EM for Jelinek-Mercer's lambdas on held-out ids. Read the model as a chain of coin flips:
    at the longest seen context flip lambda_k -- heads, emit from p_ML at that order; tails, move
    to the next shorter context; below unigrams emit uniformly. E-step: the posterior probability
    of stopping at / passing through each order for every held-out token; M-step: lambda_k =
    E[stops at k] / E[reaches k]."""
    N, n_pred = counts.order, len(counts.vocab) - 1
    ml, seen = relative_frequencies(counts)
    trie = Trie(counts.context, counts.word, counts.vocab.bos_id)
    idx, avail = trie.lookup(heldout)
    rows = np.nonzero(avail > 0)[0]
    offset = trie.offset
    # per held-out token and order k: p_ML at k, and whether the context of order k-1 was seen
    p_ml = np.zeros((len(rows), N))
    active = np.zeros((len(rows), N), dtype=bool)
    for k in range(1, N + 1):
        usable = avail[rows] >= k
        g = idx[rows, k - 1]
        p_ml[:, k - 1] = np.where(usable & (g >= 0), ml[k - 1][np.maximum(g - offset[k - 1], 0)], 0.0)
        if k == 1:
            active[:, 0] = True
        else:
            ctx = idx[np.maximum(rows - 1, 0), k - 2]
            active[:, k - 1] = usable & (ctx >= 0) & seen[k - 1][np.maximum(ctx - offset[k - 2], 0)]
    lam = np.full(N, 0.5)
    last = -np.inf
    for _ in range(iterations):
        levels = [np.full(len(rows), 1.0 / n_pred)]  # p at each level, bottom up
        for k in range(1, N + 1):
            mix = lam[k - 1] * p_ml[:, k - 1] + (1 - lam[k - 1]) * levels[-1]
            levels.append(np.where(active[:, k - 1], mix, levels[-1]))
        p = levels[-1]
        loglik = np.log(p).sum()
        reach = np.ones(len(rows))  # probability of the flips that lead down to order k
        stops, passes = np.zeros(N), np.zeros(N)
        for k in range(N, 0, -1):
            a = active[:, k - 1]
            stops[k - 1] = (reach * lam[k - 1] * p_ml[:, k - 1] / p)[a].sum()
            passes[k - 1] = (reach * levels[k] / p)[a].sum()
            reach = np.where(a, reach * (1 - lam[k - 1]), reach)
        lam = np.clip(_ratio(stops, passes, 0.5), 1e-6, 1 - 1e-6)
        if loglik - last < tol * len(rows):
            break
        last = loglik
    return lam


def absolute_discounting(counts: NgramCounts, discount: Sequence[float] | None = None) -> NgramLM:
    """Interpolated absolute discounting (Ney, Essen & Kneser 1994): subtract D_k from every raw
    count at order k, D_k = n1 / (n1 + 2 n2) unless `discount` (one per order) is given."""
    raw = [_raw(counts, k).astype(np.int64) for k in range(1, counts.order + 1)]
    D = _single_discounts(raw, discount)
    u, gamma = initial_probabilities(counts, raw, D)
    return _interpolated(counts, u, gamma, "absolute_discounting", {"discounts": [d[1:].tolist() for d in D]})


def kneser_ney(counts: NgramCounts, discount: Sequence[float] | None = None) -> NgramLM:
    """Interpolated Kneser-Ney: absolute discounting on adjusted counts (continuation counts below
    the highest order), one D_k = n1 / (n1 + 2 n2) per order from the adjusted count-of-counts."""
    adjusted = adjust_counts(counts)
    D = _single_discounts(adjusted, discount)
    u, gamma = initial_probabilities(counts, adjusted, D)
    return _interpolated(counts, u, gamma, "kneser_ney", {"discounts": [d[1:].tolist() for d in D]})


def _single_discounts(used, discount):
    if discount is None:
        return [kneser_ney_discounts(count_of_counts(a), k, modified=False) for k, a in enumerate(used, 1)]
    return check_discounts(discount, len(used), modified=False)


def modified_kneser_ney(counts: NgramCounts, discounts: Sequence[Sequence[float]] | None = None) -> NgramLM:
    """Interpolated modified Kneser-Ney (Chen & Goodman 1999), what KenLM's lmplz estimates: three
    discounts per order (for adjusted counts 1, 2, 3+) from the adjusted count-of-counts, or
    `discounts` = [(D1, D2, D3+) per order] when given."""
    adjusted = adjust_counts(counts)
    if discounts is None:
        D = [kneser_ney_discounts(count_of_counts(a), k) for k, a in enumerate(adjusted, 1)]
    else:
        D = check_discounts(discounts, counts.order, modified=True)
    u, gamma = initial_probabilities(counts, adjusted, D)
    return _interpolated(counts, u, gamma, "modified_kneser_ney", {"discounts": [d[1:].tolist() for d in D]})


def good_turing(counts: NgramCounts, max_count: Sequence[int] | None = None,
                min_count: Sequence[int] | None = None) -> NgramLM:
    """Katz back-off with Good-Turing discounts (Katz 1987), built as SRILM's ngram-count does.

    Seen n-grams (count >= min_count[k-1]) get p*(w | h) = d_r c(hw) / c(h.), with d_r Katz's
    ratio (discounts.py) for counts r <= max_count[k-1] and 1 above. The mass left over at h goes
    to the words not seen after h, in proportion to p(w | h'):

        bo(h) = (1 - sum_seen p*(w | h)) / (1 - sum_seen p(w | h'))

    Unigrams: the left-over mass is shared equally by the words with no estimate (<unk> when it is
    unseen) or, if every word has one, by all words. A context that would leave nothing for
    unseen words (every continuation seen more than K times) counts, as SRILM does, one extra
    unseen event: c(h.) + 1. n-grams below min_count are dropped but still count in c(h.).

    Defaults: max_count 7 and no cutoffs. SRILM's defaults are max_count (1, 7, 7, ..) -- d_1 is
    then 0, which SRILM replaces by 1, so unigrams are not discounted -- and min_count
    (1, 1, 2, 2, ..): trigrams and longer seen once are dropped.

    Stages: katz_discounted (3: p* of each order) -> katz_unigrams (4 at order 1) -> prune ->
    katz_backoff (4: back-off weights, orders 2..N).
    """
    N = counts.order
    max_count = _per_order(max_count, 7, N, "max_count")
    min_count = _per_order(min_count, 1, N, "min_count")
    p_star, keep, ratios = zip(*(katz_discounted(counts, k, max_count[k - 1], min_count[k - 1])
                                 for k in range(1, N + 1)))
    p1 = katz_unigrams(p_star[0], counts.vocab.bos_id)
    pruned = prune(counts, [1] + min_count[1:]) if N > 1 else counts
    p, bo = katz_backoff(pruned, p1, [p_star[k - 1][keep[k - 1]] for k in range(2, N + 1)])
    info = {"ratios": list(ratios), "max_count": max_count, "min_count": min_count}
    return backoff_model(pruned, p, bo, "good_turing", info)


def _per_order(values, default: int, orders: int, name: str) -> list[int]:
    """One int >= 0 per order (`default` for each when None); else a ValueError naming `name`."""
    if values is None:
        return [default] * orders
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != orders:
        raise ValueError(f"{name} needs one value per order (1..{orders}), got {values!r}")
    for k, v in enumerate(values, 1):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} for order {k} must be an int >= 0, got {v!r}")
    return [int(v) for v in values]


def katz_discounted(counts: NgramCounts, k: int, max_count: int, min_count: int) -> tuple:
    """Stage 3 of Katz back-off at order k: Good-Turing discounted probabilities.

    In: raw counts, K = max_count (counts above it are not discounted), the cutoff min_count.
    Out: p*(w | h) = d_c c(hw) / c(h.) for every order-k n-gram (0 for those below the cutoff;
    at order 1 every word is kept), which n-grams are kept, and Katz's ratios d_1..d_K.
    """
    V, bos = len(counts.vocab), counts.vocab.bos_id
    c = _raw(counts, k)
    d = good_turing_discounts(count_of_counts(c.astype(np.int64), max_count + 1), max_count, k)
    ratio = np.where(c <= max_count, d[np.minimum(c, max_count).astype(np.int64)], 1.0)
    kept = c >= max(min_count, 1)
    seen = np.where(kept, ratio * c, 0.0)  # discounted counts of what is kept
    total = counts.context_sum(c, k)
    # nothing left for unseen words (all counts > K, or none discounted): one more unseen event
    nothing_left = (total > 0) & (counts.context_sum(seen, k) >= total)
    if k == 1:
        nothing_left &= bool(np.any((seen == 0) & (np.arange(V) != bos)))
    total = np.where(nothing_left, total + 1, total)
    keep = kept if k > 1 else np.ones(V, bool)
    return _ratio(seen, total[counts.context_of(k)], 0.0), keep, d[1:].tolist()


def katz_unigrams(p_star: np.ndarray, bos: int) -> np.ndarray:
    """Stage 4 at order 1. In: p*(w) of every word. Out: the unigram distribution, with the mass
    p* leaves shared equally by the words with no estimate, or by all words if there are none
    (`p_star` is updated in place and returned)."""
    V = len(p_star)
    share = (p_star == 0) & (np.arange(V) != bos)
    if not share.any():
        share = np.arange(V) != bos
    p_star[share] += (1.0 - p_star.sum()) / share.sum()
    return p_star


def katz_backoff(pruned: NgramCounts, p1: np.ndarray, p_star: Sequence[np.ndarray]) -> tuple[list, list]:
    """Stage 4 of Katz back-off, orders 2..N, lowest first.

    In: the pruned counts, the unigram distribution p1, and p*[k-2] of the kept order-k n-grams.
    Out: p[k-1], the probability of every order-k n-gram (p[0] = p1), and bo[k-2], the back-off
    weight of every context of order k-1, bo(h) = (1 - sum_seen p*(w | h)) / (1 - sum_seen p(w | h')).
    """
    p, bo = [p1], []
    for k in range(2, pruned.order + 1):
        pk = p_star[k - 2]
        lower = p[k - 2][pruned.suffix[k - 1]]
        num = 1.0 - pruned.context_sum(pk, k)
        den = 1.0 - pruned.context_sum(lower, k)
        # if the shorter context already gives all its mass to these words, renormalise instead
        stuck = den < 1e-6
        scale = _ratio(np.ones_like(num), 1.0 - num, 1.0)
        pk = np.where(stuck[pruned.context[k - 1]], pk * scale[pruned.context[k - 1]], pk)
        bo.append(np.where(stuck, 0.0, _ratio(num, den, 1.0)))
        p.append(pk)
    return p, bo


def stupid_backoff(counts: NgramCounts, alpha: float = 0.4) -> NgramLM:
    """Stupid back-off (Brants et al. 2007): S(w | h) = c(hw) / c(h.) if seen, else alpha S(w | h').
    Brants et al. stop at S(w) = c(w) / N; for a word with count 0 we add a uniform "zero-gram",
    S(w) = alpha / |V|. These are scores, NOT probabilities: they do not sum to 1, and their
    "perplexity" is not comparable."""
    if not 0 < alpha < math.inf:  # alpha <= 0 would give log 0 or log of a negative for every back-off
        raise ValueError(f"stupid_backoff needs alpha > 0 (Brants et al. use 0.4), got alpha={alpha!r}")
    n_pred = len(counts.vocab) - 1
    p, _ = relative_frequencies(counts)
    p[0] = np.where(p[0] > 0, p[0], alpha / n_pred)
    p[0][counts.vocab.bos_id] = 0.0
    bo = [np.full(len(c), alpha) for c in counts.count[:-1]]
    return backoff_model(counts, p, bo, "stupid_backoff", {"alpha": alpha}, unseen_context_bo=alpha)


ESTIMATORS: dict[str, Callable[..., NgramLM]] = {
    "mle": mle,
    "add_k": add_k,
    "good_turing": good_turing,
    "witten_bell": witten_bell,
    "jelinek_mercer": jelinek_mercer,
    "absolute_discounting": absolute_discounting,
    "kneser_ney": kneser_ney,
    "modified_kneser_ney": modified_kneser_ney,
    "stupid_backoff": stupid_backoff,
}

# Methods whose scores are probability distributions over the vocabulary (MLE: seen contexts only).
DISTRIBUTIONS = tuple(name for name in ESTIMATORS if name != "stupid_backoff")
