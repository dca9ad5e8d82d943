"""Chapter 5 — Tokenization: words, characters, bytes, and the subwords in between.

A language model predicts the next token, so what a token is decides what the model can say.
This chapter measures the choice:

    5.1  Words run out: the share of PTB's validation words that a vocabulary built from the first
         k training words has never seen (the OOV rate), as k grows        -> ch05_oov.png
    5.2  Characters and bytes never run out, but make sequences long; Chinese shows why bytes,
         not characters, are the safe base
    5.3  Byte-pair encoding starts from bytes and merges the most frequent adjacent pair, again and
         again: its first merges on Shakespeare, printed
    5.4  What BPE buys: bytes per token as the vocabulary grows, English and Chinese
                                                                           -> ch05_compression.png
    5.5  Zipf's law: the rank-frequency curve of words and of BPE tokens -> ch05_zipf.png

Run:  python chapters/ch05_tokenization.py [--quick] [--out DIR]     (numbers: ch05_results.json)
"""

import re
import time
from collections import Counter

import numpy as np

from scratchlm import data, plotting
from scratchlm.chapter import parse_args, write_results
from scratchlm.tokenizers import ByteBPE, CharTokenizer, WordVocab

run = parse_args(__doc__)

# Settings ------------------------------------------------------------------------------------
OOV_TRAIN_WORDS = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, None]  # None: all 887,521
BPE_VOCABS = [256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192]
EXAMPLE_VOCABS = [1024, 8192]   # the BPE vocabularies 5.3 segments an example sentence with
ZIPF_VOCAB = 4096               # the BPE vocabulary whose token frequencies 5.5 plots
ENGLISH_CHARS = None            # characters of tinyshakespeare's train split to use (None: all)
N_FIRST_MERGES = 20             # merges printed in 5.3
if run.quick:
    OOV_TRAIN_WORDS = [1_000, 10_000, 100_000]
    BPE_VOCABS = [256, 320, 384, 512]
    EXAMPLE_VOCABS = [384, 512]
    ZIPF_VOCAB = 512
    ENGLISH_CHARS = 100_000

results = {}

# %% 5.1 Words run out
# PTB has already replaced all but the 10k most frequent words by the literal token <unk>, so
# 4.95% of its validation words are unknown to any vocabulary. Below that floor, the question is
# how many of the remaining words a vocabulary built from the first k training words has seen.
ptb_train = data.load_text("ptb", "train").split()
ptb_valid = data.load_text("ptb", "valid").split()
literal_unk = ptb_valid.count("<unk>") / len(ptb_valid)
print(f"5.1 PTB: {len(ptb_train):,} train words, {len(ptb_valid):,} valid words, "
      f"{literal_unk:.2%} of valid is PTB's own <unk>")
oov = {"train_words": [], "vocab_size": [], "oov_rate": []}
for k in OOV_TRAIN_WORDS:
    seen = ptb_train[:k]
    vocab = WordVocab.fit(seen)
    rate = float(np.mean(vocab.ids(ptb_valid) == vocab.unk_id))
    n = len(seen)
    oov["train_words"].append(n)
    oov["vocab_size"].append(vocab.vocab_size - 3)  # distinct words, specials not counted
    oov["oov_rate"].append(rate)
    print(f"    first {n:>7,} train words: {vocab.vocab_size - 3:>6,} distinct; OOV rate on valid {rate:6.2%}")
results["oov"] = {**oov, "literal_unk_rate": literal_unk}

fig, ax = plotting.figure(width=5.5, height=3.6)
ax.semilogx(oov["train_words"], 100 * np.array(oov["oov_rate"]), "o-", label="words unseen in the first k")
ax.axhline(100 * literal_unk, color=plotting.COLORS[1], ls="--", label="PTB's own <unk> (floor)")
ax.set(xlabel="training words k", ylabel="OOV rate on PTB valid (%)", ylim=(0, None),
       title="A word vocabulary never covers new text")
ax.legend()
plotting.save(fig, run.out, "ch05_oov")

