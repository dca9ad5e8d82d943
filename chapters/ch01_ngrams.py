"""Chapter 1 — N-gram language models: predict the next word by counting what came next before.

    1.1  A language model gives every sentence a probability. By the chain rule that is a product
         of next-token probabilities; the Markov assumption keeps only the last n-1 tokens, so the
         factors can be counted. A bigram model of names scores "emma", factor by factor.
    1.2  Counting: every n-gram of a corpus, one Numba pass per order (PTB, orders 1-5), and
         Zipf's law: a few words are everywhere, most are rare            -> ch01_zipf.png
    1.3  Maximum likelihood: P(w_i | w_{i-1}) = C(w_{i-1} w_i) / C(w_{i-1}). The 27 x 27 bigram
         counts of names ('.' marks the start and end of a name), and names sampled from them
                                                                         -> ch01_bigram_counts.png
    1.4  Perplexity: exp of the average negative log-probability per token, the number of equally
         likely choices the model is as unsure as. Names, from uniform to 4-gram, train vs valid
    1.5  Shannon's game: Shakespeare sampled from unigram to 4-gram models
    1.6  Sparsity and OOV: from trigrams on, most held-out n-grams were never seen in training (a
         fifth of the bigrams already were not), and maximum likelihood gives them probability 0 --
         infinite perplexity. Chapter 2 is the cure.
                                                                         -> ch01_sparsity.png

Run:  python chapters/ch01_ngrams.py [--quick] [--out DIR]        (numbers: ch01_results.json)
"""

import math
import re
import time
from collections import Counter

import numpy as np

from scratchlm import data, ngram, plotting
from scratchlm.chapter import parse_args, write_results
from scratchlm.rng import get_rng

run = parse_args(__doc__)

# Settings ------------------------------------------------------------------------------------
N_NAMES = None            # names of the train split to count (None: all 25,626)
N_LINES = None            # lines of Shakespeare to use, train and valid (None: all)
PTB_SENTENCES = None      # PTB train sentences counted in 1.2 (None: all 42,068)
MAX_ORDER = 6             # highest order of the sparsity curves in 1.6
N_SAMPLES = 2             # Shakespeare sentences sampled per order in 1.5
if run.quick:
    N_NAMES, N_LINES, PTB_SENTENCES, MAX_ORDER = 2_000, 2_000, 2_000, 4

rng = get_rng()
results = {}

names = {split: [list(name) for name in data.load_lines("names", split)[:N_NAMES]]
         for split in ("train", "valid")}


def show(tokens) -> str:
    """A sentence of characters as a name, of words as text."""
    return "".join(tokens) if all(len(t) == 1 for t in tokens) else " ".join(tokens)


# %% 1.1 A language model assigns probabilities to sequences
# P(e m m a) = P(e | .) P(m | . e) P(m | . e m) P(a | . e m m) P(. | . e m m a) exactly (chain
# rule); a bigram model keeps one token of history: P(e | .) P(m | e) P(m | m) P(a | m) P(. | a).
bigram = ngram.fit(names["train"], 2, "mle")
example = list("emma")
history, factors = ["<s>"], []
for token in [*example, "</s>"]:
    factors.append(bigram.prob(token, history[-1:]))
    history.append(token)
p_example = math.prod(factors)
print("1.1 P(emma) = " + " x ".join(f"{f:.3f}" for f in factors) + f" = {p_example:.3g} under the bigram MLE")
results["chain_rule"] = {"name": "emma", "factors": factors, "probability": p_example}

# %% 1.2 Counting
# Each order is one pass over the token ids: sort the positions by (previous n-gram, word) with
# two counting sorts, then every run of equal keys is one n-gram (scratchlm/ngram/kernels.py).
# Its NumPy twin packs each n-gram into one key, (index of its first n-1 words) * |V| + last word,
# and lets np.unique sort and count the keys. No n-gram crosses a sentence: none ends at <s>.
ptb = [line.split() for line in data.load_lines("ptb", "train")[:PTB_SENTENCES]]
vocab = ngram.build_vocab(ptb)
ids = ngram.encode(vocab, ptb)
ngram.count_ngrams(ids[:1000], 5, vocab)  # load the compiled kernels before timing
t0 = time.perf_counter()
counts = ngram.count_ngrams(ids, 5, vocab)
count_seconds = time.perf_counter() - t0
print(f"1.2 PTB train: {len(ids):,} ids; counted orders 1-5 in {count_seconds:.2f} s; distinct n-grams "
      + ", ".join(f"{n:,}" for n in counts.sizes()))
results["ptb_counts"] = {"tokens": int(len(ids)), "distinct": counts.sizes()}  # timings vary: printed only

shakespeare = {split: [re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)*|[^\sA-Za-z]", line)
                       for line in data.load_lines("tinyshakespeare", split)[:N_LINES] if line.strip()]
               for split in ("train", "valid")}
