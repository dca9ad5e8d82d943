"""Chapter 2 — Smoothing: giving probability to what the training text never showed.

Chapter 1 ended with maximum likelihood giving every unseen n-gram probability 0. Each method
below takes some probability from what was seen and gives it to what was not; they differ in how
much they take and where they put it. All are fitted on Penn Treebank (Mikolov's split: 929k
training tokens, 10k words, <unk> as in the text) and scored on its test set (82,430 tokens,
one </s> per sentence).

    2.1  Add-k (Laplace): add k to every count
    2.2  Good-Turing and Katz back-off: a count r is really (r + 1) n_{r+1} / n_r; held-out text
         shows the discount r - r*: about 0.65 at r = 1, growing to 1.45 by r = 8
                                                                         -> ch02_discounts.png
    2.3  Witten-Bell: back off in proportion to how often a context was followed by a new word
    2.4  Jelinek-Mercer: interpolate the orders with weights tuned on held-out text (EM)
    2.5  Absolute discounting: subtract a fixed D from every count
    2.6  Kneser-Ney: lower orders count the contexts a word follows, not its occurrences
    2.7  Modified Kneser-Ney: three discounts; Mikolov's KN3 / KN5 reproduced
    2.8  Stupid back-off: scores that do not sum to 1, for web-scale data
    2.9  Every method at orders 2-5                                      -> ch02_ptb_table.png
    2.10 How the methods compare as the training set grows (Chen & Goodman)
                                                                         -> ch02_training_size.png

Run:  python chapters/ch02_smoothing.py [--quick] [--out DIR]     (numbers: ch02_results.json)
"""

import math
import warnings

import numpy as np

from scratchlm import data, ngram, plotting
from scratchlm.chapter import parse_args, write_results
from scratchlm.metrics import nats_to_bits

run = parse_args(__doc__)

# Settings ------------------------------------------------------------------------------------
TRAIN_SENTENCES = None                      # PTB train sentences (None: all 42,068)
TEST_SENTENCES = None                       # PTB test sentences (None: all 3,761)
ORDERS = [2, 3, 4, 5]                       # the orders of the table in 2.9
ADD_K = [1.0, 0.1, 0.01, 0.001]             # the k tried in 2.1
SIZES = [1_000, 2_000, 5_000, 10_000, 20_000, 42_068]   # training sentences in 2.10
SIZE_METHODS = ["good_turing", "witten_bell", "absolute_discounting", "kneser_ney", "modified_kneser_ney"]
if run.quick:
    TRAIN_SENTENCES, TEST_SENTENCES, ORDERS = 3_000, 300, [2, 3]
    ADD_K, SIZES = [1.0, 0.01], [1_000, 3_000]

train = [line.split() for line in data.load_lines("ptb", "train")[:TRAIN_SENTENCES]]
valid = [line.split() for line in data.load_lines("ptb", "valid")]
test = [line.split() for line in data.load_lines("ptb", "test")[:TEST_SENTENCES]]
n_test = sum(len(s) + 1 for s in test)
print(f"PTB: {sum(map(len, train)):,} train words in {len(train):,} sentences; "
      f"{n_test:,} test tokens (words + </s>)")

# Every method with the settings used throughout: add-one for add-k, Katz with counts up to 7
# discounted and no cutoffs, Jelinek-Mercer tuned on the validation text, the rest as estimated.
SETTINGS = {
    "mle": {}, "add_k": {"k": 1.0}, "good_turing": {}, "witten_bell": {}, "jelinek_mercer": {"heldout": valid},
    "absolute_discounting": {}, "kneser_ney": {}, "modified_kneser_ney": {}, "stupid_backoff": {},
}
models = {}


def fit(method: str, order: int, sentences=train, **extra):
    return ngram.fit(sentences, order, method, **{**SETTINGS[method], **extra})


def perplexity(method: str, order: int) -> float:
    """Test perplexity of `method` at `order` with the standard settings (fitted once)."""
    if (method, order) not in models:
        models[method, order] = fit(method, order).perplexity(test)
    return models[method, order]


results = {}

# %% 2.1 Add-k
# p(w | h) = (c(hw) + k) / (c(h) + k |V|). With |V| = 10,000, the k |V| pseudo-counts of a context
# seen 100 times take 10,000 k / (100 + 10,000 k) of its mass -- for k = 1, 99%, almost all of it
# landing on words never seen after h.
add_k = {k: fit("add_k", 3, k=k).perplexity(valid) for k in ADD_K}
best_k = min(add_k, key=add_k.get)
print("2.1 add-k trigram, valid perplexity: " + ", ".join(f"k={k:g}: {p:.1f}" for k, p in add_k.items())
      + f"; test with k=1 (Laplace) {perplexity('add_k', 3):.1f}, "
        f"best k={best_k:g} {fit('add_k', 3, k=best_k).perplexity(test):.1f}")
