"""Decoding: turning a language model's next-token distributions into text (Chapter 7).

Any model with `next_logits(idx) -> (B, V)` logits of the token after each row of idx (B, T) and a
`block_size` (its longest context) can be decoded. A model that also has `new_cache(batch_size)`
and `next_logits(new_ids, cache=cache)` (the GPT's KV cache) is run one new position per token:
the keys and values of earlier positions are kept, so step t costs O(t) attention instead of a full
forward pass over t tokens. Once the context fills block_size the cache is dropped and every step
runs on the last block_size tokens, as without a cache, so both paths give the same logits. A model
whose cache also holds `n_prefix` positions before the ids (Chapter 10's soft prompt) says so in that
attribute: its cache is full at n_prefix + block_size.

Strategies, from the logits z of the next token:

    greedy       argmax_v z_v
    temperature  sample from softmax(z / T); T < 1 sharpens, T > 1 flattens
    top-k        keep the k largest probabilities, renormalise, sample
    top-p        keep the smallest set of most likely tokens whose probability reaches p (nucleus
                 sampling, Holtzman et al. 2020), renormalise, sample
    beam search  keep the `beam_width` prefixes of highest total log-probability, extending each by
                 every token and keeping the best beam_width of all extensions, step by step

Sampling draws one uniform number per row from the seeded generator (`scratchlm.rng`) and inverts
the cumulative distribution, so the same seed gives the same text.

End of sequence (Chapter 9). With eos_id, a row is finished once it emits eos_id: generate fills
the rest of a finished row with eos_id (so a row's text is its ids before the first eos_id,
`until_eos`) and stops as soon as every row has finished; beam search sets a hypothesis that emits
eos_id aside as finished, eos_id included. The random numbers drawn do not depend on eos_id, so a
row's ids up to its first eos_id are the same as without it. eos_id=None decodes as Chapter 7.

Encoder-decoders (Chapter 9). All decoding goes through a Context, which holds the ids so far and
the logits that follow them, and runs the model in one method, `model_logits`. Given a `source`,
the decoders use an EncoderDecoderContext instead: it encodes the source once,
`memory = model.encode(source, source_lengths)`, and then asks `model.next_logits(idx, memory,
cache=...)`, reordering the memory with the beams. Such a model provides

    encode(source (B, S) ids, source_lengths (B,) or None) -> memory   (run once per source: the
        encoder's output, or each layer's cross-attention keys and values, with the lengths)
    next_logits(idx, memory, cache=None) -> (B, V)                     (decoder; cache as GPT's)
    new_cache(batch_size), block_size                                  (as a decoder-only model)

where memory is an array or a tuple of arrays whose first axis is the batch, or an object with
reorder(rows) like the KV cache.
"""

from __future__ import annotations

import math

import numpy as np

from scratchlm.rng import get_rng


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Stable log-softmax over the last axis (float64 for scoring)."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, greedy: bool = False) -> None:
    """Refuse settings that would sample garbage (a NaN temperature compares false with everything, so
    a plain `<= 0` test lets it through). temperature 0 means greedy where `greedy` allows it."""
    wanted = ">= 0 (0 is greedy)" if greedy else "> 0 (greedy decoding is generate's temperature=0)"
    number = isinstance(temperature, (int, float, np.number)) and math.isfinite(temperature)
    if not (number and (temperature >= 0 if greedy else temperature > 0)):
        raise ValueError(f"temperature must be a finite number {wanted}, got {temperature!r}")
    if top_k is not None and not (_is_int(top_k) and top_k >= 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for no cut), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float, np.number)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (or None for no cut), got {top_p!r}")


def check_eos(eos_id) -> None:
    """Refuse an eos_id that no token can equal (a float, a string, a negative number)."""
    if eos_id is not None and not (_is_int(eos_id) and eos_id >= 0):
        raise ValueError(f"eos_id must be a token id (an integer >= 0) or None, got {eos_id!r}")


def check_length(max_new_tokens: int) -> None:
    """Refuse a negative or non-integer number of tokens to generate (range() would run it zero times)."""
    if not (_is_int(max_new_tokens) and max_new_tokens >= 0):
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")


def next_token_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> np.ndarray:
    """(B, V) logits -> (B, V) probabilities after temperature, top-k and top-p truncation."""
    check_sampling(temperature, top_k, top_p)
    probs = np.exp(log_softmax(logits / temperature))
    if top_k is not None:
        kth = np.sort(probs, axis=-1)[:, -min(top_k, probs.shape[-1])]  # k-th largest of each row
        probs = np.where(probs >= kth[:, None], probs, 0.0)             # (ties at the k-th all stay)
    if top_p is not None:
        # BEGIN SOLUTION 7.1: Top-p (nucleus) truncation (chapters/ch07_decoding.py §7.4)
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the more likely tokens
        keep_sorted = mass_before < top_p * sorted_probs.sum(axis=-1, keepdims=True)
        keep = np.empty_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0.0)
        # END SOLUTION
    return probs / probs.sum(axis=-1, keepdims=True)


