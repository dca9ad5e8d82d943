"""Units for language-model quality (every chapter).

A model's average negative log-likelihood per token is a cross-entropy H in nats (natural log).
The same number in bits is H / ln 2, and perplexity is exp(H) = 2 ** (H in bits): the size of a
uniform vocabulary that would be just as surprising.
"""

import math

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
