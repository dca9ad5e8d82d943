"""Bengio et al.'s neural probabilistic language model (NPLM, JMLR 2003). Chapter 4.

An n-gram model that shares what it learns between words. Each word has a learned feature vector
(a row of C), and the next word is predicted from the vectors of the previous n-1 words:

    x = [C[w_{t-n+1}], ..., C[w_{t-1}]]      (n-1)·m   the context's vectors, concatenated
    a = tanh(d + H x)                          h        the hidden layer
    y = b + W x + U a                          V        one unnormalised log-probability per word
                                                        (W x: the optional direct connections)
    P(w_t = i | w_{t-n+1}, ..., w_{t-1}) = exp(y_i) / sum_j exp(y_j)

Training minimises the mean negative log-likelihood -ln P(w_t | context) over the training tokens
(the fused softmax cross-entropy over the full vocabulary). Because similar words end up with
similar vectors, a context never seen in training still gets a sharp prediction when its words
resemble seen ones -- the generalisation n-gram counts cannot make. The price: the context is a
fixed n-1 words, and the output layer costs O(V h) per token, about 6 V h flops with the backward.

Data (`scratchlm.data.context_windows`): sentences follow Chapter 2's conventions, so perplexities
compare with the n-gram table. Every sentence is `w1 .. wm </s>`; each of those m+1 tokens is
predicted once from its n-1 predecessors in the same sentence, left-padded with `<s>`. `<s>` itself
is never a target (its output unit stays, and training drives its probability towards 0).

Training (`scratchlm.train.train_epochs`): AdamW from `scratchlm.train.configure_optimizer`, one
`train_step` per batch of a shuffled epoch, warmup + cosine learning rate, evaluation on valid
after every epoch, early stopping when valid has not improved for `patience` epochs, and the best
epoch's weights restored at the end. Three departures from the 2003 recipe: dropout on the hidden
layer a (regularisation), AdamW (decoupled weight decay) in place of SGD with L2 decay, and a
warmup + cosine schedule in place of the paper's eps_0 / (1 + r t), the last two for a short
training budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.nn import Dropout, Embedding, Linear, Module



@dataclass
class NPLMConfig:
    vocab_size: int              # V: words the output layer scores (PTB: 10,001 ids with <s>)
    context: int = 4             # n - 1: words of context (a 5-gram model)
    n_embd: int = 128            # m: size of each word's feature vector
    n_hidden: int = 256          # h: tanh units
    direct: bool = False         # W: direct connections from x to the output layer
    dropout: float = 0.0         # on the hidden layer a, in training only
    weight_decay: float = 0.0    # AdamW decay of the matrices C, H, U (and W)


class NPLM(Module):
    def __init__(self, config: NPLMConfig, dtype=np.float32) -> None:
        super().__init__()
        self.config = config
        c = config
        self.C = Embedding(c.vocab_size, c.n_embd, dtype=dtype)            # word feature vectors
        self.H = Linear(c.context * c.n_embd, c.n_hidden, dtype=dtype)     # H and d
        self.U = Linear(c.n_hidden, c.vocab_size, dtype=dtype)             # U and b
        self.W = Linear(c.context * c.n_embd, c.vocab_size, bias=False, dtype=dtype) if c.direct else None
        self.drop = Dropout(c.dropout)

    def forward(self, context, targets=None):
        """context (B, n-1) ids -> logits (B, V), and the mean cross-entropy when targets (B,) are given
        (targets < 0 are ignored, the contract of scratchlm.train)."""
        context, n = np.asarray(context), self.config.context
        if context.ndim != 2 or len(context) == 0 or context.shape[1] != n:
            hint = "; one window w is w[None]" if context.shape == (n,) else ""
            raise ValueError(f"NPLM: context must be (B, n-1) = (B, {n}) ids with B >= 1, "
                             f"got shape {context.shape}{hint}")
        if targets is not None and np.shape(targets) != context.shape[:1]:
            raise ValueError(f"NPLM: targets must be ({context.shape[0]},), one per context row, "
                             f"got shape {np.shape(targets)}")
        # BEGIN SOLUTION 4.2: The NPLM's forward pass (chapters/ch04_neural_lm.py §4.3)
        B = context.shape[0]
        x = self.C(context).reshape(B, -1)              # (B, n-1, m) -> (B, (n-1) m)
        a = self.drop(self.H(x).tanh())                 # (B, h)
        logits = self.U(a)                              # (B, V)
        if self.W is not None:
            logits = logits + self.W(x)
        # END SOLUTION
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-1)
        return logits, loss

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())
