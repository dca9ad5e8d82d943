"""Chapter 4 — Bengio's neural probabilistic language model.

To an n-gram model "the cat sat on the mat" and "a dog sat on a rug" share nothing: every n-gram is
its own count. Bengio et al. (2003) gave each word a learned vector and predicted the next word
from the vectors of the previous n-1 words with a small network (scratchlm/models/nplm.py):

    x = [C(w_{t-n+1}); ...; C(w_{t-1})],   a = tanh(d + H x),   y = b + U a,   P(w_t | ...) = softmax(y)

Words that occur in similar contexts get similar vectors, so a context never seen in training
still gets a good prediction. This script trains it on the Penn Treebank with the n-gram chapter's
conventions, so every perplexity here compares with Chapter 2's table:

    4.1  the data: (context, next word) windows, sentences padded with <s>, one </s> each
    4.2  the baselines: interpolated modified Kneser-Ney 3- and 5-grams (Chapter 2)
    4.3  the model, and its loss before training: ln V, a uniform guess
    4.4  training: AdamW, dropout, early stopping on valid           -> ch04_learning_curves.png
    4.5  where the NPLM beats counting (by the longest n-gram seen in training), and what its
         fixed window cannot see
    4.6  the two together: linear interpolation with KN5, lambda tuned on valid  -> ch04_mixture.png
    4.7  what the word vectors learned: PCA and nearest neighbours   -> ch04_embeddings.png
    4.8  characters: makemore's names; NLL against the window's width, NPLM vs Kneser-Ney
                                                                        -> ch04_names_context.png

Run:      python chapters/ch04_neural_lm.py [--quick]      (full run: 19 minutes on 2 cores)
Figures:  figures/ch04_*.png; numbers and nearest-neighbour lists in figures/ch04_results.json
Library:  scratchlm/models/nplm.py, scratchlm/data.py (context windows), scratchlm/train.py (the epoch
          loop, evaluation), scratchlm/ngram/
"""

import math
import time

import numpy as np
from matplotlib.ticker import MaxNLocator

from scratchlm import chapter, data, ngram, plotting
from scratchlm.metrics import interpolate_logprobs, perplexity
from scratchlm.data import context_windows
from scratchlm.models.nplm import NPLM, NPLMConfig
from scratchlm.tokenizers import CharTokenizer
from scratchlm.train import EpochSettings, configure_optimizer, evaluate, token_logprobs, train_epochs

# Settings. PTB: the output layer (V = 10,001 words x h) is ~95% of the flops, so h sets the cost of
# an epoch (about 6 V h flops per token); dropout on the hidden layer and AdamW's weight decay keep
# 4.0M parameters from memorising 0.93M training tokens. An epoch takes ~2 minutes on 2 cores.
PTB_MODEL = dict(context=4, n_embd=128, n_hidden=256, dropout=0.3, weight_decay=0.1)
PTB_TRAIN = EpochSettings(epochs=8, batch_size=512, learning_rate=2e-3, min_lr=0.0, warmup_steps=200,
                          patience=2)
# names: makemore's MLP (characters, '.' starts and ends a name), wider, with dropout.
NAMES_MODEL = dict(n_embd=24, n_hidden=256, dropout=0.1, weight_decay=0.01)   # context: NAMES_CONTEXTS
NAMES_TRAIN = EpochSettings(epochs=10, batch_size=256, learning_rate=3e-3, min_lr=3e-5, warmup_steps=100,
                            patience=3)
NAMES_CONTEXTS = [1, 2, 3, 5, 8]          # 4.8: context sizes n-1, NPLM against an n-gram of order n
KN_ORDERS = (3, 5)
LAMBDAS = np.linspace(0.0, 1.0, 101)      # 4.6: mixture weights tried on valid
GROUPS = {                                # 4.7: word families to find in the embedding space ("may"
                                          # is a modal, not a month: in WSJ text it mostly is)
    "numbers": "one two three four five six seven eight nine ten".split(),
    "months": "january february march april june july august september october november december".split(),
    "days": "monday tuesday wednesday thursday friday".split(),
    "modals": "can could will would may might should must".split(),
    "money": "million billion cents dollars shares".split(),
}
NEIGHBOUR_QUERIES = "three monday january would million stock bank president said computer".split()

