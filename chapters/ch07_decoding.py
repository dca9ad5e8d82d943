"""Chapter 7 — Decoding: from next-token probabilities to text.

A language model gives p(x_{t+1} | x_<=t); turning that into text is a separate choice, and it
changes the text as much as the model does. On the baby GPT trained in Chapter 6 this script
compares the standard strategies (scratchlm/generate.py):

    7.1  the model's distribution after a prompt
    7.2  greedy decoding: the single most likely character, every time
    7.3  sampling with a temperature: softmax(z / T)
    7.4  truncation: top-k and top-p (nucleus) sampling
    7.5  the trade-off: diversity (the share of different words) against the model's own
         log-likelihood of the text it generated, with real text as the target  -> ch07_tradeoff.png
    7.6  beam search: the most likely continuations, and why they read badly
    7.7  the KV cache: identical tokens, and the cost per token against length  -> ch07_kv_cache.png

Run:      python chapters/ch07_decoding.py [--quick]   (full run: 2.5 minutes on 2 idle cores, after Chapter 6)
          It decodes the model chapters/ch06_transformer.py saved (checkpoints/ch06_baby_gpt.npz),
          running Chapter 6 first when that file is missing.
Figures:  figures/ch07_tradeoff.png, figures/ch07_kv_cache.png; numbers and texts in
          figures/ch07_results.json
Library:  scratchlm/generate.py, scratchlm/models/gpt.py (KVCache)
"""

import dataclasses
import subprocess
import sys
import time

import numpy as np
from matplotlib import ticker

from scratchlm import chapter, data, plotting
from scratchlm.generate import beam_search, generate, log_likelihood, next_token_probs
from scratchlm.metrics import nats_to_bits
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.tokenizers import CharTokenizer

# Settings
PROMPT = "ROMEO:\n"                        # 7.1 and 7.6
N_PROMPTS = 16                             # 7.2-7.5: pieces of the valid split that every strategy continues
PROMPT_CHARS = 32
NEW_CHARS = 200                            # characters generated per prompt
TEMPERATURES = [0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.3]
TOP_P = [0.5, 0.7, 0.8, 0.9, 0.95]         # at temperature 1
TOP_K = 10                                 # 7.4's example
BEAM_WIDTHS = [1, 4, 16]
BEAM_CHARS = 100
KV_CONFIG = GPTConfig(block_size=512)      # 7.7: the baby GPT's width with a 512-token context
KV_LENGTHS = [16, 32, 64, 128, 256, 512]

run = chapter.parse_args(__doc__)
if run.quick:
    N_PROMPTS, PROMPT_CHARS, NEW_CHARS, BEAM_CHARS = 4, 16, 40, 20
    TEMPERATURES, TOP_P, BEAM_WIDTHS = [0.7, 1.0], [0.9], [1, 4]
    KV_CONFIG = GPTConfig(block_size=64, n_layer=2, n_embd=32, n_head=2)
    KV_LENGTHS = [16, 32, 64]
CHECKPOINT = (run.out if run.quick else chapter.REPO_ROOT / "checkpoints") / "ch06_baby_gpt.npz"
results = {}
t_start = time.perf_counter()

# %% 7.1 The model and its next-character distribution
if not CHECKPOINT.exists():
    print(f"7.1 {CHECKPOINT} is missing: running Chapter 6 to train the model")
    flags = (["--quick"] if run.quick else []) + ["--out", str(run.out), "--seed", str(run.seed)]
    subprocess.run([sys.executable, str(chapter.REPO_ROOT / "chapters" / "ch06_transformer.py"), *flags],
                   check=True, stdout=subprocess.DEVNULL)
model, meta = GPT.from_checkpoint(CHECKPOINT)
model.eval()
chars = CharTokenizer.from_dict(meta["extra"]["tokenizer"])
prompt = chars.encode(PROMPT)[None]                                   # (1, T)
probs = next_token_probs(model.next_logits(prompt))[0]
top = np.argsort(-probs)[:5]
print(f"7.1 Chapter 6's model (valid loss {meta['extra']['valid_loss']:.3f} nats/char); after {PROMPT!r} "
      f"it predicts " + ", ".join(f"{chars.decode([i])!r} {probs[i]:.2f}" for i in top))
results["model_valid_loss"] = meta["extra"]["valid_loss"]
results["next_char_after_prompt"] = {chars.decode([i]): float(probs[i]) for i in top}

