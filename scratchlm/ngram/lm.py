"""An n-gram language model: score, perplexity, generate (Chapters 1-2).

    lm = ngram.fit(sentences, order=3, smoothing="kneser_ney")   # sentences: lists of tokens
    lm.prob("cat", ["<s>", "the"])          # p(cat | <s> the); a context without <s> is mid-sentence
    lm.logprob("cat", ["the"])              # natural log
    lm.logprob_ids(ids)                     # vectorised: log p of every token of an id stream
    lm.perplexity(test_sentences)           # exp(-mean log p), one </s> per sentence, <s> not scored
    lm.generate(rng)                        # one sampled sentence, as a list of tokens

`LanguageModel` is that interface, shared by every estimator: the n-grams of the model as a trie
(trie.py), and scoring built on two methods each kind of model defines, `_scores` (log p of every
token of a looked-up id stream) and `next_logprobs` (log p of every word after one context).
Contexts and sentences must be lists of tokens: a string is refused (counts.token_list).

Every model but add-k (smoothing.AdditiveLM, which scores from its counts) is an `NgramLM`, stored
in *back-off form*, the form of an ARPA file: each n-gram g of the model has a log-probability,
each n-gram that can be a context has a log back-off weight, and

    p(w | h) = P(h w)                     if h w is an n-gram of the model
             = bo(h) * p(w | h')          otherwise, h' = h without its first word

where bo(h) of a context h the model lacks is 1 (ARPA), alpha (stupid back-off) or 0 (maximum
likelihood: no estimate). Interpolated models fit this form because their unseen-word probability
is gamma(h) p(w | h'), so their bo is gamma. Scoring walks the trie once per token in Numba
(kernels.lookup, kernels.backoff_logprobs).

Conventions (lmplz's): a sentence is `<s> w1 .. wm </s>`; `<s>` is only ever a context (probability
0, not scored); one `</s>` is scored per sentence; unknown words are `<unk>`, which is always in the
vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from scratchlm.ngram import kernels
from scratchlm.ngram.counts import Sentences, encode, ngram_rows, token_list
from scratchlm.ngram.trie import Trie
from scratchlm.rng import get_rng
from scratchlm.tokenizers.word import BOS, WordVocab


@dataclass(frozen=True)
class Evaluation:
    """How well a model predicts a text. Perplexity = exp(-logprob / tokens)."""

    logprob: float          # total natural log-probability of the scored tokens
    tokens: int             # scored tokens: the words and one </s> per sentence
    oovs: int               # scored tokens that are <unk>
    logprob_oov: float      # their share of `logprob`

    @property
    def perplexity(self) -> float:
        return math.exp(-self.logprob / _nonzero(self.tokens, "perplexity", "scored tokens"))

    @property
    def perplexity_excl_oov(self) -> float:
        """Perplexity over the in-vocabulary tokens only (KenLM's "excluding OOVs")."""
        n = _nonzero(self.tokens - self.oovs, "perplexity_excl_oov", "in-vocabulary tokens")
        return math.exp(-(self.logprob - self.logprob_oov) / n)

    @property
    def bits_per_token(self) -> float:
        return -self.logprob / _nonzero(self.tokens, "bits_per_token", "scored tokens") / math.log(2)


def _nonzero(tokens: int, what: str, kind: str) -> int:
    """The number of tokens an average divides by; 0 is an error naming the cause, not a 0/0."""
    if tokens == 0:
        raise ValueError(f"{what}: the text has no {kind} to average over; pass at least one sentence "
                         "(a list of tokens; even an empty sentence scores its </s>)")
    return tokens


class LanguageModel:
    """What every estimator returns (nltk.lm's idea: one small interface): the model's n-grams as a
    trie, and scoring, perplexity and sampling built on `_scores` and `next_logprobs`.

    context[k-1], word[k-1]: the order-k n-grams in lexicographic order (context = index of the
    first k-1 words in order k-1; unigrams are the whole vocabulary, indexed by word id).
    """

    def __init__(self, vocab: WordVocab, context: list[np.ndarray], word: list[np.ndarray],
                 smoothing: str = "", info: dict | None = None):
        if len(word[0]) != len(vocab) or len(context) != len(word):
            raise ValueError("a model needs one table per order, unigrams covering the vocabulary")
        self.vocab = vocab
        self.context, self.word = context, word
        self.smoothing = smoothing
        self.info = dict(info or {})  # what the estimator chose: discounts, lambdas, ...
        self.trie = Trie(context, word, vocab.bos_id)

    @property
    def order(self) -> int:
        return len(self.word)

    def sizes(self) -> list[int]:
        """Number of n-grams of each order."""
        return [len(w) for w in self.word]

    def ngrams(self, k: int) -> np.ndarray:
        """(n_k, k) word ids of the order-k n-grams, in table order."""
        return ngram_rows(self.context, self.word, k)

    # -- what each kind of model defines ----------------------------------------------------

    def _scores(self, idx: np.ndarray, avail: np.ndarray) -> np.ndarray:
        """ln p of every token of an id stream from its trie lookup (Trie.lookup's idx, avail);
        0 where avail is 0 (at <s>)."""
        raise NotImplementedError

    def next_logprobs(self, context: Sequence[str] = ()) -> np.ndarray:
        """ln p(w | context) for every word id w at once: (V,), -inf for <s>."""
        raise NotImplementedError

    # -- scoring -----------------------------------------------------------------------------

    def encode(self, sentences: Sentences) -> np.ndarray:
        """Sentences (lists of tokens) as one id stream `<s> w1 .. wm </s> ...` (see counts.encode)."""
        return encode(self.vocab, sentences)

    def logprob_ids(self, ids: np.ndarray) -> np.ndarray:
        """Natural log-probability of every token of an id stream given the tokens before it (back to
        the last `<s>`; the stream's first token has no history). 0 at every `<s>` (not scored)."""
        return self._scores(*self.trie.lookup(ids))

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """ln p(word | context). A context that does not start with <s> is a mid-sentence one; only
        its last order-1 tokens matter. p(<s>) is 0: <s> is never predicted."""
        context = token_list(context, "context")
        if not isinstance(word, str):
            raise TypeError(f"word must be one token (a string), got {word!r}")
        if word == BOS:
            return -math.inf
        return float(self.logprob_ids(self.vocab.ids([*context, word]))[-1])

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        return math.exp(self.logprob(word, context))

    def _context_ngrams(self, context: Sequence[str]) -> tuple[np.ndarray, int]:
        """Global indices of the context's j-grams ending at its last token (j = 1..), and how many
        context lengths the history allows (0 .. order-1)."""
        ids = np.append(self.vocab.ids(token_list(context, "context")), self.vocab.unk_id)
        idx, avail = self.trie.lookup(ids)
        return (idx[-2] if len(ids) > 1 else idx[-1]), int(avail[-1]) - 1

    def evaluate(self, sentences: Sentences) -> Evaluation:
        """Total log-probability of `sentences`, token and OOV counts (perplexity and friends)."""
        # BEGIN SOLUTION 1.3: Log-probability of a text for perplexity (chapters/ch01_ngrams.py §1.4)
        ids = self.encode(sentences)
        lp = self.logprob_ids(ids)
        scored = ids != self.vocab.bos_id
        oov = scored & (ids == self.vocab.unk_id)
        return Evaluation(float(lp[scored].sum()), int(scored.sum()), int(oov.sum()), float(lp[oov].sum()))
        # END SOLUTION

    def perplexity(self, sentences: Sentences) -> float:
        """exp of the mean negative log-probability per token (words + one </s> per sentence)."""
        return self.evaluate(sentences).perplexity

    # -- sampling ----------------------------------------------------------------------------

    def generate(self, rng: np.random.Generator | None = None, max_tokens: int = 100,
                 context: Sequence[str] = ()) -> list[str]:
        """Sample one sentence word by word from p(w | <s> context ...) until </s> (not returned)
        or `max_tokens` words. Scores that are not a distribution (stupid back-off) are normalised."""
        context = token_list(context, "context")
        # BEGIN SOLUTION 1.4: Sampling a sentence, Shannon's game (chapters/ch01_ngrams.py §1.5)
        rng = get_rng(rng)
        history = [BOS, *context]
        out: list[str] = []
        for _ in range(max_tokens):
            lp = self.next_logprobs(history[-(self.order - 1):] if self.order > 1 else [])
            p = np.exp(lp - lp.max())
            w = int(rng.choice(len(p), p=p / p.sum()))
            if w == self.vocab.eos_id:
                break
            out.append(self.vocab.words[w])
            history.append(self.vocab.words[w])
        return out
        # END SOLUTION


class NgramLM(LanguageModel):
    """A back-off n-gram model (see the module docstring): the form of an ARPA file.

    logprob[k-1]: natural log P of each order-k n-gram; logbo[k-1] (k < N): natural log back-off
    weight of each (kept as .logp_table and .logbo_table); unseen_context_logbo: ln bo(h) of a
    context h the model lacks.
    """

    def __init__(self, vocab: WordVocab, context: list[np.ndarray], word: list[np.ndarray],
                 logprob: list[np.ndarray], logbo: list[np.ndarray], unseen_context_logbo: float = 0.0,
                 smoothing: str = "", info: dict | None = None):
        if len(logprob) != len(word) or len(logbo) != len(word) - 1:
            raise ValueError(f"an order-{len(word)} back-off model needs {len(word)} logprob tables and "
                             f"{len(word) - 1} logbo tables (none for the highest order), got "
                             f"{len(logprob)} and {len(logbo)}")
        super().__init__(vocab, context, word, smoothing, info)
        self.logp_table, self.logbo_table = logprob, logbo
        self.unseen_context_logbo = float(unseen_context_logbo)
        # the kernels want one array over all n-grams (global indices, see trie.py)
        self._logprob = np.concatenate(logprob).astype(np.float64)
        self._logbo = np.concatenate([*logbo, np.zeros(len(word[-1]))]).astype(np.float64)

    def _scores(self, idx: np.ndarray, avail: np.ndarray) -> np.ndarray:
        return kernels.backoff_logprobs(idx, avail, self._logprob, self._logbo, self.unseen_context_logbo)

    def next_logprobs(self, context: Sequence[str] = ()) -> np.ndarray:
        """ln p(w | context) for every word id w at once: (V,), -inf for <s>."""
        ctx, n_ctx = self._context_ngrams(context)
        lp = self.logp_table[0].copy()
        for j in range(1, n_ctx + 1):  # p(. | last j words) from p(. | last j-1 words)
            g = ctx[j - 1]
            if g < 0:
                lp += self.unseen_context_logbo
                continue
            lp += self._logbo[g]
            kids = self.trie.children(g)
            lp[self.trie.word[kids]] = self._logprob[kids]
        lp[self.vocab.bos_id] = -math.inf
        return lp