def sample_from(probs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """One id per row of (B, V) probabilities, by inverting the cumulative distribution."""
    u = get_rng(rng).random(len(probs))[:, None]                  # (B, 1)
    cdf = np.cumsum(probs, axis=-1)
    return (cdf <= u * cdf[:, -1:]).sum(axis=-1)                  # first v with cdf_v > u


def _as_prompt(prompt) -> np.ndarray:
    ids = np.asarray(prompt, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"prompt must be (B, T) ids with T >= 1, got shape {ids.shape}")
    return ids


class Context:
    """The sequences decoded so far (B, T) and the model's logits (B, V) for the token after them."""

    def __init__(self, model, prompt: np.ndarray, use_cache: bool = True):
        self.model, self.ids = model, _as_prompt(prompt)
        window = self.ids[:, -model.block_size:]
        self.cache = model.new_cache(len(self.ids)) if use_cache and hasattr(model, "new_cache") else None
        self.logits = self.model_logits(window, self.cache)

    def model_logits(self, idx: np.ndarray, cache) -> np.ndarray:
        """The model's (B, V) logits after idx (only the new ids when there is a cache). The one place
        the model runs: a subclass that feeds the model more (an encoder's memory) overrides it."""
        return self.model.next_logits(idx) if cache is None else self.model.next_logits(idx, cache=cache)

    def append(self, next_ids: np.ndarray) -> None:
        """Extend every row by one id and compute the logits that follow."""
        self.ids = np.concatenate([self.ids, np.asarray(next_ids, dtype=np.int64)[:, None]], axis=1)
        full = getattr(self.model, "n_prefix", 0) + self.model.block_size   # positions the cache can hold
        if self.cache is not None and self.cache.length == full:
            self.cache = None  # the window now slides: positions shift, so cached keys are stale
        if self.cache is not None:
            self.logits = self.model_logits(self.ids[:, -1:], self.cache)
        else:
            self.logits = self.model_logits(self.ids[:, -self.model.block_size:], None)

    def reorder(self, rows: np.ndarray) -> None:
        """Keep rows `rows` of the batch, in that order (beam search follows its surviving beams)."""
        self.ids, self.logits = self.ids[rows], self.logits[rows]
        if self.cache is not None:
            self.cache.reorder(rows)


class EncoderDecoderContext(Context):
    """A Context for an encoder-decoder: the source is encoded once, and every decoder step attends
    to that memory (module docstring: the model's encode and next_logits)."""

    def __init__(self, model, prompt: np.ndarray, source, source_lengths=None, use_cache: bool = True):
        source = np.asarray(source, dtype=np.int64)
        n_rows = len(_as_prompt(prompt))             # checked before the encoder runs
        if source.ndim != 2 or source.shape[0] != n_rows:
            raise ValueError(f"source must be (B, S) ids with one row per prompt row (B = {n_rows}), "
                             f"got shape {source.shape}")
        if source_lengths is not None:
            source_lengths = np.asarray(source_lengths, dtype=np.int64)
            if source_lengths.shape != (n_rows,):
                raise ValueError(f"source_lengths must have shape ({n_rows},), got {source_lengths.shape}")
        self.memory = model.encode(source, source_lengths)
        super().__init__(model, prompt, use_cache)

    def model_logits(self, idx: np.ndarray, cache) -> np.ndarray:
        return self.model.next_logits(idx, self.memory, cache=cache)

    def reorder(self, rows: np.ndarray) -> None:
        super().reorder(rows)
        if hasattr(self.memory, "reorder"):
            self.memory.reorder(rows)
        elif isinstance(self.memory, tuple):
            self.memory = tuple(m[rows] for m in self.memory)
        else:
            self.memory = self.memory[rows]


def start_context(model, prompt, use_cache: bool = True, source=None, source_lengths=None) -> Context:
    """The decoding state of prompt (B, T): an EncoderDecoderContext when there is a source, else a Context."""
    if source is None:
        if source_lengths is not None:
            raise ValueError("source_lengths was given without a source")
        return Context(model, prompt, use_cache)
    return EncoderDecoderContext(model, prompt, source, source_lengths, use_cache)


def until_eos(ids, eos_id: int | None):
    """The ids before the first eos_id: of a row (T,), or of each row of (B, T) as a list of arrays."""
    ids = np.asarray(ids)
    if ids.ndim == 2:
        return [until_eos(row, eos_id) for row in ids]
    hits = np.flatnonzero(ids == eos_id) if eos_id is not None else ()
    return ids[:hits[0]] if len(hits) else ids


def generate(model, prompt, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, rng: np.random.Generator | None = None,
             use_cache: bool = True, eos_id: int | None = None, source=None,
             source_lengths=None) -> np.ndarray:
    """Extend each row of prompt (B, T) by max_new_tokens ids: greedy when temperature == 0, else
    sampled with temperature / top-k / top-p. Returns (B, T + max_new_tokens) ids; with eos_id, a
    row is filled with eos_id after its first one and decoding stops early, returning (B, T + n) ids
    with n <= max_new_tokens, once every row has emitted it. An encoder-decoder is given its source
    (B, S) (and source_lengths (B,) when padded); prompt is then the decoder's start, e.g. (B, 1)."""
    check_length(max_new_tokens)
    check_sampling(temperature, top_k, top_p, greedy=True)  # before the model runs on the prompt
    check_eos(eos_id)
    ctx = start_context(model, prompt, use_cache, source, source_lengths)
    finished = np.zeros(len(ctx.ids), dtype=bool)
    for _ in range(max_new_tokens):
        if temperature == 0:
            next_ids = ctx.logits.argmax(axis=-1)
        else:
            next_ids = sample_from(next_token_probs(ctx.logits, temperature, top_k, top_p), rng)
        if eos_id is not None:
            next_ids = np.where(finished, eos_id, next_ids)   # a finished row only repeats eos
            finished |= next_ids == eos_id
        ctx.append(next_ids)
        if eos_id is not None and finished.all():
            break
    return ctx.ids


def beam_search(model, prompt, max_new_tokens: int, beam_width: int = 4, eos_id: int | None = None,
                length_penalty: float = 0.0, use_cache: bool = True, source=None,
                source_length: int | None = None) -> list[tuple[np.ndarray, float]]:
    """The beam_width best continuations of prompt (T,) found by beam search, best first, as
    (ids including the prompt, total log-probability of the new ids).

    A beam that emits eos_id is finished (its ids end with eos_id); hypotheses are ranked by
    log p / n_new ** length_penalty (0: raw log-probability, which favours short endings; 1: per-token
    average). An encoder-decoder is given its source (S,) (and source_length if it is padded)."""
    check_length(max_new_tokens)
    check_eos(eos_id)
    if not (_is_int(beam_width) and beam_width >= 1):
        raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    prompt = np.asarray(prompt)
    if prompt.ndim != 1:
        raise ValueError(f"beam_search decodes one prompt: ids of shape (T,), got shape {prompt.shape}")
    if source is not None:
        source = np.asarray(source)
        if source.ndim != 1:
            raise ValueError(f"beam_search decodes one source: ids of shape (S,), got shape {source.shape}")
        source = source[None, :]
    ctx = start_context(model, prompt[None, :], use_cache, source,
                        None if source_length is None else [source_length])
    prompt_len = ctx.ids.shape[1]
    scores = np.zeros(1)                          # total log-probability of each live beam
    finished: list[tuple[np.ndarray, float]] = []

    def rank(score: float, n_new: int) -> float:
        return score / max(n_new, 1) ** length_penalty

    for step in range(max_new_tokens):
        candidates = (scores[:, None] + log_softmax(ctx.logits)).ravel()   # (beams * V,)
        best = np.argsort(-candidates, kind="stable")[:2 * beam_width]    # room for beams that end
        V = ctx.logits.shape[-1]
        keep = []
        for flat in best:
            row, token = divmod(int(flat), V)
            if token == eos_id:
                finished.append((np.append(ctx.ids[row], token), float(candidates[flat])))
            else:
                keep.append(flat)
            if len(keep) == beam_width:
                break
        if not keep:
            break
        keep = np.array(keep)
        ctx.reorder(keep // V)
        scores = candidates[keep]
        ctx.append(keep % V)
        # Scores only fall as beams grow; with raw log-probabilities a beam can never overtake
        # beam_width finished hypotheses once the best live one is below them all.
        if len(finished) >= beam_width and length_penalty == 0.0 and \
                sorted(s for _, s in finished)[-beam_width] >= scores.max():
            break
    live = [(ctx.ids[i], float(scores[i])) for i in range(len(scores))]
    ranked = sorted(finished + live, key=lambda h: -rank(h[1], len(h[0]) - prompt_len))
    return ranked[:beam_width]


def log_likelihood(model, ids, prompt_len: int, use_cache: bool = True, source=None,
                   source_lengths=None) -> np.ndarray:
    """Sum of log p(x_t | x_<t) over positions t >= prompt_len of each row of ids (B, T), in nats,
    with the same context window the decoders use (so it scores their output as they saw it); for
    an encoder-decoder, given each row's source (B, S)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"log_likelihood: ids must be (B, T), got shape {ids.shape}")
    if not 1 <= prompt_len < ids.shape[1]:
        raise ValueError(f"prompt_len must be in [1, {ids.shape[1]}), got {prompt_len}")
    ctx = start_context(model, ids[:, :prompt_len], use_cache, source, source_lengths)
    total = np.zeros(len(ids))
    for t in range(prompt_len, ids.shape[1]):
        total += np.take_along_axis(log_softmax(ctx.logits), ids[:, t:t + 1], axis=-1)[:, 0]
        if t + 1 < ids.shape[1]:
            ctx.append(ids[:, t])
    return total