zipf = {}
fig, ax = plotting.figure(width=5.5, height=4.0)
for corpus, sentences in (("Shakespeare", shakespeare["train"]), ("PTB", ptb)):
    freq = np.sort(np.array(list(Counter(w for s in sentences for w in s).values())))[::-1]
    rank = np.arange(1, len(freq) + 1)
    top = slice(9, min(1000, len(freq)))  # fit the straight middle of the curve
    slope = float(np.polyfit(np.log(rank[top]), np.log(freq[top]), 1)[0])
    hapax = float(np.mean(freq == 1))
    zipf[corpus] = {"types": len(freq), "tokens": int(freq.sum()), "slope": slope, "hapax_share": hapax}
    print(f"    {corpus}: {freq.sum():,} words, {len(freq):,} types; frequency ~ rank^{slope:.2f}; "
          f"{hapax:.0%} of types occur once")
    ax.loglog(rank, freq, label=f"{corpus} (slope {slope:.2f})")
ax.loglog(rank, freq[0] / rank, "k--", lw=1, label="1 / rank")
ax.set(xlabel="rank", ylabel="count", title="Zipf's law: word frequency vs rank")
ax.legend()
plotting.save(fig, run.out, "ch01_zipf")
results["zipf"] = zipf

# %% 1.3 Maximum likelihood: the bigram counts of names
# P(w | h) = C(h w) / C(h .): how often w followed h, over how often anything followed h. For
# unigrams h is empty and C(.) counts every predicted token; <s> is only ever a context.
letters = ["."] + sorted({c for name in names["train"] for c in name})
where = {c: i for i, c in enumerate(letters)}
matrix = np.zeros((len(letters), len(letters)), dtype=np.int64)
bigram_counts = ngram.count_ngrams(bigram.encode(names["train"]), 2, bigram.vocab)
for (a, b), c in zip(bigram_counts.ngrams(2), bigram_counts.count[1]):
    wa, wb = bigram.vocab.words[a], bigram.vocab.words[b]
    matrix[where.get(wa, 0), where.get(wb, 0)] = c  # <s> and </s> are both '.'
top = np.unravel_index(np.argsort(matrix, axis=None)[::-1][:3], matrix.shape)
print("1.3 names: most frequent bigrams " + ", ".join(f"{letters[i]}{letters[j]} {matrix[i, j]:,}"
                                                      for i, j in zip(*top))
      + f"; P(a | m) = {bigram.prob('a', ['m']):.3f}, P(. | a) = {bigram.prob('</s>', ['a']):.3f}")
samples = ["".join(bigram.generate(rng, max_tokens=20)) for _ in range(8)]
print("    sampled from the bigram MLE: " + " ".join(samples))
results["names_bigram"] = {"letters": letters, "counts": matrix.tolist(), "samples": samples}

fig, ax = plotting.figure(width=13, height=13)
ax.imshow(matrix, cmap="Blues")
for i in range(len(letters)):
    for j in range(len(letters)):
        color = "white" if matrix[i, j] > matrix.max() / 2 else "#333333"
        ax.text(j, i, letters[i] + letters[j], ha="center", va="bottom", fontsize=7, color=color)
        ax.text(j, i, f"{matrix[i, j]}", ha="center", va="top", fontsize=7, color=color)
ax.set_xticks(range(len(letters)), letters)
ax.set_yticks(range(len(letters)), letters)
ax.grid(False)
ax.set(xlabel="next character", ylabel="character",
       title=f"Bigram counts of {len(names['train']):,} names ('.' = start / end of a name)")
plotting.save(fig, run.out, "ch01_bigram_counts")

# %% 1.4 Perplexity
# Perplexity = exp(-(1/N) sum log p(token | history)), with one '.' (</s>) scored per name; the
# start (<s>) is only a context, never scored, and unknown words are scored as <unk>. A uniform
# choice among the 26 letters and the end would score 27.
perplexity = {"uniform": 27.0}
print("1.4 names perplexity: uniform over 26 letters + end = 27")
for order in (1, 2, 3, 4):
    lm = ngram.fit(names["train"], order, "mle")
    train_ppl, valid_ppl = lm.perplexity(names["train"]), lm.perplexity(names["valid"])
    perplexity[f"{order}-gram"] = {"train": train_ppl, "valid": None if math.isinf(valid_ppl) else valid_ppl}
    print(f"    {order}-gram MLE: train {train_ppl:.2f}, valid {valid_ppl:.2f}")
seen = {tuple(g) for g in bigram_counts.ngrams(2).tolist()}
valid_bigrams = ngram.count_ngrams(bigram.encode(names["valid"]), 2, bigram.vocab)
unseen = [bigram.vocab.words[a] + bigram.vocab.words[b] for a, b in valid_bigrams.ngrams(2).tolist()
          if (a, b) not in seen]
