"""Logistic regression, on bag-of-words counts (Chapter 10's baseline, §10.2) or on a frozen GPT's
features (the linear probe, §10.3), written on the autograd of Chapter 3.

Bag of words. A text becomes a vector x of V numbers, one per item of a vocabulary fitted on the
training texts; word order is thrown away:

    unit="word"   tokens = the lowercased text's runs of letters and digits, and each other non-space
                  symbol on its own (`[^\\W_]+|[^\\w\\s]`): "WIN £1000 now!!" -> win, £, 1000, now, !, !
    unit="char"   tokens = the non-space characters: for Chinese, where words are not separated by
                  spaces, each character is a word (a bag of characters)
    vocabulary    the tokens seen at least min_count times in the training texts, ordered by count
                  (then by the token); a token outside it is dropped (no <unk> column)
    features      x_v = how many times token v occurs (counts), or 1 if it occurs at all (binary=True)

The defaults were chosen on the validation splits (not the test splits): words seen twice as counts
on SMS (valid accuracy 98.2%, spam F1 0.93, weight decay 0.1); characters seen twice as presence
(unit="char", binary=True) on shijing-sections (valid accuracy 85%, presence beating counts, whose
long poems' repeated refrains swamp the rest).

Softmax regression (multinomial logistic regression). For K classes, one weight row w_k per class:

    p(y = k | x) = softmax(W x + b)_k,    loss = mean over items of -ln p(y_i | x_i)

With K = 2 this is logistic regression, p(1 | x) = sigmoid((w_1 - w_0) x + b_1 - b_0): two rows
where one would do, the same model. The loss is convex in (W, b), so W and b start at 0 (there is
no symmetry to break) and any optimiser that converges finds the same minimum. It is trained here
like every model of the book: AdamW through scratchlm.train.train_epochs, whose weight decay on W
(never on b, configure_optimizer's rule) is the L2 penalty that keeps W finite when the training
set is separable, as a bag of words over a few thousand messages almost always is. AdamW's decay is
decoupled from the gradient (Loshchilov & Hutter 2019): it shrinks W by lr * weight_decay * W each
step rather than adding weight_decay / 2 ||W||^2 to the loss, which with Adam's per-weight step
sizes is not quite the same penalty, but it regularises the same way and is chosen the same way:
on the validation split.

    BagOfWords(unit="word", min_count=2, binary=False).fit(texts)
        .transform(texts) -> (N, V) float32, dense (SMS: 3,899 training messages x 3,424 words
                             seen twice, 53 MB; min_count=1 would double V)
    LogisticRegression(n_features, n_classes)(x, targets=None) -> (logits (N, K), loss or None)
        .predict_proba(x) -> (N, K) probabilities,  .predict(x) -> (N,) class ids
    train_logistic(train, valid, ...) -> (model, history)   AdamW with weight decay, early stopping
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import no_grad
from scratchlm.nn import Linear, Module, init
from scratchlm.train import EpochSettings, configure_optimizer, train_epochs

_WORD = re.compile(r"[^\W_]+|[^\w\s]")   # runs of letters and digits; any other non-space symbol alone


class BagOfWords:
    """Text -> vector of token counts over a vocabulary fitted on training texts (module docstring)."""

    def __init__(self, unit: str = "word", min_count: int = 2, binary: bool = False):
        if unit not in ("word", "char"):
            raise ValueError(f"BagOfWords: unit must be 'word' or 'char', got {unit!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"BagOfWords: min_count must be an integer >= 1, got {min_count!r}")
        self.unit, self.min_count, self.binary = unit, int(min_count), bool(binary)
        self.vocab: list[str] | None = None   # set by fit
        self.index: dict[str, int] = {}

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text: lowercased words and symbols, or non-space characters."""
        if self.unit == "char":
            return [c for c in text if not c.isspace()]
        return _WORD.findall(text.lower())

    def fit(self, texts) -> BagOfWords:
        """Fit the vocabulary on `texts`: the tokens seen at least min_count times, most frequent first."""
        counts = Counter(t for text in texts for t in self.tokens(text))
        kept = sorted((t for t, n in counts.items() if n >= self.min_count), key=lambda t: (-counts[t], t))
        if not kept:
            raise ValueError(f"BagOfWords.fit: no token occurs min_count={self.min_count} times in the "
                             f"{len(texts)} texts")
        self.vocab = kept
        self.index = {t: i for i, t in enumerate(kept)}
        return self

    def __len__(self) -> int:
        return 0 if self.vocab is None else len(self.vocab)

    def transform(self, texts) -> np.ndarray:
        """(N, V) float32: each text's counts of the vocabulary's tokens (0/1 when binary)."""
        if self.vocab is None:
            raise ValueError("BagOfWords.transform: call fit(training texts) first")
        V = len(self.vocab)
        rows, cols = [], []
        for i, text in enumerate(texts):
            ids = [self.index[t] for t in self.tokens(text) if t in self.index]
            rows += [i] * len(ids)
            cols += ids
        flat = np.bincount(np.array(rows, dtype=np.int64) * V + np.array(cols, dtype=np.int64),
                           minlength=len(texts) * V)                          # counts of (text, token) pairs
        X = flat.reshape(len(texts), V).astype(np.float32)
        return np.minimum(X, 1.0) if self.binary else X


