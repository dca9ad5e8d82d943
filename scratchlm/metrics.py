"""Units for language-model quality (every chapter).

A model's average negative log-likelihood per token is a cross-entropy H in nats (natural log).
The same number in bits is H / ln 2, and perplexity is exp(H) = 2 ** (H in bits): the size of a
uniform vocabulary that would be just as surprising.

Two models of the same vocabulary mix into a third by linear interpolation (Chapter 4 mixes the
NPLM with Kneser-Ney):  P(w | h) = lam P_a(w | h) + (1 - lam) P_b(w | h), a distribution for any
0 <= lam <= 1. Per token, in log space (`interpolate_logprobs`):

    ln P = ln(lam e^{ln P_a} + (1 - lam) e^{ln P_b}) = logaddexp(ln lam + ln P_a, ln(1 - lam) + ln P_b)

which never forms e^{ln P} for log-probabilities far below the float range.
"""

import math

import numpy as np

LN2 = math.log(2.0)


def nats_to_bits(nats: float) -> float:
    return nats / LN2


def bits_to_nats(bits: float) -> float:
    return bits * LN2


def perplexity(nats: float) -> float:
    """Perplexity from an average negative log-likelihood in nats."""
    return math.exp(nats)


def log10_to_nats(log10_prob: float) -> float:
    """ARPA files store log10 probabilities; ln p = log10 p * ln 10."""
    return log10_prob * math.log(10.0)


def interpolate_logprobs(logp_a, logp_b, lam: float) -> np.ndarray:
    """ln(lam P_a + (1 - lam) P_b) per token, from the two models' log-probabilities ln P_a, ln P_b
    (arrays of the same shape, natural log) and the weight 0 <= lam <= 1 of model a. At lam = 0 or 1
    one weight's log is ln 0 = -inf and its term drops out: the result is exactly the other model."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"the interpolation weight must lie in [0, 1], got {lam}")
    logp_a, logp_b = np.asarray(logp_a, dtype=np.float64), np.asarray(logp_b, dtype=np.float64)
    # BEGIN SOLUTION 4.3: Mixing two models in log space (chapters/ch04_neural_lm.py §4.6)
    with np.errstate(divide="ignore"):  # ln 0 = -inf at lam = 0 or 1: that model's term drops out exactly
        return np.logaddexp(np.log(lam) + logp_a, np.log1p(-lam) + logp_b)
    # END SOLUTION