results["add_k"] = {"valid": {str(k): p for k, p in add_k.items()}, "best_k": best_k}

# %% 2.2 Good-Turing and Katz back-off
# Church & Gale's experiment: split the training text in two halves A and B; for the bigrams seen
# r times in A, how often do they occur in B? Good-Turing predicts it from A alone:
# r* = (r + 1) n_{r+1} / n_r, with n_r the number of bigrams seen r times. Katz (1987) discounts
# only the counts r <= K, by d_r = (r*/r - A) / (1 - A) with A = (K + 1) n_{K+1} / n_1, so the
# mass taken is still Good-Turing's n_1 / N; that mass goes to the shorter context (back-off).
half = len(train) // 2
part = {"A": train[:half], "B": train[half:2 * half]}
vocab = ngram.build_vocab(train)
counts = {name: ngram.count_ngrams(ngram.encode(vocab, s), 2, vocab) for name, s in part.items()}
keys = {name: c.context[1] * len(vocab) + c.word[1] for name, c in counts.items()}
count_in_b = dict(zip(keys["B"].tolist(), counts["B"].count[1].tolist()))
r_a = counts["A"].count[1]
b_of_a = np.array([count_in_b.get(k, 0) for k in keys["A"].tolist()])
n_r = np.bincount(r_a, minlength=12)
n_pred = len(vocab) - 1                                      # words that can follow: all but <s>
n_r[0] = (len(vocab) - 1) * n_pred - len(r_a)               # possible bigrams unseen in A
r = np.arange(0, 9)
gt = (r + 1) * n_r[r + 1] / n_r[r]
heldout = np.array([b_of_a[r_a == k].mean() if k else (counts["B"].count[1].sum() - b_of_a.sum()) / n_r[0]
                    for k in r])
d_mkn = ngram.fit(part["A"], 2, "modified_kneser_ney").info["discounts"][1]
print("2.2 bigrams of half A of PTB train: count r -> Good-Turing r* (held-out mean in half B): "
      + ", ".join(f"{k}->{g:.3g} ({h:.3g})" for k, g, h in zip(r, gt, heldout)))
# (PTB's unigrams cannot be Good-Turing discounted: its vocabulary was cut to the 10k most frequent
# words, so only 30 words occur once and 593 eight times. Katz then warns and falls back.)
katz = perplexity("good_turing", 3)
with warnings.catch_warnings():  # SRILM's default d_1 for unigrams is 0, so it leaves them undiscounted
    warnings.simplefilter("ignore", ngram.DiscountFallbackWarning)
    srilm = fit("good_turing", 3, max_count=[1, 7, 7], min_count=[1, 1, 2]).perplexity(test)
print(f"    Katz trigram: test perplexity {katz:.2f}; with SRILM's defaults (trigrams seen once dropped) "
      f"{srilm:.2f} (Mikolov et al. 2011, GT3: 165.2)")
results["discounts"] = {"r": r.tolist(), "n_r": n_r[:10].tolist(), "good_turing": gt.tolist(),
                        "heldout": heldout.tolist(), "modified_kneser_ney_bigram": d_mkn}
results["good_turing"] = {"katz_trigram": katz, "srilm_defaults_trigram": srilm, "published_gt3": 165.2}

fig, (left, right) = plotting.figure(1, 2, width=4.8, height=3.9)
left.plot(r, r, "k:", lw=1, label="c* = c (no discount)")
left.plot(r, np.maximum(r - 0.75, 0), "k--", lw=1, label="c - 0.75 (Church & Gale, AP news)")
left.plot(r, gt, "o-", label="Good-Turing (c+1) n$_{c+1}$ / n$_c$")
left.plot(r, heldout, "s", label="held-out mean count")
left.set(xlabel="count c in half A", ylabel="adjusted count c*",
         title=f"PTB bigrams: c − c* from {r[1] - heldout[1]:.2f} (c = 1) to {r[-1] - heldout[-1]:.2f} (c = {r[-1]})")
left.legend(fontsize=8)
right.plot(r[1:], (r - gt)[1:], "o-", label="c - c* (Good-Turing)")
right.plot(r[1:], (r - heldout)[1:], "s", label="c - held-out mean")
for d, label, style in zip(d_mkn, ("D$_1$", "D$_2$", "D$_{3+}$"), (":", "-.", "--")):
    right.axhline(d, color="gray", ls=style, lw=1, label=f"modified KN {label} = {d:.2f}")
right.set(xlabel="count c in half A", ylabel="discount c - c*", ylim=(0, 1.6),
          title="Three discounts fit better than one")