# %% 5.2 Characters and bytes
# Characters never run out in English (65 of them cover Shakespeare) but Chinese has thousands,
# and a character seen only in the test text is again out of vocabulary. The 256 byte values of
# UTF-8 cover every text there is, at 3 bytes per Chinese character.
english = {split: data.load_text("tinyshakespeare", split)[:ENGLISH_CHARS] for split in ("train", "valid")}
chinese = {split: data.load_text("chinese-classics", split) for split in ("train", "valid")}
results["characters"] = {}
for name, text in (("tinyshakespeare", english), ("chinese-classics", chinese)):
    chars = CharTokenizer.fit(text["train"], unk=True)
    unseen = float(np.mean(chars.encode(text["valid"]) == 0))
    bytes_per_char = len(text["train"].encode()) / len(text["train"])
    results["characters"][name] = {"distinct_chars": len(chars.chars), "bytes_per_char": bytes_per_char,
                                   "valid_char_oov_rate": unseen}
    print(f"5.2 {name}: {len(chars.chars):,} distinct characters, {bytes_per_char:.2f} bytes per character, "
          f"{unseen:.2%} of valid characters unseen in train")

# %% 5.3 Byte-pair encoding
# Start from the 256 bytes; count every adjacent pair of tokens inside the pre-tokenized chunks
# (words with their leading space, runs of digits, punctuation, Chinese clauses); merge the most
# frequent pair into a new token; repeat. Each vocabulary size is a prefix of the largest one.
t0 = time.perf_counter()
bpe = {"tinyshakespeare": ByteBPE.train(english["train"], max(BPE_VOCABS)),
       "chinese-classics": ByteBPE.train(chinese["train"], max(BPE_VOCABS))}
print(f"5.3 trained BPE to {max(BPE_VOCABS)} tokens on both corpora in {time.perf_counter() - t0:.2f} s")


def show(tokenizer: ByteBPE, token: int) -> str:
    """A token as text; bytes that are not whole UTF-8 characters shown as \\xNN."""
    return repr(tokenizer.vocab[token].decode("utf-8", errors="backslashreplace"))


first = []
for k, (a, b) in enumerate(bpe["tinyshakespeare"].merges[:N_FIRST_MERGES]):
    new = 256 + k
    first.append(f"{show(bpe['tinyshakespeare'], a)} + {show(bpe['tinyshakespeare'], b)} -> "
                 f"{show(bpe['tinyshakespeare'], new)}")
    print(f"    merge {k + 1:2d}: {first[-1]}")
results["first_merges"] = first

examples = {}
for name, sentence in (("tinyshakespeare", "First Citizen: Before we proceed any further, hear me speak."),
                       ("chinese-classics", chinese["valid"].splitlines()[0][:20])):
    for vocab_size in EXAMPLE_VOCABS:
        tok = bpe[name].truncated(vocab_size)
        pieces = [tok.vocab[i].decode("utf-8", errors="backslashreplace") for i in tok.encode(sentence)]
        examples[f"{name}/{vocab_size}"] = pieces
        print(f"    {name}, {vocab_size} tokens: {len(pieces)} tokens |{'|'.join(pieces)}|")
results["segmentations"] = examples

# %% 5.4 What BPE buys: bytes per token
# The longer the average token, the more text fits in a context window and the fewer steps a model
# takes per sentence. Measured on held-out text (valid) and on the text BPE was trained on.
compression = {"vocab_sizes": BPE_VOCABS}
for name, text in (("tinyshakespeare", english), ("chinese-classics", chinese)):
    compression[name] = {}
    for split in ("train", "valid"):
        n_bytes = len(text[split].encode())
        compression[name][split] = [n_bytes / len(bpe[name].truncated(v).encode(text[split])) for v in BPE_VOCABS]
    print(f"5.4 {name}: bytes per valid token " +
          ", ".join(f"{v}: {c:.2f}" for v, c in zip(BPE_VOCABS, compression[name]["valid"])))
english_words = english["valid"].split()
compression["tinyshakespeare_bytes_per_word"] = len(english["valid"].encode()) / len(english_words)
results["compression"] = compression