run = chapter.parse_args(__doc__)
if run.quick:  # seconds: a slice of each corpus, small models, one epoch
    PTB_MODEL.update(n_embd=16, n_hidden=32)
    PTB_TRAIN = EpochSettings(epochs=1, batch_size=256, learning_rate=1e-2, warmup_steps=10)
    NAMES_MODEL.update(n_hidden=64)
    NAMES_TRAIN = EpochSettings(epochs=1, batch_size=256, learning_rate=1e-2, warmup_steps=10)
    NAMES_CONTEXTS = [1, 3]
results = {"settings": {"ptb_model": PTB_MODEL, "ptb_train": vars(PTB_TRAIN), "names_model": NAMES_MODEL,
                        "names_train": vars(NAMES_TRAIN)}}
t_start = time.perf_counter()


def sentences(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines]


def ppl(logprobs: np.ndarray) -> float:
    """Perplexity of a model that gave these natural log-probabilities to the tokens it scored."""
    return perplexity(-float(np.mean(logprobs)))


# %% 4.1 The data
# Every sentence is `<s> w1 .. wm </s>`; each of w1 .. wm, </s> is predicted once, from the n-1
# tokens before it in its sentence (<s> fills in before the first word). The id stream holds
# `w1 .. wm </s>` for each sentence; `context_windows` adds the <s> padding (exercise 4.1). These
# are exactly the tokens Chapter 2's n-gram models score, so the two kinds of model are judged on
# the same events.
ptb = {split: sentences(data.load_lines("ptb", split)) for split in ("train", "valid", "test")}
if run.quick:
    ptb = {"train": ptb["train"][:2000], "valid": ptb["valid"][:200], "test": ptb["test"][:200]}

# %% 4.2 The n-gram baselines
# Chapter 2's best: interpolated modified Kneser-Ney. Its vocabulary (every training word, <unk>
# included as PTB writes it, plus <s> and </s>) is the NPLM's too, so token ids agree.
kn = {n: ngram.fit(ptb["train"], order=n, smoothing="modified_kneser_ney") for n in KN_ORDERS}
vocab = kn[5].vocab
streams = {split: kn[5].encode(s) for split, s in ptb.items()}      # <s> w1 .. wm </s> <s> ...
scored = {split: ids != vocab.bos_id for split, ids in streams.items()}
ids = {split: streams[split][scored[split]] for split in ptb}       # w1 .. wm </s> w1 ...
kn_logprobs = {(n, split): lm.logprob_ids(streams[split])[scored[split]]
               for n, lm in kn.items() for split in ("valid", "test")}
kn_test_ppl = {n: ppl(kn_logprobs[n, "test"]) for n in KN_ORDERS}
for n in KN_ORDERS:
    print(f"4.2 KN{n}: valid perplexity {ppl(kn_logprobs[n, 'valid']):.1f}, test {kn_test_ppl[n]:.1f} "
          f"({sum(kn[n].sizes()):,} n-grams)")
results["ptb"] = {"vocab_size": len(vocab), "tokens": {s: int(len(v)) for s, v in ids.items()},
                  "kn": {f"kn{n}": {"valid_ppl": ppl(kn_logprobs[n, "valid"]), "test_ppl": kn_test_ppl[n],
                                    "ngrams": int(sum(kn[n].sizes()))} for n in KN_ORDERS}}

# %% 4.3 The model
# With small random weights every logit is near 0, so the first prediction is nearly uniform over
# V words and the loss starts near ln V. A much larger start would mean overconfident initial weights.
config = NPLMConfig(vocab_size=len(vocab), **PTB_MODEL)
windows = {split: context_windows(v, config.context, vocab.bos_id, vocab.eos_id) for split, v in ids.items()}
model = NPLM(config)
initial_loss = evaluate(model, [(windows["valid"][0][:4096], windows["valid"][1][:4096])])
print(f"4.3 NPLM with n-1 = {config.context}, m = {config.n_embd}, h = {config.n_hidden}: "
      f"{model.num_parameters():,} parameters; loss before training {initial_loss:.3f} "
      f"(ln V = {math.log(len(vocab)):.3f})")
results["ptb"]["nplm"] = {"parameters": model.num_parameters(), "initial_loss": initial_loss,
                          "ln_V": math.log(len(vocab))}

