"""A classification head on a decoder's body (Chapter 10): a label read off a pretrained GPT.

A GPT reads a sequence in three steps (Chapter 6, split in Chapter 9): x = body.embed(idx), the
hidden states h = body.hidden_states(x), logits = body.head(h). A classifier keeps the first two,
the body, and reads one vector per sequence. In a decoder position t has seen tokens 0..t only, so
the one position that has seen the whole sequence is the last real token (GPT-1's classifier, and
rasbt's GPT-2 spam classifier; BERT reads a [CLS] token instead, its attention seeing both ways):

    f_b = h[b, L_b - 1]              (C,) the state of sequence b's last real token, L_b its length

Sequences of different lengths are batched right-padded to T: real tokens first, then -1 (X's pad
id; what sits there is never read). The pitfall is h[:, -1], which reads position T - 1: for every
sequence shorter than T that is a padding position, so its features, and the prediction, change
with the padding its batch happened to need. `last_token` reads L_b - 1 (exercise 10.2). Causal
attention never lets a real position see the padding after it (the body is also told key_lengths),
so a message's logits are the same alone or padded to any length (tests/test_classifier.py).

Two heads read f, for K classes:

    score (new)   logits = f W^T + b       a Linear(C, K), W ~ N(0, 0.02) and b = 0, GPT-2's init
    verbalizer    logits = head(f)[ids]    the LM head's logits of K chosen tokens (" ham", " spam"):
                                           no new parameter, so prompt tuning (Lester et al. 2021),
                                           which trains only a soft prompt, can classify

A soft prompt (scratchlm.peft) puts `body.n_prefix` learned vectors before the tokens: real token t
then sits at position n_prefix + t, and the body's key_lengths are lengths + n_prefix. Any body with
GPT's embed / hidden_states(x, key_lengths=...) / head and a GPTConfig-like `config` (n_embd,
vocab_size, block_size: the positions it has, the prefix's included) works.

    SequenceClassifier(body, n_classes, label_ids=None)
        .features(idx, lengths) -> f (B, C)
        (idx, lengths=None, targets=None) -> (logits (B, K), mean cross-entropy in nats, or None)
    sequence_features(body, idx, lengths)  f on a bare body (what the classifier and a probe read)
    last_token(h, lengths)                 h (B, T, C) -> (B, C)
    padded_lengths(X)                      the real tokens of each row of X (B, T), padded with -1
    classification_loss(model, batch)      loss_fn for scratchlm.train on batches (X, y)
    predict(model, X), extract_features(model_or_body, X)   eval mode, no graph, batch by batch

Batches are built with data.pad_sequences(seqs, max_len, pad=-1); it refuses a sequence longer
than max_len, so cut them first, e.g. to their first ids, [s[:max_len] for s in seqs] (keeping the
start, as rasbt does). A linear probe (§10.3) is a models.logistic.LogisticRegression trained on
extract_features(body, X) of the frozen body.
"""

from __future__ import annotations

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor
from scratchlm.nn import Linear, Module, init
from scratchlm.train import _evaluating


def _check_lengths(lengths, B: int, T: int, op: str) -> np.ndarray:
    """lengths as (B,) int64 in [1, T], or a ValueError naming `op` and the bad value."""
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"{op}: lengths must be {B} integers (one per sequence), got shape {lengths.shape} "
                         f"dtype {lengths.dtype}")
    bad = np.flatnonzero((lengths < 1) | (lengths > T))
    if len(bad):
        raise ValueError(f"{op}: lengths[{bad[0]}] = {lengths[bad[0]]} is outside [1, {T}] (T = {T} positions)")
    return lengths.astype(np.int64)