print(f"    valid is infinite from bigrams on: {len(unseen)} of its bigram types never occur in train, "
      f"e.g. {', '.join(u.replace('<s>', '.').replace('</s>', '.') for u in unseen[:5])}")
results["names_perplexity"] = {**perplexity, "unseen_valid_bigram_types": len(unseen)}

# %% 1.5 Shannon's game
# Shannon (1948) sampled English letter by letter and word by word from n-gram statistics. Words
# seen once in training become <unk> (1.6), so every model can name what it has not seen.
# generate() draws each word from p(w | the last n-1 words), from <s> until it draws </s>.
word_counts = Counter(w for s in shakespeare["train"] for w in s)
words = [w for w, c in word_counts.items() if c >= 2]
shannon = {}
for order in (1, 2, 3, 4):
    lm = ngram.fit(shakespeare["train"], order, "mle", vocab=words)
    shannon[order] = [show(lm.generate(rng, max_tokens=25)) for _ in range(N_SAMPLES)]
    for text in shannon[order]:
        print(f"1.5 {order}-gram: {text}")
results["shannon"] = shannon

# %% 1.6 Sparsity and OOV
# Out-of-vocabulary words first: held-out words never seen in training have no count at all, so
# we keep the words seen at least twice and map the rest to <unk>, in training and test alike.
valid_words = [w for s in shakespeare["valid"] for w in s]
oov_rate = float(np.mean([word_counts[w] == 0 for w in valid_words]))
unk_rate = float(np.mean([word_counts[w] < 2 for w in valid_words]))
print(f"1.6 Shakespeare: {len(words):,} of {len(word_counts):,} word types kept (count >= 2); "
      f"valid words unseen in train {oov_rate:.1%}, mapped to <unk> {unk_rate:.1%}")
sparsity = {"order": [], "unseen_tokens": [], "unseen_types": [], "train_ppl": [], "valid_ppl": []}
for order in range(1, MAX_ORDER + 1):
    lm = ngram.fit(shakespeare["train"], order, "mle", vocab=words)
    idx, avail = lm.trie.lookup(lm.encode(shakespeare["valid"]))
    # a valid n-gram is unseen when the model has no n-gram of that order ending there
    scored = avail >= order
    unseen_at = idx[scored, order - 1] < 0
    valid_counts = ngram.count_ngrams(lm.encode(shakespeare["valid"]), order, lm.vocab)
    train_keys = {tuple(g) for g in lm.ngrams(order).tolist()}
    types = [tuple(g) for g in valid_counts.ngrams(order).tolist() if g[-1] != lm.vocab.bos_id]
    unseen_types = float(np.mean([g not in train_keys for g in types]))
    train_ppl, valid_ppl = lm.perplexity(shakespeare["train"]), lm.perplexity(shakespeare["valid"])
    for key, value in (("order", order), ("unseen_tokens", float(unseen_at.mean())),
                       ("unseen_types", unseen_types), ("train_ppl", train_ppl),
                       ("valid_ppl", None if math.isinf(valid_ppl) else valid_ppl)):
        sparsity[key].append(value)
    print(f"    {order}-grams: {unseen_at.mean():6.1%} of valid n-grams unseen in train ({unseen_types:.1%} "
          f"of types); MLE perplexity train {train_ppl:8.2f}, valid {valid_ppl:.2f}")
results["sparsity"] = {**sparsity, "oov_rate": oov_rate, "unk_rate": unk_rate, "kept_types": len(words)}

fig, (left, right) = plotting.figure(1, 2, width=4.8, height=3.8)
left.plot(sparsity["order"], 100 * np.array(sparsity["unseen_tokens"]), "o-", label="n-gram tokens")
left.plot(sparsity["order"], 100 * np.array(sparsity["unseen_types"]), "s--", label="n-gram types")
left.set(xlabel="order n", ylabel="valid n-grams unseen in train (%)", ylim=(0, 100),
         title="Most long n-grams are new")
left.legend()
right.semilogy(sparsity["order"], sparsity["train_ppl"], "o-", label="train")
finite = [(n, p) for n, p in zip(sparsity["order"], sparsity["valid_ppl"]) if p is not None]
right.semilogy(*zip(*finite), "s", color=plotting.COLORS[1], label="valid")
top_y = 2 * max(sparsity["train_ppl"])
infinite = [n for n, p in zip(sparsity["order"], sparsity["valid_ppl"]) if p is None]
right.plot(infinite, [top_y] * len(infinite), "^", color=plotting.COLORS[1], label="valid = ∞")
right.set(xlabel="order n", ylabel="perplexity (MLE)", title="MLE memorises train, fails on valid")
right.legend()
plotting.save(fig, run.out, "ch01_sparsity")

write_results(run, "ch01_results", results)