# %% 4.4 Training
# One epoch = every training window once, in a new random order, batch by batch. AdamW's learning
# rate warms up, then follows a cosine to zero over the planned epochs; after each epoch the model
# is scored on valid, and training stops when valid has not improved for `patience` epochs (the
# model keeps its best epoch's weights). The training loss is the running mean over the epoch,
# with dropout on, so it runs above what the same weights would score without dropout.
optimizer = configure_optimizer(model, PTB_TRAIN.learning_rate, config.weight_decay)
history = train_epochs(model, optimizer, windows["train"], windows["valid"], PTB_TRAIN,
                       log=lambda line: print("4.4", line))
nplm_logprobs = {split: token_logprobs(model, *windows[split]) for split in ("valid", "test")}
nplm_ppl = {split: ppl(lp) for split, lp in nplm_logprobs.items()}
print(f"4.4 NPLM best epoch {history['best_epoch']}: valid perplexity {nplm_ppl['valid']:.1f}, "
      f"test {nplm_ppl['test']:.1f} (KN5 test {kn_test_ppl[5]:.1f}; "
      f"{np.mean(history['tokens_per_s']):,.0f} training tokens/s)")
results["ptb"]["nplm"].update(valid_ppl=nplm_ppl["valid"], test_ppl=nplm_ppl["test"], history=history,
                              train_seconds=float(sum(history["seconds"])))

fig, ax = plotting.figure()
epochs = history["epoch"]
ax.plot(epochs, np.exp(history["train"]), "o-", label="NPLM train (running mean, dropout on)")
ax.plot(epochs, np.exp(history["valid"]), "o-", label="NPLM valid")
for n, style in zip(KN_ORDERS, ("--", ":")):
    ax.axhline(kn_test_ppl[n], color="0.3", ls=style, lw=1.2, label=f"KN{n} test ({kn_test_ppl[n]:.1f})")
ax.plot([history["best_epoch"]], [nplm_ppl["test"]], "*", ms=12, color=plotting.COLORS[2],
        label=f"NPLM test, best epoch ({nplm_ppl['test']:.1f})")
ax.set_yscale("log")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_xlabel("epoch")
ax.set_ylabel("perplexity")
ax.set_title(f"NPLM on PTB (n-1 = {config.context}, m = {config.n_embd}, h = {config.n_hidden})")
ax.legend()
plotting.save(fig, run.out, "ch04_learning_curves")

# %% 4.5 Where the NPLM beats counting, and where it cannot look
# Sort the test tokens by the longest n-gram ending at them that occurred in training (KN5's trie
# holds every one). Where the full 5-gram was seen, counts are reliable and KN5 is hard to beat;
# where only a bigram or unigram was seen, KN5 backs off to little context while the NPLM still
# reads all four words through their vectors -- that is the generalisation the vectors buy.
idx, _ = kn[5].trie.lookup(streams["test"])
longest = (idx[scored["test"]] >= 0).sum(axis=1)                     # 1..5 for every scored token
buckets = {k: longest == k for k in range(1, 6) if (longest == k).any()}
by_order = {k: {"tokens": int(rows.sum()), "kn5_ppl": ppl(kn_logprobs[5, "test"][rows]),
                "nplm_ppl": ppl(nplm_logprobs["test"][rows])} for k, rows in buckets.items()}
for k, b in by_order.items():
    print(f"4.5 longest seen n-gram = {k}: {b['tokens'] / len(longest):6.1%} of test tokens, "
          f"KN5 perplexity {b['kn5_ppl']:8.1f}, NPLM {b['nplm_ppl']:8.1f}")
results["ptb"]["by_longest_seen_ngram"] = by_order
# The price of the fixed window: whatever lies more than n-1 words back is invisible to the model.
test_ids = ids["test"]
sentence_start = np.flatnonzero(np.concatenate([[True], test_ids[:-1] == vocab.eos_id]))
lengths = np.diff(np.append(sentence_start, len(test_ids)))
history = np.arange(len(test_ids)) - np.repeat(sentence_start, lengths)   # words before each token
beyond = float((history > config.context).mean())
print(f"4.5 {beyond:.1%} of test tokens have more than n-1 = {config.context} words before them in their "
      f"sentence (mean {history.mean():.1f} words); the NPLM sees only the last {config.context}")
results["ptb"]["fraction_with_history_beyond_window"] = beyond