class LogisticRegression(Module):
    """Softmax regression p(y | x) = softmax(W x + b): one Linear(n_features, n_classes), W = b = 0 at
    the start. Called as every model of scratchlm.train: model(x, targets) -> (logits, mean loss)."""

    def __init__(self, n_features: int, n_classes: int, dtype=np.float32):
        super().__init__()
        for name, value in (("n_features", n_features), ("n_classes", n_classes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"LogisticRegression: {name} must be an integer >= 1, got {value!r}")
        self.linear = Linear(n_features, n_classes, bias=True, dtype=dtype)
        init.zeros_(self.linear.weight)
        init.zeros_(self.linear.bias)

    def forward(self, x, targets=None):
        """x (N, n_features) -> (logits (N, K), mean cross-entropy in nats over targets (N,), or None)."""
        x = np.asarray(getattr(x, "data", x))
        if x.ndim != 2 or x.shape[1] != self.linear.in_features:
            raise ValueError(f"LogisticRegression: x must be (N, {self.linear.in_features}) features, got shape "
                             f"{x.shape}")
        logits = self.linear(x.astype(self.linear.weight.dtype, copy=False))  # (N, K)
        return logits, None if targets is None else F.cross_entropy(logits, targets)

    def predict_proba(self, x) -> np.ndarray:
        """(N, K): p(y = k | x), each row summing to 1."""
        with no_grad():
            return F.softmax(self(x)[0]).data

    def predict(self, x) -> np.ndarray:
        """(N,) int64: the most probable class of each row."""
        with no_grad():
            return self(x)[0].data.argmax(axis=1)


def train_logistic(train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray], *,
                   n_classes: int | None = None, weight_decay: float = 0.1,
                   settings: EpochSettings | None = None, rng: np.random.Generator | None = None,
                   log=None) -> tuple[LogisticRegression, dict]:
    """A LogisticRegression fitted on train = (X (N, D) features, y (N,) class ids) with AdamW and
    early stopping on valid's loss (train_epochs: the model keeps its best epoch's weights).

    n_classes: K, by default one more than the largest label in train and valid. `settings` default:
    up to 100 epochs of batches of 64 at a peak learning rate of 1e-2 (warmup 10 steps, then a
    cosine), patience 10. Returns (model, train_epochs' history); `log` gets its lines (default: silent)."""
    X, y = train
    K = int(max(np.max(y), np.max(valid[1]))) + 1 if n_classes is None else n_classes
    settings = settings or EpochSettings(epochs=100, batch_size=64, learning_rate=1e-2, warmup_steps=10, patience=10)
    model = LogisticRegression(X.shape[1], K)
    optimizer = configure_optimizer(model, settings.learning_rate, weight_decay)
    history = train_epochs(model, optimizer, (X, y), valid, settings, rng=rng, log=log or (lambda line: None))
    return model, history
