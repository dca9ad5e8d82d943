r"""Pretraining objectives as data transforms (Chapter 9): what BERT and T5 learn to predict.

A decoder (GPT) needs no transform: its targets are its inputs shifted by one. An encoder sees the
whole sequence, so something must be hidden from it; an encoder-decoder reads one sequence and
writes another. These functions turn plain token ids into (inputs, targets) for both. Targets that
are not predicted are IGNORE (-1): cross_entropy(..., ignore_index=IGNORE) skips them.

BERT's masked language modelling (Devlin et al. 2019, §3.1 and appendix A.1), `bert_mask`:

    choose each token that is not special (not <pad>, <cls>, <sep>, ...) with probability p = 0.15;
    a chosen token's input becomes   <mask>            with probability 0.8,
                                     a random token    with probability 0.1  (uniform over the
                                                       ordinary vocabulary; it may be the token itself),
                                     itself            with probability 0.1;
    its target is the original token; every other target is IGNORE.

The random and unchanged 10%s keep the model from learning that only <mask> positions matter:
every input token might be wrong, so every output must model its word. Tokens are chosen
independently (as in Hugging Face's DataCollatorForLanguageModeling; BERT's own script chose
round(0.15 n) per sequence), so the number of targets in a row is Binomial(n_eligible, p).

T5's span corruption (Raffel et al. 2020, §3.1.4), `span_corrupt`: about a fraction d = 0.15 of
the tokens (the noise density) is dropped in spans of mean length mu = 3; each span is replaced in
the input by one sentinel, and the target lists each sentinel followed by the span it hides:

    tokens    Thank you for inviting me to your party last week .
    inputs    Thank you <X> me to your party <Y> week .                      (+ </s> if eos_id)
    targets   <X> for inviting <Y> last <Z>                                  (+ </s> if eos_id)

with sentinels <X> <Y> <Z> = <extra_id_0> <extra_id_1> <extra_id_2> in order. The targets end with
one more sentinel than there are spans, as in the paper's Figure 2 (it marks where the last span
ends), then eos like all of T5's sequences.

How a row of n tokens is corrupted (`span_noise_mask`):

    N = number of noise tokens = stochastic_round(n d), kept in [1, n - 1]
    K = number of spans        = stochastic_round(N / mu), kept in [1, min(N, n - N + 1)]
    the N noise tokens are cut into K spans of >= 1 token at K - 1 cut points drawn uniformly
    without replacement from the N - 1 gaps between them (a uniform composition of N into K parts);
    the K spans go into K of the n - N + 1 gaps around the n - N kept tokens, drawn uniformly
    without replacement (one span per gap, so spans never touch).

stochastic_round(x) is floor(x) + Bernoulli(x - floor(x)), so E[N] = n d exactly whenever the
clip does not bind (7 <= n for d = 0.15). Given (N, K), every noise mask with N noise tokens in K
spans is equally likely: a span can start at any position, and the sequence can begin or end with
kept tokens or with noise (the first and last tokens are noise less often than the middle ones, as
they are covered by spans starting at one place only; at n = 10, with probability 0.106 each). T5's own `random_spans_noise_mask` (and the copies of it, such as
Hugging Face's run_t5_mlm_flax.py) rounds N and K to the nearest integer and lays out
kept, noise, kept, noise, ..., noise, so the last token is always noise and the first never is; at
n = 10 it makes N = 2 (density 0.2), K = 1, and the mask is always the last two tokens.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from scratchlm.data import pad_sequences
from scratchlm.rng import get_rng

IGNORE = -1   # the target of a position that is not predicted


# ---------------------------------------------------------------------------------------------
# BERT: masked language modelling
# ---------------------------------------------------------------------------------------------

def bert_mask(ids, mask_id: int, vocab_size: int, special_ids=(), mask_prob: float = 0.15,
              mask_frac: float = 0.8, random_frac: float = 0.1,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of ids (any shape, e.g. (B, T)) -> (inputs, targets), both int64 of that shape.

    special_ids: ids that are never chosen and never drawn as random tokens (pass the tokenizer's
    `special_ids()`: <pad>, <cls>, <sep>, <mask>, ...). A chosen token's input is mask_id with
    probability mask_frac, a uniform random token of [0, vocab_size) minus the specials with
    probability random_frac, else unchanged; targets = the original id where chosen, IGNORE elsewhere.
    """
    _check_prob("mask_prob", mask_prob)
    for name, value in (("mask_frac", mask_frac), ("random_frac", random_frac)):
        if not (_is_number(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"bert_mask: {name} must be in [0, 1], got {value!r}")
    if mask_frac + random_frac > 1.0:
        raise ValueError(f"bert_mask: mask_frac + random_frac = {mask_frac + random_frac} is more than 1 "
                         "(the rest of the chosen tokens stay unchanged)")
    ids = _int_array(ids, "ids")
    _check_id_range(ids, vocab_size, "ids")
    special_ids = _int_array(special_ids, "special_ids").ravel()
    _check_id_range(np.array([mask_id]), vocab_size, "mask_id")
    ordinary = np.setdiff1d(np.arange(vocab_size), special_ids)       # what a random token can be
    if len(ordinary) == 0:
        raise ValueError(f"bert_mask: every id of [0, {vocab_size}) is special: no token can be chosen")
    rng = get_rng(rng)

    # BERT's 15% / 80-10-10, one uniform number per token for each decision
    # BEGIN SOLUTION 9.2: BERT's 80-10-10 masking (chapters/ch09_pretrained_transformers.py §9.2)
    chosen = ~np.isin(ids, special_ids) & (rng.random(ids.shape) < mask_prob)
    action = rng.random(ids.shape)
    to_mask = chosen & (action < mask_frac)
    to_random = chosen & (action >= mask_frac) & (action < mask_frac + random_frac)
    inputs = np.where(to_mask, mask_id, ids)
    inputs[to_random] = ordinary[rng.integers(0, len(ordinary), size=int(to_random.sum()))]
    targets = np.where(chosen, ids, IGNORE)
    # END SOLUTION
    return inputs, targets


# ---------------------------------------------------------------------------------------------
# T5: span corruption
# ---------------------------------------------------------------------------------------------

class Seq2SeqBatch(NamedTuple):
    """A padded batch for an encoder-decoder, teacher-forced:

        src          (B, S) source ids, padded with pad_id after src_lengths[b]
        src_lengths  (B,)   how many ids of each source row are real (the encoder's key padding)
        dec_in       (B, T) the decoder's input: start_id, then the target ids but the last; pad_id after
        targets      (B, T) the ids to predict at each decoder position; IGNORE after the row's end

    dec_in[:, t + 1] = targets[:, t]: the decoder reads the targets shifted right by one.
    """
    src: np.ndarray
    src_lengths: np.ndarray
    dec_in: np.ndarray
    targets: np.ndarray


def seq2seq_batch(sources, targets, pad_id: int, start_id: int, eos_id: int | None = None) -> Seq2SeqBatch:
    """A Seq2SeqBatch from lists of id sequences (eos_id, if given, ends every source and target)."""
    if len(sources) != len(targets):
        raise ValueError(f"seq2seq_batch: {len(sources)} sources but {len(targets)} targets")
    src, src_len = _padded(sources, pad_id)
    tgt, tgt_len = _padded(targets, IGNORE)
    return _teacher_forced(src, src_len, tgt, tgt_len, pad_id, start_id, eos_id)


def _padded(seqs, pad: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    return pad_sequences(seqs, pad=pad), lengths


def _teacher_forced(src, src_len, tgt, tgt_len, pad_id, start_id, eos_id) -> Seq2SeqBatch:
    """The batch from padded sources and targets (targets padded with IGNORE), eos appended if given."""
    if eos_id is not None:
        src, src_len = _append(src, src_len, eos_id, pad_id), src_len + 1
        tgt, tgt_len = _append(tgt, tgt_len, eos_id, IGNORE), tgt_len + 1
    dec_in = np.concatenate([np.full((len(tgt), 1), start_id, np.int64), tgt[:, :-1]], axis=1)
    dec_in[np.arange(tgt.shape[1]) >= tgt_len[:, None]] = pad_id   # (B, T): the IGNOREs shifted in
    return Seq2SeqBatch(src, src_len, dec_in, tgt)


def _append(padded: np.ndarray, lengths: np.ndarray, value: int, pad: int) -> np.ndarray:
    """Each row of a padded (B, L) array with `value` written after its last real id: (B, L + 1)."""
    out = np.concatenate([padded, np.full((len(padded), 1), pad, np.int64)], axis=1)
    out[np.arange(len(out)), lengths] = value
    return out


def stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """floor(x) + Bernoulli(x - floor(x)) elementwise, as int64: an integer whose mean is exactly x."""
    low = np.floor(x)
    return (low + (rng.random(np.shape(x)) < x - low)).astype(np.int64)


def _random_subset(n_items: np.ndarray, n_pick: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row b, n_pick[b] distinct items of range(n_items[b]) drawn uniformly, sorted, in a
    (B, max n_pick) array whose unused entries are n_items[b] (so they sort last)."""
    width = int(n_pick.max(initial=0))
    keys = rng.random((len(n_items), int(n_items.max(initial=0))))
    keys[np.arange(keys.shape[1]) >= n_items[:, None]] = 2.0          # never picked: keys are < 1
    picked = np.argsort(keys, axis=1, kind="stable")[:, :width]       # the n_pick smallest keys
    picked = np.where(np.arange(width) < n_pick[:, None], picked, n_items[:, None])
    return np.sort(picked, axis=1)


def span_noise_mask(lengths, noise_density: float = 0.15, mean_span_length: float = 3.0,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """(B, max length) bool: which tokens of each row are noise, drawn as in the module docstring;
    positions at or after a row's length are False. lengths: (B,) ints >= 2."""
    _check_prob("noise_density", noise_density)
    if not (_is_number(mean_span_length) and math.isfinite(mean_span_length) and mean_span_length >= 1):
        raise ValueError(f"span corruption: mean_span_length must be a finite number >= 1 (tokens), "
                         f"got {mean_span_length!r}")
    n = _int_array(lengths, "lengths").ravel()
    if (n < 2).any():
        b = int(np.argmax(n < 2))
        raise ValueError(f"span corruption: row {b} has {n[b]} tokens; a row needs at least 2 (one to hide, "
                         "one to keep)")
    rng = get_rng(rng)
    # how many noise tokens and spans in each row, then where (the rule of the module docstring)
    # BEGIN SOLUTION 9.3: Where T5's noise spans go (chapters/ch09_pretrained_transformers.py §9.2)
    n_noise = np.clip(stochastic_round(n * noise_density, rng), 1, n - 1)                      # N
    n_kept = n - n_noise
    n_spans = np.clip(stochastic_round(n_noise / mean_span_length, rng), 1,
                      np.minimum(n_noise, n_kept + 1))                                          # K
    # span lengths: K - 1 distinct cuts in the N - 1 gaps between noise tokens
    cuts = _random_subset(n_noise - 1, n_spans - 1, rng) + 1                                    # (B, K-1)
    bounds = np.concatenate([np.zeros((len(n), 1), np.int64), np.minimum(cuts, n_noise[:, None]),
                             n_noise[:, None]], axis=1)
    span_len = np.diff(bounds, axis=1)                                                          # (B, Kmax)
    # span places: K distinct gaps of the n - N + 1 around the kept tokens; gap g = after g kept tokens
    gaps = _random_subset(n_kept + 1, n_spans, rng)                                             # (B, Kmax)
    valid = np.arange(span_len.shape[1]) < n_spans[:, None]
    starts = gaps + np.cumsum(span_len, axis=1) - span_len     # kept tokens + noise tokens before it
    # +1 at each start, -1 at each end; all 2K positions of a row differ (spans never touch)
    rows = np.broadcast_to(np.arange(len(n))[:, None], starts.shape)[valid]
    edges = np.zeros((len(n), int(n.max()) + 1), np.int64)
    edges[rows, starts[valid]] = 1
    edges[rows, (starts + span_len)[valid]] = -1
    return np.cumsum(edges, axis=1)[:, :-1] > 0
    # END SOLUTION


def span_corrupt(ids, sentinel_ids, lengths=None, noise_density: float = 0.15, mean_span_length: float = 3.0,
                 eos_id: int | None = None, pad_id: int = 0, start_id: int | None = None,
                 rng: np.random.Generator | None = None, noise=None) -> Seq2SeqBatch:
    """T5's span corruption of ids (B, L) -> Seq2SeqBatch (src = corrupted inputs, targets = sentinels
    and spans, dec_in = targets shifted right after start_id; default start_id = pad_id, as in T5).

    lengths: (B,) real tokens per row (default: all L); sentinel_ids: the ids of <extra_id_0>,
    <extra_id_1>, ... (tok.sentinel_ids()); a row with K spans uses the first K + 1. eos_id, if given,
    ends each source and target. The noise mask is drawn by span_noise_mask (module docstring), or
    given as `noise`, (B, L) bool (for worked examples).
    """
    ids = _int_array(ids, "ids")
    if ids.ndim != 2:
        raise ValueError(f"span_corrupt: ids must be (B, L), got shape {ids.shape}")
    B, L = ids.shape
    lengths = np.full(B, L, np.int64) if lengths is None else _int_array(lengths, "lengths").ravel()
    if lengths.shape != (B,) or (lengths > L).any():
        raise ValueError(f"span_corrupt: lengths must be ({B},) values <= L = {L}, got {lengths.tolist()}")
    sentinel_ids = _int_array(sentinel_ids, "sentinel_ids").ravel()
    if len(np.unique(sentinel_ids)) != len(sentinel_ids):
        raise ValueError(f"span_corrupt: sentinel_ids must be distinct, got {sentinel_ids.tolist()}")
    inside = np.arange(L) < lengths[:, None]
    if noise is None:
        noise = np.zeros((B, L), bool)
        noise[:, :int(lengths.max(initial=0))] = span_noise_mask(lengths, noise_density, mean_span_length, rng)
    else:
        noise = np.asarray(noise)
        if noise.shape != (B, L) or noise.dtype != bool:
            raise ValueError(f"span_corrupt: noise must be a bool mask of the shape of ids {(B, L)}, got "
                             f"{noise.dtype} {noise.shape}")
        noise = noise & inside
    first = noise & ~np.concatenate([np.zeros((B, 1), bool), noise[:, :-1]], axis=1)   # (B, L) span starts
    n_spans = first.sum(axis=1)
    if (n_spans + 1 > len(sentinel_ids)).any():
        b = int(np.argmax(n_spans + 1 > len(sentinel_ids)))
        raise ValueError(f"span_corrupt: row {b} has {n_spans[b]} spans and needs {n_spans[b] + 1} sentinels "
                         f"(one per span and a final one), but {len(sentinel_ids)} sentinel_ids were given; "
                         f"add more with tok.with_specials(sentinels({n_spans[b] + 1}))")
    # From the noise mask and its span starts `first` (B, L): src (B, S) padded with pad_id, src_len (B,),
    # tgt (B, T) padded with IGNORE, tgt_len (B,) (the module docstring's example shows the layout).
    # BEGIN SOLUTION 9.4: T5's corrupted inputs and targets (chapters/ch09_pretrained_transformers.py §9.2)
    span = np.cumsum(first, axis=1) - 1                        # (B, L) which span a noise token is in

    # inputs: the kept tokens, and each span's first token turned into its sentinel
    keep = inside & (~noise | first)
    src_len = keep.sum(axis=1)
    src = np.full((B, int(src_len.max(initial=0))), pad_id, np.int64)
    src[np.nonzero(keep)[0], (np.cumsum(keep, axis=1) - 1)[keep]] = np.where(first, sentinel_ids[span], ids)[keep]

    # targets: before each span its sentinel, then the span's tokens; a final sentinel after the last span
    tgt_len = noise.sum(axis=1) + n_spans + 1
    tgt = np.full((B, int(tgt_len.max(initial=0))), IGNORE, np.int64)
    at = np.cumsum(noise, axis=1) - 1 + np.cumsum(first, axis=1)   # (B, L) target position of a noise token
    rows = np.nonzero(noise)[0]
    tgt[rows, at[noise]] = ids[noise]
    tgt[np.nonzero(first)[0], at[first] - 1] = sentinel_ids[span[first]]
    tgt[np.arange(B), tgt_len - 1] = sentinel_ids[n_spans]
    # END SOLUTION
    return _teacher_forced(src, src_len, tgt, tgt_len, pad_id, pad_id if start_id is None else start_id, eos_id)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_prob(name: str, p) -> None:
    if not (_is_number(p) and 0.0 < p < 1.0):
        raise ValueError(f"{name} must be a probability in (0, 1), got {p!r}")


def _int_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be integer ids, got an array of dtype {a.dtype}")
    return a.astype(np.int64)


def _check_id_range(ids: np.ndarray, vocab_size: int, name: str) -> None:
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), ids.shape)
        raise ValueError(f"{name}: id {ids[where]} at {tuple(int(i) for i in where)} is outside the "
                         f"vocabulary [0, {vocab_size})")
