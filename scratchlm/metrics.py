"""Units for language-model quality (every chapter).

A model's average negative log-likelihood per token is a cross-entropy H in nats (natural log).
The same number in bits is H / ln 2, and perplexity is exp(H) = 2 ** (H in bits): the size of a
uniform vocabulary that would be just as surprising.

Two models of the same vocabulary mix into a third by linear interpolation (Chapter 4 mixes the
NPLM with Kneser-Ney):  P(w | h) = lam P_a(w | h) + (1 - lam) P_b(w | h), a distribution for any
0 <= lam <= 1. Per token, in log space (`interpolate_logprobs`):

    ln P = ln(lam e^{ln P_a} + (1 - lam) e^{ln P_b}) = logaddexp(ln lam + ln P_a, ln(1 - lam) + ln P_b)

which never forms e^{ln P} for log-probabilities far below the float range.

Classification (Chapter 10), from predicted and true class ids of N items:

    accuracy            the fraction predicted right
    confusion_matrix    M[i, j] = the number of items of class i predicted j (rows true, columns predicted)
    precision_recall_f1 of one class c:  P = TP / (TP + FP),  R = TP / (TP + FN),  F1 = 2 P R / (P + R)
                        (TP: items of class c predicted c; FP: others predicted c; FN: c predicted other)
    f1_score            that F1 alone;  macro_f1: the mean of the K classes' F1

Accuracy alone flatters a rare class: 13% of SMS messages are spam, so predicting "ham" always scores
87%, and the spam class's F1 is 0. A ratio whose denominator is 0 (no item predicted c: P; no item of
class c: R; P = R = 0: F1) is taken to be 0, as scikit-learn's zero_division=0, so a model that never
predicts the class scores 0 rather than NaN.
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


def _classes(pred, labels, op: str) -> tuple[np.ndarray, np.ndarray]:
    """pred, labels as equal-length 1-D int64 arrays of class ids >= 0, or a ValueError naming `op`."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    for name, a in (("pred", pred), ("labels", labels)):
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
            raise ValueError(f"{op}: {name} must be a 1-D array of integer class ids, got shape {a.shape} "
                             f"dtype {a.dtype}")
        if a.size and a.min() < 0:
            raise ValueError(f"{op}: {name} holds class id {a.min()} < 0")
    if pred.shape != labels.shape:
        raise ValueError(f"{op}: pred and labels must have the same length, got {len(pred)} and {len(labels)}")
    if pred.size == 0:
        raise ValueError(f"{op}: no items (pred and labels are empty)")
    return pred.astype(np.int64), labels.astype(np.int64)


def accuracy(pred, labels) -> float:
    """The fraction of items whose predicted class is the true one."""
    pred, labels = _classes(pred, labels, "accuracy")
    return float(np.mean(pred == labels))


def confusion_matrix(pred, labels, n_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts, M[i, j] = items of true class i predicted j; K = n_classes, by default
    one more than the largest id seen."""
    pred, labels = _classes(pred, labels, "confusion_matrix")
    K = int(max(pred.max(), labels.max())) + 1 if n_classes is None else n_classes
    if max(pred.max(), labels.max()) >= K:
        raise ValueError(f"confusion_matrix: class id {max(pred.max(), labels.max())} >= n_classes={K}")
    return np.bincount(labels * K + pred, minlength=K * K).reshape(K, K)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0  # the module docstring's zero_division=0


def precision_recall_f1(pred, labels, positive: int = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of class `positive` (module docstring; 0 where a ratio is 0 / 0)."""
    pred, labels = _classes(pred, labels, "precision_recall_f1")
    tp = int(np.sum((pred == positive) & (labels == positive)))
    precision = _ratio(tp, int(np.sum(pred == positive)))
    recall = _ratio(tp, int(np.sum(labels == positive)))
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def f1_score(pred, labels, positive: int = 1) -> float:
    """The F1 of class `positive`: 2 P R / (P + R), the harmonic mean of its precision and recall."""
    return precision_recall_f1(pred, labels, positive)[2]


def macro_f1(pred, labels, n_classes: int | None = None) -> float:
    """The unweighted mean over classes 0 .. K-1 of each class's F1 (K as in confusion_matrix)."""
    M = confusion_matrix(pred, labels, n_classes)
    tp = np.diag(M)
    f1 = [_ratio(2 * int(tp[c]), int(M[c].sum() + M[:, c].sum())) for c in range(len(M))]  # 2TP / (2TP+FP+FN)
    return float(np.mean(f1))