# The prompts of 7.2-7.5 are N_PROMPTS pieces of the valid split; the characters that really follow
# them are the reference text of 7.5.
valid_ids = chars.encode(data.load_text("tinyshakespeare", "valid"))
starts = np.random.default_rng(run.seed).integers(0, len(valid_ids) - PROMPT_CHARS - NEW_CHARS, N_PROMPTS)
real_ids = np.stack([valid_ids[s:s + PROMPT_CHARS + NEW_CHARS] for s in starts])  # (N, prompt + new)
prompts = real_ids[:, :PROMPT_CHARS]


# The two measures, used throughout. Likelihood: the model's mean log-probability per generated
# character, scored at temperature 1 without truncation (how typical the text is for the model),
# reported as a cross-entropy in bits/char. Diversity: distinct-n (Li et al. 2016), the fraction of
# the word n-grams of all the continuations together that are different. Distinct-1 (different
# words / words) is the one plotted: a character model invents words, so its word pairs almost
# never repeat once it samples (distinct-2 is near 1 from T = 0.7 on), while the share of repeated
# words still tells a loop from plain text from gibberish.
def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / max(len(grams), 1)


def describe(ids: np.ndarray) -> dict:
    """ids (N, PROMPT_CHARS + NEW_CHARS): bits per generated character under the model, distinct-1, -2."""
    nats = log_likelihood(model, ids, PROMPT_CHARS) / NEW_CHARS
    texts = [chars.decode(row[PROMPT_CHARS:]) for row in ids]
    return {"bits_per_char": float(nats_to_bits(-nats.mean())), "distinct_1": distinct_n(texts, 1),
            "distinct_2": distinct_n(texts, 2), "texts": texts}


# %% 7.2 Greedy decoding
# argmax at every step: deterministic, locally optimal, and prone to fall into a loop that it then
# finds ever more likely (each repetition makes the next one more probable).
greedy = describe(generate(model, prompts, NEW_CHARS, temperature=0))
print(f"7.2 greedy: {greedy['bits_per_char']:.3f} bits/char, distinct-1 {greedy['distinct_1']:.2f}: "
      f"{greedy['texts'][0][:120]!r}")
results["greedy"] = greedy

# %% 7.3 Temperature
# Sampling from softmax(z / T): T = 1 is the model's own distribution; T < 1 sharpens it towards
# greedy, T > 1 flattens it towards uniform. Every setting draws from the same seed, so the
# settings differ only in T.
by_temperature = {}
for T in TEMPERATURES:
    sampled = generate(model, prompts, NEW_CHARS, temperature=T, rng=np.random.default_rng(run.seed))
    by_temperature[T] = describe(sampled)
    print(f"7.3 temperature {T}: {by_temperature[T]['bits_per_char']:.3f} bits/char, "
          f"distinct-1 {by_temperature[T]['distinct_1']:.2f}")
results["temperature"] = {str(T): v for T, v in by_temperature.items()}

# %% 7.4 Truncation: top-k and top-p
# The tail of the distribution holds many unlikely characters whose total probability is not
# small; one bad draw from it derails the text. Top-k keeps the k most likely; top-p (exercise
# 7.1) keeps the smallest set whose probability reaches p, so it keeps few candidates where the
# model is sure and many where it is not.
by_top_p = {}
for p in TOP_P:
    by_top_p[p] = describe(generate(model, prompts, NEW_CHARS, top_p=p, rng=np.random.default_rng(run.seed)))
    print(f"7.4 top-p {p}: {by_top_p[p]['bits_per_char']:.3f} bits/char, "
          f"distinct-1 {by_top_p[p]['distinct_1']:.2f}")
top_k = describe(generate(model, prompts, NEW_CHARS, top_k=TOP_K, rng=np.random.default_rng(run.seed)))
print(f"7.4 top-k {TOP_K}: {top_k['bits_per_char']:.3f} bits/char, distinct-1 {top_k['distinct_1']:.2f}")
results["top_p"] = {str(p): v for p, v in by_top_p.items()}
results["top_k"] = {"k": TOP_K, **top_k}

# %% 7.5 The trade-off
# The reference is the real text: what follows each prompt in the valid split, scored by the same
# model. Decoding that is much more likely than real text (fewer bits/char) is repetitive; much
# less likely is noise. Good settings sit near the real text.
real = describe(real_ids)
print(f"7.5 real text (valid split): {real['bits_per_char']:.3f} bits/char, distinct-1 {real['distinct_1']:.2f}")
results["real_text"] = real

fig, ax = plotting.figure(width=6.5, height=4.5)
for label, series, marker in (("temperature T", by_temperature, "o-"), ("top-p (T = 1)", by_top_p, "s-")):
    xs = [v["bits_per_char"] for v in series.values()]
    ys = [v["distinct_1"] for v in series.values()]
    ax.plot(xs, ys, marker, label=label)
    for key, x_, y_ in zip(series, xs, ys):
        ax.annotate(f"{key}", (x_, y_), xytext=(4, -10), textcoords="offset points", fontsize=8)