def last_token(h, lengths) -> Tensor:
    """The hidden state of each sequence's last real token: h (B, T, C), lengths (B,) ints in [1, T]
    (sequence b's real tokens are h[b, :lengths[b]], right padding after) -> (B, C), row b being
    h[b, lengths[b] - 1]. The gradient flows back to those positions of h and no other."""
    h = h if isinstance(h, Tensor) else Tensor(h)
    if h.ndim != 3:
        raise ValueError(f"last_token: h must be hidden states (B, T, C), got shape {h.shape}")
    lengths = _check_lengths(lengths, h.shape[0], h.shape[1], "last_token")
    # BEGIN SOLUTION 10.2: Last-real-token pooling under padding (chapters/ch10_finetuning.py §10.3)
    return h[np.arange(h.shape[0]), lengths - 1]                      # (B, C); not h[:, -1]
    # END SOLUTION


def _config(body, op: str):
    config = getattr(body, "config", None)
    if not all(hasattr(config, field) for field in ("n_embd", "vocab_size", "block_size")):
        raise TypeError(f"{op}: the body ({type(body).__name__}) needs a config with n_embd, vocab_size and "
                        f"block_size (a GPT's GPTConfig)")
    return config


def sequence_features(body, idx, lengths=None) -> Tensor:
    """f (B, C): the body's hidden state at each sequence's last real token.

    idx (B, T) ids, lengths (B,) the real tokens of each row (None: all T); positions at or after a
    row's length may hold anything (-1) and are never read. Columns after the longest row are padding
    in every row and are not computed."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[1] == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"sequence_features: idx must be token ids of shape (B, T) with T >= 1, got shape "
                         f"{idx.shape} dtype {idx.dtype}")
    B, T = idx.shape
    lengths = np.full(B, T, np.int64) if lengths is None else _check_lengths(lengths, B, T, "sequence_features")
    config, n_prefix = _config(body, "sequence_features"), getattr(body, "n_prefix", 0)
    T = int(lengths.max())
    if n_prefix + T > config.block_size:
        raise ValueError(f"sequence_features: {T} tokens after a prefix of {n_prefix} is more than the body's "
                         f"block_size {config.block_size}; cut the sequences to at most "
                         f"{config.block_size - n_prefix} ids")
    real = np.arange(T) < lengths[:, None]                             # (B, T)
    idx = np.where(real, idx[:, :T], 0)                                # the padding as id 0: never read
    h = body.hidden_states(body.embed(idx), key_lengths=lengths + n_prefix)  # (B, n_prefix + T, C)
    return last_token(h, lengths + n_prefix)                           # (B, C)


class SequenceClassifier(Module):
    """K-way classification of a sequence from its last real token (module docstring): a new score
    layer, or with `label_ids` (K token ids) the LM head's logits of those tokens (a verbalizer)."""

    def __init__(self, body, n_classes: int, label_ids=None):
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ValueError(f"SequenceClassifier: n_classes must be an integer >= 2, got {n_classes!r}")
        config = _config(body, "SequenceClassifier")
        self.body = body
        self.n_classes = int(n_classes)
        if label_ids is None:
            self.label_ids = None
            self.score = Linear(config.n_embd, self.n_classes, bias=True, dtype=body.parameters()[0].dtype)
            init.normal_(self.score.weight, 0.0, 0.02)
            init.zeros_(self.score.bias)
            return
        ids = np.asarray(label_ids)
        if ids.shape != (self.n_classes,) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"SequenceClassifier: label_ids must be {self.n_classes} token ids (one per class), "
                             f"got {label_ids!r}")
        if ids.min() < 0 or ids.max() >= config.vocab_size:
            bad = ids[(ids < 0) | (ids >= config.vocab_size)][0]
            raise ValueError(f"SequenceClassifier: label id {bad} is outside the vocabulary [0, {config.vocab_size})")
        if len(set(ids.tolist())) < len(ids):
            raise ValueError(f"SequenceClassifier: label_ids {ids.tolist()} repeat a token, so two classes "
                             f"would always get the same logit")
        self.label_ids = ids.astype(np.int64)
        self.score = None

    def features(self, idx, lengths=None) -> Tensor:
        """f (B, C), the body's state at each sequence's last real token (sequence_features)."""
        return sequence_features(self.body, idx, lengths)

    def forward(self, idx, lengths=None, targets=None):
        """idx (B, T) ids, lengths (B,) real tokens per row (None: all T) -> (logits (B, K), the mean
        cross-entropy in nats over targets (B,) class ids, or None without targets)."""
        f = self.features(idx, lengths)                                # (B, C)
        if self.score is not None:
            logits = self.score(f)                                     # (B, K)
        else:
            logits = self.body.head(f)[:, self.label_ids]              # (B, V) -> (B, K)
        if targets is None:
            return logits, None
        targets = np.asarray(targets)
        if targets.shape != (len(f),):
            raise ValueError(f"SequenceClassifier: targets must be {len(f)} class ids, got shape {targets.shape}")
        return logits, F.cross_entropy(logits, targets)

    def extra_repr(self) -> str:
        verbalizer = "" if self.label_ids is None else f", label_ids={self.label_ids.tolist()}"
        return f"n_classes={self.n_classes}{verbalizer}"