# %% 4.6 A mixture with KN5
# p(w | h) = lambda p_NPLM(w | h) + (1 - lambda) p_KN5(w | h): both are distributions over the same
# words, so the mixture is one too. The two models err on different tokens (4.5), so the mixture
# beats both. lambda is chosen on valid, then test is scored once. `interpolate_logprobs` mixes the two
# models' token log-probabilities without leaving log space (exercise 4.3).
valid_curve = [ppl(interpolate_logprobs(nplm_logprobs["valid"], kn_logprobs[5, "valid"], lam))
               for lam in LAMBDAS]
best_lambda = float(LAMBDAS[int(np.argmin(valid_curve))])
mix_logprobs = interpolate_logprobs(nplm_logprobs["test"], kn_logprobs[5, "test"], best_lambda)
mix_test = ppl(mix_logprobs)
print(f"4.6 mixture: lambda = {best_lambda:.2f} (valid perplexity {min(valid_curve):.1f}); "
      f"test perplexity {mix_test:.1f} (NPLM {nplm_ppl['test']:.1f}, KN5 {kn_test_ppl[5]:.1f})")
for k, rows in buckets.items():  # near the better model on each kind of token, better than both on some
    by_order[k]["mixture_ppl"] = ppl(mix_logprobs[rows])
print("4.6 mixture by longest seen n-gram: "
      + ", ".join(f"{k}: {b['mixture_ppl']:.1f}" for k, b in by_order.items()))
results["ptb"]["mixture"] = {"lambda": best_lambda, "valid_ppl": min(valid_curve), "test_ppl": mix_test,
                             "lambdas": LAMBDAS.tolist(), "valid_ppl_by_lambda": valid_curve}

fig, ax = plotting.figure()
ax.plot(LAMBDAS, valid_curve)
ax.plot([best_lambda], [min(valid_curve)], "o", color=plotting.COLORS[1],
        label=f"best: lambda = {best_lambda:.2f}, valid {min(valid_curve):.1f} (test {mix_test:.1f})")
ax.set_xlabel("lambda (weight of the NPLM; 1 - lambda on KN5)")
ax.set_ylabel("valid perplexity")
ax.set_title("Interpolating the NPLM with the KN 5-gram")
ax.legend()
plotting.save(fig, run.out, "ch04_mixture")

# %% 4.7 What the word vectors learned
# No one told the model that "monday" and "wednesday" are alike; they get nearby vectors because
# they predict the same next words. The neighbour lists of rarer words are noisier. Cosine
# similarity finds each word's neighbours; a 2-D PCA of a few word families (fitted on those words'
# vectors) shows them as clusters.
C = model.C.weight.data.astype(np.float64)
unit = C / np.linalg.norm(C, axis=1, keepdims=True)
neighbours = {}
for word in (w for w in NEIGHBOUR_QUERIES if w in vocab):
    cos = unit @ unit[vocab.index[word]]
    cos[[vocab.index[word], vocab.bos_id]] = -np.inf
    top = np.argsort(-cos)[:8]
    neighbours[word] = [[vocab.words[i], round(float(cos[i]), 3)] for i in top]
    print(f"4.7 nearest to {word!r}: " + ", ".join(w for w, _ in neighbours[word]))
results["ptb"]["nearest_neighbours"] = neighbours

groups = {g: [w for w in words if w in vocab] for g, words in GROUPS.items()}
groups = {g: words for g, words in groups.items() if words}
words = [w for ws in groups.values() for w in ws]
vectors = C[[vocab.index[w] for w in words]]
vectors -= vectors.mean(axis=0)
_, s, vt = np.linalg.svd(vectors, full_matrices=False)
xy = vectors @ vt[:2].T
results["ptb"]["embedding_pca"] = {"words": words, "xy": xy.round(4).tolist(),
                                   "explained_variance": (s[:2] ** 2 / (s ** 2).sum()).tolist()}
fig, ax = plotting.figure(width=7, height=6)
start = 0
for color, (group, ws) in zip(plotting.COLORS, groups.items()):
    pts = xy[start:start + len(ws)]
    ax.scatter(*pts.T, color=color, label=group)
    for (px, py), w in zip(pts, ws):
        ax.annotate(w, (px, py), xytext=(3, 3), textcoords="offset points", fontsize=8, color=color)
    start += len(ws)
