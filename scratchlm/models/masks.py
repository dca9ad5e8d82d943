"""Which keys each query of an attention may see: the masks of the three Transformer architectures
as one rule (Chapter 9, §9.1).

Every attention of the library lets query i see a prefix of the keys, j < hi_i (attention.py runs it
inside the fused softmax kernel of attention_kernels.py):

    mask            used by                                     hi_i
    causal          a decoder's self-attention (GPT, T5's       min(L, i + Tk - Tq + 1)
                    decoder)
    bidirectional   an encoder's self-attention (BERT, T5's     L
                    encoder)
    cross           a decoder's queries over the encoder's      L
                    output (T5), Tq != Tk

Tq queries meet Tk keys; L is the number of real keys of the sequence (its `key_length`: a padded
batch puts each sequence's real tokens first and the padding after), Tk without padding. Causal
queries are the last Tq of the Tk positions: with a KV cache (Chapter 7) the earlier keys are
cached, so query i sits at position i + Tk - Tq and sees every key up to and including its own. A
query that sees no key (L = 0) has hi = 0; the attention gives it weights 0 and output 0.

    visible_keys(Tq, Tk, causal, key_lengths)   hi, (Tq,) or (B, Tq)       exercise 9.1
    visible_mask(Tq, Tk, causal, key_lengths)   the boolean masks, (Tq, Tk) or (B, Tq, Tk)
"""

from __future__ import annotations

import numpy as np


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"visible_keys: {name} must be an integer >= 0, got {value!r}")
    return int(value)


def visible_keys(n_queries: int, n_keys: int, causal: bool, key_lengths=None) -> np.ndarray:
    """hi: how many keys (a prefix, keys 0 .. hi - 1) each query may see, int64.

    n_queries Tq, n_keys Tk; causal: a decoder's mask (queries are the last Tq of the Tk positions);
    key_lengths: the real keys of each sequence, an int or (B,) ints in [0, Tk], None for Tk (no
    padding). Returns shape (Tq,) for key_lengths None or an int, (B, Tq) for (B,) key_lengths.

        visible_keys(3, 3, causal=True)                       [1, 2, 3]
        visible_keys(2, 4, causal=True)                       [3, 4]     (two new queries, two cached keys)
        visible_keys(3, 3, causal=False, key_lengths=[3, 2])  [[3, 3, 3], [2, 2, 2]]
    """
    Tq, Tk = _check_count(n_queries, "n_queries"), _check_count(n_keys, "n_keys")
    if key_lengths is not None:
        lengths = np.asarray(key_lengths)
        if lengths.ndim > 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"visible_keys: key_lengths must be an int or (B,) ints, got {lengths.dtype} "
                             f"of shape {lengths.shape}")
        if ((lengths < 0) | (lengths > Tk)).any():
            raise ValueError(f"visible_keys: key_lengths {lengths.tolist()} must be in [0, n_keys={Tk}]")
        key_lengths = lengths.astype(np.int64)
    # BEGIN SOLUTION 9.1: The keys a query may see (chapters/ch09_pretrained_transformers.py §9.1)
    L = np.int64(Tk) if key_lengths is None else key_lengths               # () or (B,)
    hi = np.broadcast_to(np.asarray(L)[..., None], np.shape(L) + (Tq,))     # (Tq,) or (B, Tq)
    if causal:
        hi = np.minimum(hi, np.arange(Tq) + Tk - Tq + 1)                    # up to its own position
    return np.maximum(hi, 0).astype(np.int64)
    # END SOLUTION


def visible_mask(n_queries: int, n_keys: int, causal: bool, key_lengths=None) -> np.ndarray:
    """The boolean mask, True where query i may see key j (j < visible_keys(...)[..., i]):
    (Tq, Tk), or (B, Tq, Tk) for (B,) key_lengths."""
    hi = visible_keys(n_queries, n_keys, causal, key_lengths)
    return np.arange(_check_count(n_keys, "n_keys")) < hi[..., None]