def padded_lengths(X) -> np.ndarray:
    """(B,) int64: the real tokens of each row of X (B, T), ids >= 0 first and -1 after them (right
    padding, data.pad_sequences(..., pad=-1)). A row of padding only, or an id after a pad, is an error."""
    X = np.asarray(X)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.integer):
        raise ValueError(f"padded_lengths: X must be (B, T) integer ids padded with -1, got shape {X.shape} "
                         f"dtype {X.dtype}")
    if X.size and X.min() < -1:
        b, t = np.argwhere(X < -1)[0]
        raise ValueError(f"padded_lengths: X[{b}, {t}] = {X[b, t]}; ids are >= 0, and -1 pads")
    real = X >= 0
    lengths = np.where(real.all(axis=1), X.shape[1], np.argmin(real, axis=1))   # up to the first pad
    misplaced = real & (np.arange(X.shape[1]) >= lengths[:, None])
    if misplaced.any():
        b, t = np.argwhere(misplaced)[0]
        raise ValueError(f"padded_lengths: row {b} has id {X[b, t]} at position {t} after its padding; pad on "
                         f"the right only (real ids first, then -1)")
    if X.shape[1] == 0 or not lengths.all():
        b = int(np.argmin(lengths)) if X.shape[1] else 0
        raise ValueError(f"padded_lengths: row {b} holds no token (padding only)")
    return lengths.astype(np.int64)


def classification_loss(model: SequenceClassifier, batch) -> tuple[Tensor, int]:
    """loss_fn for scratchlm.train (train_step, train_epochs, evaluate): batch = (X, y), X (B, T) ids
    right-padded with -1, y (B,) class ids -> (mean cross-entropy over the B sequences, B)."""
    X, y = batch
    _, loss = model(X, padded_lengths(X), y)
    return loss, len(y)


def _batches_by_length(X, batch_size: int):
    """(rows, X[rows], lengths) in batches of sequences of similar length: less padding to compute."""
    lengths = padded_lengths(X)
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        yield rows, X[rows], lengths[rows]


def predict(model: SequenceClassifier, X, batch_size: int = 256) -> np.ndarray:
    """(N,) int64: the most probable class of each row of X (N, T), right-padded with -1."""
    X = np.asarray(X)
    out = np.empty(len(X), dtype=np.int64)
    with _evaluating(model):
        for rows, x, lengths in _batches_by_length(X, batch_size):
            out[rows] = model(x, lengths)[0].data.argmax(axis=1)
    return out


def extract_features(model_or_body, X, batch_size: int = 256) -> np.ndarray:
    """(N, C): the body's state at each sequence's last real token, for a linear probe on frozen
    features. model_or_body: a SequenceClassifier (its body is read) or a bare body; X (N, T) ids
    right-padded with -1."""
    body = model_or_body.body if isinstance(model_or_body, SequenceClassifier) else model_or_body
    X = np.asarray(X)
    out = np.empty((len(X), _config(body, "extract_features").n_embd), dtype=body.parameters()[0].dtype)
    with _evaluating(body):
        for rows, x, lengths in _batches_by_length(X, batch_size):
            out[rows] = sequence_features(body, x, lengths).data
    return out