ax.set_xlabel("principal component 1")
ax.set_ylabel("principal component 2")
ax.set_title("NPLM word vectors (rows of C), 2-D PCA of the labelled words")
ax.legend()
plotting.save(fig, run.out, "ch04_embeddings")

# %% 4.8 Characters: names, and the width of the window
# makemore's MLP is this model on characters: '.' both pads the start and ends each name, so with
# n-1 = 3 "emma" gives the windows (... -> e), (..e -> m), (.em -> m), (emm -> a), (mma -> .).
# NLL is in nats per character, the closing '.' included -- the tokens a character n-gram model
# scores as well (`<s> e m m a </s>`), so the two compare directly, window for window.
#
# Two lessons in the numbers. Widening the window helps, with shrinking returns, and it costs the
# NPLM only m more columns of H per character; but nothing beyond the window can ever help. And
# with 27 symbols the n-gram contexts are dense enough to count, so Kneser-Ney keeps up with the
# NPLM or beats it here: the vectors pay off where contexts are sparse -- 10,000 words, not 27
# letters (compare 4.5).
names = {split: data.load_lines("names", split) for split in ("train", "valid")}
if run.quick:
    names = {"train": names["train"][:2000], "valid": names["valid"][:300]}
chars = CharTokenizer.fit("." + "".join(names["train"]))
dot = int(chars.encode(".")[0])
name_ids = {split: chars.encode("".join(n + "." for n in ns)) for split, ns in names.items()}
name_sents = {split: [list(n) for n in ns] for split, ns in names.items()}
sweep = {"context": NAMES_CONTEXTS, "nplm_valid_nll": [], "ngram_valid_nll": [], "nplm_parameters": [],
         "epochs": []}
for k in NAMES_CONTEXTS:
    names_config = NPLMConfig(vocab_size=chars.vocab_size, **{**NAMES_MODEL, "context": k})
    names_windows = {split: context_windows(v, k, dot, dot) for split, v in name_ids.items()}
    names_model = NPLM(names_config)
    names_history = train_epochs(names_model, configure_optimizer(names_model, NAMES_TRAIN.learning_rate,
                                                                  names_config.weight_decay),
                                 names_windows["train"], names_windows["valid"], NAMES_TRAIN, log=lambda line: None)
    kn_names = ngram.fit(name_sents["train"], order=k + 1, smoothing="modified_kneser_ney")
    kn_eval = kn_names.evaluate(name_sents["valid"])
    sweep["nplm_valid_nll"].append(names_history["best_valid"])
    sweep["ngram_valid_nll"].append(-kn_eval.logprob / kn_eval.tokens)
    sweep["nplm_parameters"].append(names_model.num_parameters())
    sweep["epochs"].append(len(names_history["epoch"]))
    print(f"4.8 names, n-1 = {k}: NPLM ({names_model.num_parameters():,} parameters) validation NLL "
          f"{names_history['best_valid']:.4f} nats/char; modified KN {k + 1}-gram {sweep['ngram_valid_nll'][-1]:.4f}")
best_k = NAMES_CONTEXTS[int(np.argmin(sweep["nplm_valid_nll"]))]
names_nll = min(sweep["nplm_valid_nll"])
print(f"4.8 names: best NPLM (n-1 = {best_k}) validation NLL {names_nll:.4f} nats/char "
      f"(makemore's lecture 5: 1.99 for a deeper, hierarchical MLP with batch norm, 76K parameters, on its "
      f"own 80/10/10 split)")
results["names"] = {"vocab_size": chars.vocab_size, "valid_nll": names_nll, "best_context": best_k,
                    "context_sweep": sweep}

fig, ax = plotting.figure()
ax.plot(sweep["context"], sweep["nplm_valid_nll"], "o-", label="NPLM")
ax.plot(sweep["context"], sweep["ngram_valid_nll"], "s-", label="modified Kneser-Ney, order n")
ax.set_xlabel("context n-1 (characters)")
ax.set_ylabel("validation NLL (nats per character)")
ax.set_title("names: what a wider window buys")
ax.legend()
plotting.save(fig, run.out, "ch04_names_context")

results["seconds"] = time.perf_counter() - t_start
print(f"4.8 chapter finished in {results['seconds'] / 60:.1f} minutes")
chapter.write_results(run, "ch04_results", results)