fig, ax = plotting.figure(width=6.0, height=4.0)
for color, name, label in ((plotting.COLORS[0], "tinyshakespeare", "Shakespeare (English)"),
                           (plotting.COLORS[1], "chinese-classics", "Chinese classics")):
    ax.plot(BPE_VOCABS, compression[name]["valid"], "o-", color=color, label=f"{label}, held-out text")
    ax.plot(BPE_VOCABS, compression[name]["train"], ":", color=color, label=f"{label}, training text")
ax.axhline(compression["tinyshakespeare_bytes_per_word"], color=plotting.COLORS[0], ls="--", lw=1)
ax.text(BPE_VOCABS[0], compression["tinyshakespeare_bytes_per_word"], " one token per English word",
        va="bottom", color=plotting.COLORS[0], fontsize=8)
ax.axhline(3.0, color=plotting.COLORS[1], ls="--", lw=1)
ax.text(BPE_VOCABS[0], 3.0, " one token per Chinese character", va="bottom", color=plotting.COLORS[1], fontsize=8)
ax.set_xscale("log", base=2)
ax.set_xticks(BPE_VOCABS, [str(v) for v in BPE_VOCABS], rotation=45)
ax.minorticks_off()
ax.set(xlabel="BPE vocabulary size", ylabel="UTF-8 bytes per token", ylim=(0, 6),
       title="Byte-pair encoding: longer tokens as the vocabulary grows")
ax.legend(fontsize=8, loc="lower right")
plotting.save(fig, run.out, "ch05_compression")

# %% 5.5 Zipf's law
# Word frequencies fall off as a power of their rank, f(r) ~ r^-s with s near 1: a few words are
# everywhere and most words are rare, which is why word vocabularies never close. BPE keeps the
# frequent words whole and spells the rare ones in pieces, so far fewer of its types are rare: on
# Shakespeare 1.8% of the BPE-4096 types occur once in train against 58% of the word types, and
# types seen under 10 times carry 0.7% of the tokens instead of 23%.
# ("Words" here are whitespace-separated, punctuation attached, as a word-level model would see them.)
zipf_bpe = bpe["tinyshakespeare"].truncated(ZIPF_VOCAB)
units = {"words": english["train"].split(), f"BPE-{ZIPF_VOCAB} tokens": zipf_bpe.encode(english["train"]).tolist()}
zipf = {}
fig, ax = plotting.figure(width=5.5, height=4.0)
for (label, tokens), color in zip(units.items(), plotting.COLORS):
    counts = np.array(sorted(Counter(tokens).values(), reverse=True))
    ranks = np.arange(1, len(counts) + 1)
    fit = (ranks >= 10) & (ranks <= min(1000, len(counts)))  # the straight middle of the curve
    slope = float(np.polyfit(np.log(ranks[fit]), np.log(counts[fit]), 1)[0])
    zipf[label] = {"tokens": len(tokens), "types": len(counts), "top_count": int(counts[0]),
                   "zipf_exponent": -slope, "types_seen_once": float(np.mean(counts == 1)),
                   "tokens_of_types_seen_under_10_times": float(counts[counts < 10].sum() / len(tokens))}
    ax.loglog(ranks, counts, color=color, label=f"{label} ({len(counts):,} types), slope {slope:.2f}")
    print(f"5.5 {label}: {len(tokens):,} tokens, {len(counts):,} types, Zipf exponent {-slope:.2f} "
          f"(ranks 10-{ranks[fit][-1]}), {np.mean(counts == 1):.1%} of types seen once")
top_word_count, n_word_types = zipf["words"]["top_count"], zipf["words"]["types"]
ax.loglog([1, n_word_types], [top_word_count, top_word_count / n_word_types], "k--", lw=1, label="slope -1")
ax.set(xlabel="rank", ylabel="count in Shakespeare (train)", title="Zipf's law: words vs BPE tokens")
ax.legend(fontsize=8)
plotting.save(fig, run.out, "ch05_zipf")
results["zipf"] = zipf

write_results(run, "ch05_results", results)
print(f"figures and ch05_results.json in {run.out}")