ax.plot([greedy["bits_per_char"]], [greedy["distinct_1"]], "kx", markersize=9, label="greedy")
ax.plot([top_k["bits_per_char"]], [top_k["distinct_1"]], "^", label=f"top-k (k = {TOP_K})")
ax.plot([real["bits_per_char"]], [real["distinct_1"]], "*", markersize=14, color=plotting.COLORS[4],
        label="real text (valid split)")
ax.set_xlabel("model cross-entropy of the generated text (bits per character; left = more likely)")
ax.set_ylabel("distinct-1 (different words / words)")
ax.set_title(f"Decoding the baby GPT: {N_PROMPTS} prompts x {NEW_CHARS} characters per setting")
ax.legend(fontsize=8)
plotting.save(fig, run.out, "ch07_tradeoff")

# %% 7.6 Beam search
# Keep the `width` most likely prefixes, extend each by every character, keep the best `width`.
# Wider beams find continuations the model rates more likely than greedy's, and they read no
# better: every width falls into loops like "that the have the have". Higher likelihood under the
# model does not buy better text.
beams = {}
for width in BEAM_WIDTHS:
    (ids, score), *_ = beam_search(model, prompt[0], BEAM_CHARS, beam_width=width)
    beams[width] = {"bits_per_char": float(nats_to_bits(-score / BEAM_CHARS)),
                    "distinct_1": distinct_n([chars.decode(ids[prompt.shape[1]:])], 1),
                    "text": chars.decode(ids[prompt.shape[1]:])}
    print(f"7.6 beam width {width}: {beams[width]['bits_per_char']:.3f} bits/char: {beams[width]['text'][:100]!r}")
results["beam_search"] = {str(w): v for w, v in beams.items()}

# %% 7.7 The KV cache
# Without a cache, every new token runs the model over the whole context again: the t-th token costs
# a forward pass over t positions. The keys and values of earlier positions do not change, so the
# cache keeps them and runs the model on the new position alone (KVCache.extend, exercise 7.2). The
# model here has the baby GPT's size and a 512-token context (its weights are untrained: speed does
# not depend on them).
kv_model = GPT(KV_CONFIG)
kv_model.eval()
start = np.zeros((1, 1), dtype=np.int64)
same = np.array_equal(generate(kv_model, start, KV_LENGTHS[-1] - 1, temperature=0, use_cache=True),
                      generate(kv_model, start, KV_LENGTHS[-1] - 1, temperature=0, use_cache=False))


def ms_per_token(length: int, use_cache: bool, repeats: int = 3) -> float:
    """Mean time per token of greedily generating `length` - 1 tokens after one (best of `repeats`)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(kv_model, start, length - 1, temperature=0, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / (length - 1)


timing = {"length": KV_LENGTHS, "cached_ms": [], "recompute_ms": []}
for length in KV_LENGTHS:
    timing["cached_ms"].append(ms_per_token(length, True))
    timing["recompute_ms"].append(ms_per_token(length, False))
    recompute, cached = timing["recompute_ms"][-1], timing["cached_ms"][-1]
    print(f"7.7 {length} tokens: {recompute:.2f} ms/token recomputing, {cached:.2f} with the KV cache "
          f"({recompute / cached:.1f}x)")
print(f"7.7 greedy tokens with and without the cache identical over {KV_LENGTHS[-1]} tokens: {same}")
results["kv_cache"] = {"config": dataclasses.asdict(KV_CONFIG), "identical_greedy_tokens": bool(same), **timing}

fig, ax = plotting.figure()
ax.plot(timing["length"], timing["recompute_ms"], "o-", label="recompute the whole context")
ax.plot(timing["length"], timing["cached_ms"], "s-", label="KV cache")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(timing["length"], [str(n) for n in timing["length"]])
ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
ax.yaxis.set_minor_formatter(ticker.NullFormatter())
for n, slow, fast in zip(timing["length"], timing["recompute_ms"], timing["cached_ms"]):
    ax.annotate(f"{slow / fast:.1f}x", (n, slow), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
ax.set_xlabel("generated sequence length (tokens)")
ax.set_ylabel("mean time per generated token over the sequence (ms)")
ax.set_title(f"Greedy decoding, batch 1: n_layer {KV_CONFIG.n_layer}, n_embd {KV_CONFIG.n_embd}")
ax.legend()
plotting.save(fig, run.out, "ch07_kv_cache")

results["seconds"] = time.perf_counter() - t_start
print(f"7.7 chapter finished in {results['seconds'] / 60:.1f} minutes")
chapter.write_results(run, "ch07_results", results)
