"""n-gram language models (Chapters 1-2): counting in Numba, nine estimators behind one interface,
ARPA files that KenLM reads and writes.

    from scratchlm import ngram
    lm = ngram.fit(sentences, order=3, smoothing="modified_kneser_ney")  # sentences: lists of tokens
    lm.prob("cat", ["<s>", "the"]), lm.logprob(...), lm.logprob_ids(ids), lm.perplexity(test)
    lm.generate(rng); ngram.write_arpa(lm, "lm.arpa"); ngram.read_arpa("lm.arpa")

The estimation pipeline, one module per stage (KenLM's lmplz has the same stages):

    counts.py      text -> ids; count (stage 1) and adjust counts (stage 2)     kernels.py: Numba
    discounts.py   discounts from count-of-counts (stage 3a)
    smoothing.py   initial probabilities, interpolation / back-off (3b, 4); the nine estimators
    arpa.py        write and read ARPA files (stage 5)
    lm.py, trie.py the model: scoring, perplexity, sampling

Imports run one way: counts <- lm <- smoothing, lm <- arpa; nothing imports arpa but this file.
Sentences are lists of tokens and contexts are lists of tokens; a string is refused with a
TypeError (counts.token_list), since it would silently be read as characters.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from scratchlm.ngram.arpa import ArpaError, read_arpa, write_arpa
from scratchlm.ngram.counts import (NgramCounts, adjust_counts, build_vocab, check_order, count_ngrams,
                                    count_of_counts, encode, prune, sentence_list)
from scratchlm.ngram.discounts import DiscountFallbackWarning, good_turing_discounts, kneser_ney_discounts
from scratchlm.ngram.lm import Evaluation, LanguageModel, NgramLM
from scratchlm.ngram.smoothing import DISTRIBUTIONS, ESTIMATORS, AdditiveLM, tune_lambdas

HELDOUT_EVERY = 10  # jelinek_mercer without held-out data tunes on every 10th training sentence


def fit(sentences: Iterable[Sequence[str]], order: int = 3, smoothing: str = "modified_kneser_ney",
        vocab: Iterable[str] | None = None, **params) -> LanguageModel:
    """Count `sentences` (lists of token strings) and estimate an order-`order` model.

    smoothing: one of ESTIMATORS (mle, add_k, good_turing, witten_bell, jelinek_mercer,
    absolute_discounting, kneser_ney, modified_kneser_ney, stupid_backoff); `params` go to it
    (see smoothing.py). vocab: a fixed word list (others become <unk>); default: every word seen.
    jelinek_mercer takes `heldout` as sentences here; without it or `lambdas`, every 10th training
    sentence is held out to tune the lambdas, which are then used with counts of all the text.
    """
    if smoothing not in ESTIMATORS:
        raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {', '.join(ESTIMATORS)}")
    order = check_order(order)  # before any counting
    sentences = [list(s) for s in sentence_list(sentences)]  # checked first: list("the cat") is characters
    v = build_vocab(sentences, vocab)
    if smoothing == "jelinek_mercer":
        if params.get("heldout") is not None:
            params["heldout"] = encode(v, sentence_list(params["heldout"], "heldout"))
        elif params.get("lambdas") is None:  # tune on every 10th sentence, counting the others
            held = sentences[HELDOUT_EVERY - 1::HELDOUT_EVERY]
            rest = [s for i, s in enumerate(sentences) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
            params["lambdas"] = tune_lambdas(count_ngrams(encode(v, rest), order, v), encode(v, held))
    counts = count_ngrams(encode(v, sentences), order, v)
    return ESTIMATORS[smoothing](counts, **params)


__all__ = ["fit", "read_arpa", "write_arpa", "ArpaError", "LanguageModel", "NgramLM", "AdditiveLM", "Evaluation",
           "NgramCounts", "build_vocab", "encode", "count_ngrams", "adjust_counts", "count_of_counts", "prune",
           "kneser_ney_discounts", "good_turing_discounts", "DiscountFallbackWarning", "ESTIMATORS",
           "DISTRIBUTIONS"]