right.legend(fontsize=8)
plotting.save(fig, run.out, "ch02_discounts")

# %% 2.3 Witten-Bell
# gamma(h) = N1+(h .) / (c(h) + N1+(h .)): a context that was often followed by a new word (many
# types for its count) keeps more mass for words not seen after it. The seen words share the rest,
# u(w | h) = c(hw) / (c(h) + N1+(h .)), and p(w | h) = u(w | h) + gamma(h) p(w | h').
print(f"2.3 Witten-Bell trigram: test perplexity {perplexity('witten_bell', 3):.2f}")

# %% 2.4 Jelinek-Mercer
# p(w | h) = lambda p_ML(w | h) + (1 - lambda) p(w | h'), one lambda per order, fitted by EM on
# the validation text (never on the training text: there, the longest context always looks best).
jm = fit("jelinek_mercer", 3)
models["jelinek_mercer", 3] = jm.perplexity(test)
print(f"2.4 Jelinek-Mercer trigram: lambdas (unigram..trigram) "
      f"{', '.join(f'{x:.3f}' for x in jm.info['lambdas'])}; test perplexity {models['jelinek_mercer', 3]:.2f}")
results["jelinek_mercer"] = {"lambdas_trigram": jm.info["lambdas"]}

# %% 2.5 Absolute discounting
# The figure of 2.2 says: subtract something from every count. One D for all counts is the first
# approximation (2.7 uses three). Ney, Essen & Kneser estimate it as
# D = n1 / (n1 + 2 n2) at each order, and interpolate with the next-shorter context:
# u(w | h) = (c(hw) - D) / c(h .), and the mass taken, gamma(h) = D N1+(h .) / c(h .), is given
# to p(w | h').
ad = fit("absolute_discounting", 3)
models["absolute_discounting", 3] = ad.perplexity(test)
print(f"2.5 absolute discounting trigram: D per order {', '.join(f'{d[0]:.3f}' for d in ad.info['discounts'])}; "
      f"test perplexity {models['absolute_discounting', 3]:.2f}")

# %% 2.6 Kneser-Ney
# A lower-order distribution is only used when the longer context failed, so it should ask "how
# many different contexts does w complete?", not "how often does w occur?". Below the highest
# order, a(w) = N1+(. w) counts the distinct words w follows; n-grams that start with <s> (nothing
# precedes it) keep their counts.
kn = fit("kneser_ney", 3)
models["kneser_ney", 3] = kn.perplexity(test)
kn_counts = ngram.count_ngrams(ngram.encode(kn.vocab, train), 2, kn.vocab)
continuation = ngram.adjust_counts(kn_counts)[0]
for word in ("francisco", "york", "the"):
    i = kn.vocab.index[word]
    print(f"2.6 '{word}': occurs {kn_counts.count[0][i]:,} times after {continuation[i]:,} different words")
print(f"    Kneser-Ney trigram: test perplexity {models['kneser_ney', 3]:.2f}; 5-gram {perplexity('kneser_ney', 5):.2f}")
results["continuation_example"] = {w: [int(kn_counts.count[0][kn.vocab.index[w]]),
                                       int(continuation[kn.vocab.index[w]])] for w in ("francisco", "york", "the")}

# %% 2.7 Modified Kneser-Ney
# Chen & Goodman: the best single discount is not the best discount for every count, so use
# three (for counts 1, 2, 3+), D_r = r - (r + 1) Y n_{r+1} / n_r with Y = n1 / (n1 + 2 n2), from
# the count-of-counts of the adjusted counts. This is what KenLM's lmplz and SRILM's -kndiscount
# -interpolate estimate, and what Mikolov et al. (2011) report as KN3 148.3 and KN5 141.2.
mkn = fit("modified_kneser_ney", 3)
models["modified_kneser_ney", 3] = mkn.perplexity(test)
print("2.7 modified Kneser-Ney trigram discounts (D1, D2, D3+): "
      + "; ".join(", ".join(f"{d:.3f}" for d in ds) for ds in mkn.info["discounts"]))
mikolov = {"KN3": (3, 148.3), "KN5": (5, 141.2)}
for name, (order, published) in mikolov.items():
    print(f"    {name}: test perplexity {perplexity('modified_kneser_ney', order):.2f} (Mikolov et al. 2011: {published})")
results["modified_kneser_ney"] = {"discounts_trigram": mkn.info["discounts"]}
results["mikolov"] = {name: {"published": published, "ours": perplexity("modified_kneser_ney", order)}
                      for name, (order, published) in mikolov.items()}
results["mikolov"]["GT3"] = {"published": 165.2, "ours": srilm}

# %% 2.8 Stupid back-off
# Brants et al. (2007): S(w | h) = c(hw) / c(h) if seen, else 0.4 S(w | h'). No discounting, no
# normalisation -- cheap on trillions of words, but the scores are not probabilities.
sb = fit("stupid_backoff", 3)
mass = float(np.exp(sb.next_logprobs(["<s>", "the"])).sum())
print(f"2.8 stupid back-off: the scores after '<s> the' sum to {mass:.2f}, not 1; its 'perplexity' "
      f"{perplexity('stupid_backoff', 3):.2f} is not comparable")
results["stupid_backoff"] = {"score_mass_after_s_the": mass}

# %% 2.9 Every method, orders 2-5
methods = list(ngram.ESTIMATORS)
table = {m: {n: perplexity(m, n) for n in ORDERS} for m in methods}
print("2.9 PTB test perplexity" + "".join(f"{n:>10}-gram" for n in ORDERS))
for m in methods:
    note = " (scores, not a distribution)" if m == "stupid_backoff" else ""
    print(f"    {m:22s}" + "".join(f"{table[m][n]:15.2f}" for n in ORDERS) + note)
results["ptb_table"] = {m: {str(n): (None if math.isinf(p) else p) for n, p in row.items()} for m, row in table.items()}

fig, ax = plotting.figure(width=1.6 * len(ORDERS) + 2.5, height=4.2)
values = np.array([[table[m][n] for n in ORDERS] for m in methods])
best = np.nanmin(np.where(np.isfinite(values), values, np.nan))
shade = np.clip(np.log(np.where(np.isfinite(values), values, np.nan) / best), 0, np.log(2))  # best .. 2x best
ax.imshow(shade, cmap="Blues_r", aspect="auto", vmin=0, vmax=np.log(2))
for i, m in enumerate(methods):
    for j, _ in enumerate(ORDERS):
        v = values[i, j]
        text = "∞" if math.isinf(v) else f"{v:.1f}" + ("*" if m == "stupid_backoff" else "")
        ax.text(j, i, text, ha="center", va="center", fontsize=9,
                color="white" if np.isfinite(v) and shade[i, j] < 0.35 else "black")
ax.set_xticks(range(len(ORDERS)), [f"{n}-gram" for n in ORDERS])
ax.set_yticks(range(len(methods)), [m.replace("_", " ") for m in methods])
ax.grid(False)
ax.set_title("PTB test perplexity (darker = closer to the best; * not a distribution)")
plotting.save(fig, run.out, "ch02_ptb_table")

# %% 2.10 Training-set size
# Chen & Goodman's figure: test cross-entropy of each method minus that of Jelinek-Mercer (the
# baseline), as the training set grows. A fixed vocabulary (all of PTB train) keeps the numbers
# comparable across sizes: words a small training set never saw still need probability.
sizes = [n for n in SIZES if n <= len(train)] or [len(train)]
words = vocab.words
curves = {order: {m: [] for m in SIZE_METHODS} for order in (2, 3)}
tokens = []
for n in sizes:
    subset = train[:n]
    tokens.append(sum(len(s) + 1 for s in subset))
    for order in (2, 3):
        with warnings.catch_warnings():  # small samples make some discounts fall back
            warnings.simplefilter("ignore", ngram.DiscountFallbackWarning)
            base = nats_to_bits(-fit("jelinek_mercer", order, subset, vocab=words).evaluate(test).logprob / n_test)
            for m in SIZE_METHODS:
                bits = nats_to_bits(-fit(m, order, subset, vocab=words).evaluate(test).logprob / n_test)
                curves[order][m].append(bits - base)
    print(f"2.10 {tokens[-1]:>9,} training tokens, bits/token relative to Jelinek-Mercer: "
          + "; ".join(f"{order}-gram " + ", ".join(f"{m} {curves[order][m][-1]:+.3f}" for m in SIZE_METHODS)
                      for order in (2, 3)))
results["training_size"] = {"sentences": sizes, "tokens": tokens,
                            "relative_bits": {str(o): c for o, c in curves.items()}}

fig, axes = plotting.figure(1, 2, width=4.8, height=3.9, sharey=True)
for ax, order in zip(axes, (2, 3)):
    ax.axhline(0, color="k", lw=1, label="jelinek mercer (baseline)")
    for m in SIZE_METHODS:
        ax.semilogx(tokens, curves[order][m], "o-", ms=3, label=m.replace("_", " "))
    ax.set(xlabel="training tokens", title=f"{'bigram' if order == 2 else 'trigram'} models")
axes[0].set_ylabel("test cross-entropy − baseline (bits/token)")
axes[1].legend(fontsize=8)
plotting.save(fig, run.out, "ch02_training_size")

write_results(run, "ch02_results", results)
