"""Chapter 9 — Pretrained Transformers: the encoder (BERT), the encoder-decoder (T5), the decoder (GPT),
and the modern decoder.

Today's language models come in three architectures: decoders (GPT, Llama), encoders (BERT) and
encoder-decoders (T5, Whisper). They are one design. All three are stacks of the same Transformer
block (scratchlm/models/gpt.py's Block) and differ in two switches:

    which keys a query may see     causal (a decoder: only the past) or bidirectional (an encoder:
                                   the whole sequence)
    a second stack                 an encoder-decoder's decoder also attends to the encoder's output
                                   (cross-attention)

and in the pretraining objective that each switch allows. A decoder can be trained to predict the
next word, and generating text is then natural, but it never conditions on the words to come. An
encoder sees both sides, so it has to be trained to fill in hidden words (masked language
modelling). An encoder-decoder reads one sequence and writes another: T5 is trained to write back
spans of text that were cut out of its input (span corruption). This script shows what each can do:

    9.1  the three attention masks, read from the models' own attention modules  -> ch09_masks.png
    9.2  pretraining GPT (next word), BERT (masked words) and T5 (corrupted spans) on the same Penn
         Treebank text, with about the same number of parameters and the same number of steps
    9.3  what the right context buys: the same test words predicted from the left only (GPT; BERT
         and T5 with the text after the word cut off) and from both sides (BERT with the word masked,
         T5 with it cut out as a span), overall, by word frequency and by position; and why an MLM
         "perplexity" is not a language model's                               -> ch09_context.png
    9.4  a task made for an encoder-decoder: number words -> digits, on numbers never seen in
         training; T5 against a decoder-only model of about the same size  -> ch09_seq2seq.png
    9.5  GPT-2-style against the modern decoder (RMSNorm, RoPE, SwiGLU) on Chapter 6's
         tinyshakespeare recipe, in 1000 steps instead of 2000                -> ch09_modern.png

Run:      python chapters/ch09_pretrained_transformers.py [--quick]   (full run: 9.9 minutes on 2 idle cores)
Figures:  figures/ch09_masks.png, ch09_context.png, ch09_seq2seq.png, ch09_modern.png; numbers in
          figures/ch09_results.json
Library:  scratchlm/models/bert.py, scratchlm/models/t5.py, scratchlm/models/gpt.py,
          scratchlm/models/attention.py, scratchlm/models/attention_products.py, scratchlm/models/masks.py,
          scratchlm/objectives.py, scratchlm/tasks.py, scratchlm/train.py, scratchlm/generate.py
"""

import dataclasses
import math
import time

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm import chapter, data, plotting
from scratchlm.autograd import no_grad
from scratchlm.generate import generate
from scratchlm.metrics import nats_to_bits
from scratchlm.models.attention import CrossAttention, record_attention
from scratchlm.models.bert import BERT, BERTConfig, mlm_loss
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.models.masks import visible_keys, visible_mask
from scratchlm.models.t5 import T5, T5Config, seq2seq_loss
from scratchlm.objectives import IGNORE, Seq2SeqBatch, bert_mask, span_corrupt
from scratchlm.tasks import NumberWords, group_by_length, split_numbers
from scratchlm.tokenizers import MASK, PAD, CharTokenizer, WordVocab, sentinels
from scratchlm.train import TrainConfig, configure_optimizer, evaluate, token_logprobs, train

# Settings.
# 9.2-9.3: word-level Penn Treebank (Mikolov's 10k vocabulary), windows of 64 words. GPT and BERT have
# 4 blocks; T5 has 2 in its encoder and 2 in its decoder, whose cross-attention adds a quarter to a
# block, so T5 has a few per cent more parameters (9.2 prints the counts). Same text, same steps.
# Positions are rotary (RoPE, 9.5) in all three. With learned position vectors instead (try
# position="learned"), BERT spends these 1000 steps near the unigram level (about 6.7 nats per
# masked test word): a decoder predicting the next word has its best clue, the current word, in its
# own stream from the start, while BERT's masked position holds only <mask> and must find its
# neighbours through position vectors it has yet to learn; with RoPE every attention score depends
# on the distance between the two words from the first step.
PTB_WIDTH = dict(n_head=4, n_embd=128, block_size=64, dropout=0.0, position="rope")
PTB_LAYERS = 4                            # GPT and BERT; T5: half in each stack
PTB_TRAIN = TrainConfig(max_iters=1000, learning_rate=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=1000,
                        weight_decay=0.1, eval_interval=100, eval_iters=8)
PTB_BATCH = 12
N_SENTINELS = 8                           # more than the spans of a 64-word window ever need (5)
CONTEXT_WINDOWS = 48                      # 9.3: test windows, each scored at its 63 positions after the first
# 9.4: numbers below a million; T5 2 + 2 blocks against a GPT of 5 (about the same parameters)
NUMBERS_BOUND, NUMBERS_VALID, NUMBERS_TEST = 10**6, 500, 2000
NUMBERS_WIDTH = dict(n_head=4, n_embd=64, dropout=0.0)
NUMBERS_T5_LAYERS, NUMBERS_GPT_LAYERS = 2, 5
NUMBERS_TRAIN = TrainConfig(max_iters=1500, learning_rate=3e-3, min_lr=3e-4, warmup_iters=100, lr_decay_iters=1500,
                            weight_decay=0.1, eval_interval=150, eval_iters=4)
NUMBERS_BATCH = 96
# 9.5: Chapter 6's baby GPT and its recipe (nanoGPT's CPU run on tinyshakespeare characters), in 1000
# steps instead of 2000 (the cosine schedule shortened to match) to fit the chapter's time budget
MODERN_MODEL = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False, tie_weights=True)
MODERN_TRAIN = TrainConfig(max_iters=1000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=1000,
                           weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=100, eval_iters=10)
MODERN_BATCH = 12
TRAIN_WORDS = TRAIN_CHARS = None          # the whole training texts

run = chapter.parse_args(__doc__)
if run.quick:
    PTB_WIDTH = dict(n_head=2, n_embd=32, block_size=32, dropout=0.0, position="rope")
    PTB_LAYERS = 2
    PTB_TRAIN = TrainConfig(max_iters=30, warmup_iters=5, lr_decay_iters=30, learning_rate=3e-3, eval_interval=15,
                            eval_iters=2)
    PTB_BATCH, CONTEXT_WINDOWS, TRAIN_WORDS = 8, 4, 50_000
    NUMBERS_BOUND, NUMBERS_VALID, NUMBERS_TEST = 10**4, 50, 100
    NUMBERS_WIDTH = dict(n_head=2, n_embd=32, dropout=0.0)
    NUMBERS_T5_LAYERS, NUMBERS_GPT_LAYERS = 1, 2
    NUMBERS_TRAIN = TrainConfig(max_iters=40, warmup_iters=5, lr_decay_iters=40, learning_rate=3e-3,
                                eval_interval=20, eval_iters=2)
    NUMBERS_BATCH = 32
    MODERN_MODEL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32)
    MODERN_TRAIN = TrainConfig(max_iters=30, warmup_iters=5, lr_decay_iters=30, eval_interval=15, eval_iters=2)
    TRAIN_CHARS = 50_000
results = {}
seconds = {}                              # per section: the full run's time budget is kept section by section
t_start = time.perf_counter()


def section_done(name: str) -> None:
    seconds[name] = time.perf_counter() - t_start - sum(seconds.values())


# %% 9.1 Three masks
# Which keys a query may see is all that tells the three kinds of attention apart. Query i always sees
# a prefix of the keys, j < hi_i (scratchlm/models/masks.py, exercise 9.1):
#   causal         GPT, T5's decoder       hi_i = i + 1: itself and what came before
#   bidirectional  BERT, T5's encoder      hi_i = L: every real token of its row
#   cross          T5's decoder over the   hi_i = L of the source: all of it, Tq != Tk
#                  encoder's output
# where L counts the real tokens of a row in a right-padded batch (key_lengths): padding is never
# attended to. The models work on Penn Treebank words, one vocabulary for the three: Mikolov's 10k
# words (with <unk> and the sentence end </s>), then the special tokens the objectives need, after
# every word's id: <pad>, BERT's <mask>, T5's sentinels <extra_id_0>, <extra_id_1>, ...
lines = {split: data.load_lines("ptb", split) for split in ("train", "valid", "test")}
tok = WordVocab.fit(" ".join(lines["train"])).with_specials([PAD, MASK, *sentinels(N_SENTINELS)])
ids = {split: tok.encode_lines(ls) for split, ls in lines.items()}  # one stream per split, </s> after each sentence
if TRAIN_WORDS:
    ids["train"] = ids["train"][:TRAIN_WORDS]
counts = np.bincount(ids["train"], minlength=tok.vocab_size)

# The three models of 9.2, built here and trained there. Each attention module can record the weights
# of its last forward pass (record_attention). Untrained, a model's scores are all near 0, so every
# query spreads its weight evenly over the keys it may see: the weights draw the mask itself.
models = {"GPT": GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=PTB_LAYERS, **PTB_WIDTH)),
          "BERT": BERT(BERTConfig(vocab_size=tok.vocab_size, n_layer=PTB_LAYERS, **PTB_WIDTH)),
          "T5": T5(T5Config(vocab_size=tok.vocab_size, n_layer=PTB_LAYERS // 2, **PTB_WIDTH))}

# Two sentences of the valid split as a right-padded batch: row 0 is the shorter, so its last columns
# are padding (<pad>), which no query may attend to (key_lengths = the real tokens of each row).
sentences = [tok.encode(lines["valid"][i])[:PTB_WIDTH["block_size"] // 2] for i in (0, 4)]
lengths = np.array([len(s) for s in sentences])
batch = data.pad_sequences(sentences, pad=tok.pad_id)                          # (2, L)
# T5's input: the same rows with spans replaced by sentinels; its decoder writes them out
corrupted = span_corrupt(batch, tok.sentinel_ids(), lengths=lengths, pad_id=tok.pad_id,
                         rng=np.random.default_rng(run.seed))
padding = {"GPT": None, "BERT": lengths, "T5": corrupted.src_lengths}   # real keys of each row, per model

recorded = {}
with no_grad():
    for name, model in models.items():
        with record_attention(model) as modules:
            if name == "GPT":
                model(batch[:1, :lengths[0]])                  # a decoder needs no padding mask: one row
            elif name == "BERT":
                model(batch, key_lengths=lengths)
            else:
                model(corrupted.src, corrupted.src_lengths, corrupted.dec_in)
        recorded[name] = modules


def mask_of(name: str, module) -> tuple[bool, np.ndarray | None]:
    """(causal, key_lengths) of an attention module of model `name`: a causal self-attention needs no
    padding mask (a query never sees the padding after it); the others see the real keys of their row
    (T5's cross-attention: those of the source)."""
    causal = getattr(module, "causal", False)                # CrossAttention: never causal
    return causal, None if causal else padding[name]


# Check: in every layer and head of every attention module, the weights are > 0 exactly on the keys
# visible_keys allows (exercise 9.1).
n_checked, agree = 0, True
for name, modules in recorded.items():
    for m in modules:
        P = m.last_weights                                   # (B, n_head, Tq, Tk)
        mask = visible_mask(*P.shape[2:], *mask_of(name, m))  # (Tq, Tk), or (B, Tq, Tk) when padded
        agree &= bool(np.array_equal(P > 0, np.broadcast_to(mask[..., None, :, :] if mask.ndim == 3 else mask,
                                                            P.shape)))
        n_checked += 1
print(f"9.1 {n_checked} attention modules recorded; their weights are nonzero exactly where visible_keys "
      f"says a query may look: {agree}")

# The figure: head 1 of the first layer of each kind of attention, row 0 of the batch, words on the axes
words = {"batch": [tok.decode([i]) for i in batch[0]], "src": [tok.decode([i]) for i in corrupted.src[0]],
         "dec": ["<pad> (start)"] + [tok.decode([i]) for i in corrupted.dec_in[0, 1:]]}
n_dec = int((corrupted.targets[0] != IGNORE).sum())          # row 0's decoder positions (the rest is padding)
t5_modules = recorded["T5"]
panels = [
    ("GPT", "GPT: causal self-attention", recorded["GPT"][0], words["batch"][:lengths[0]], words["batch"][:lengths[0]]),
    ("BERT", "BERT: bidirectional, padded batch", recorded["BERT"][0], words["batch"], words["batch"]),
    ("T5", "T5 decoder: causal self-attention", next(m for m in t5_modules if getattr(m, "causal", False)),
     words["dec"][:n_dec], words["dec"][:n_dec]),
    ("T5", "T5 decoder: cross-attention", next(m for m in t5_modules if isinstance(m, CrossAttention)),
     words["dec"][:n_dec], words["src"]),
]
fig, axes = plotting.figure(1, len(panels), width=4.2, height=4.6, layout="constrained")
mask_summary = {}
for ax, (name, title, module, rows, cols) in zip(axes, panels):
    P = module.last_weights[0, 0, :len(rows), :len(cols)]   # row 0 of the batch, head 1: (Tq, Tk)
    causal, key_lengths = mask_of(name, module)
    hi = visible_keys(*P.shape, causal, None if key_lengths is None else key_lengths[0])   # (Tq,)
    # each row scaled to its largest weight: an untrained head's row is flat over the keys it may see
    ax.imshow(P / P.max(axis=1, keepdims=True), cmap="Blues", vmin=0, vmax=1.2)
    edge = np.repeat(hi, 2) - 0.5, np.stack([np.arange(len(hi)) - 0.5, np.arange(len(hi)) + 0.5], 1).ravel()
    ax.plot(*edge, color=plotting.COLORS[1], linewidth=1.2)  # right edge of each query's visible keys
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=6)
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.tick_params(length=0, pad=1)
    ax.grid(False)
    ax.set_title(f"{title}\n({P.shape[0]} queries x {P.shape[1]} keys)", fontsize=9)
    mask_summary[title] = {"queries": int(P.shape[0]), "keys": int(P.shape[1]), "visible_keys": hi.tolist()}
fig.suptitle("Where each query may look (row: query, column: key): the weights of untrained models, each row "
             "scaled to its maximum, and the edge of visible_keys (line)")
plotting.save(fig, run.out, "ch09_masks")
results["masks"] = {"modules_checked": n_checked, "weights_match_visible_keys": agree, "panels": mask_summary}
section_done("9.1")


# %% 9.2 Three objectives on the same text
# Every step draws the same 12 windows of 64 words for all three models (one generator for the
# windows, seeded alike), and each objective makes its own inputs and targets from them:
#   GPT   next word: inputs w_1..w_T, targets w_2..w_T+1: T predictions per window, each from the left
#   BERT  masked words (objectives.bert_mask, exercise 9.2): 15% of the words chosen, of those 80%
#         replaced by <mask>, 10% by a random word, 10% left as they are; predict the chosen ones
#   T5    span corruption (objectives.span_corrupt, exercises 9.3-9.4): 15% of the words cut out in
#         spans of mean length 3, each span replaced by a sentinel; the decoder writes
#         "<extra_id_0> span 1 <extra_id_1> span 2 ... <extra_id_K>"
# BERT predicts 15% of the words and T5 writes about a quarter as many tokens as it reads (the spans'
# words and their sentinels), so per step GPT gets several times more predictions to learn from: one
# reason decoders are cheap to pretrain.
# BERT's loss (bert.mlm_loss) runs its output layer on the chosen positions only (the other 85% have no
# target), as BERT's own code does.
def window_stream(split: str, seed: int):
    """The same sequence of (B, T) windows for every model: next() -> (inputs, next-word targets)."""
    rng = np.random.default_rng(seed)
    while True:
        yield data.get_batch(ids[split], PTB_BATCH, PTB_WIDTH["block_size"], rng=rng)


def mlm_batch(windows: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    return bert_mask(windows, tok.mask_id, tok.vocab_size, tok.special_ids(), rng=rng)


def span_batch(windows: np.ndarray, rng):
    return span_corrupt(windows, tok.sentinel_ids(), pad_id=tok.pad_id, rng=rng)


def n_predictions(batch) -> int:
    """How many targets a batch of any of the three objectives holds."""
    targets = batch.targets if isinstance(batch, Seq2SeqBatch) else batch[1]
    return int((np.asarray(targets) != IGNORE).sum())


objectives = {  # name -> (make a batch from windows, loss_fn)
    "GPT": (lambda w, rng: w, None),                                          # (inputs, targets) as they are
    "BERT": (lambda w, rng: mlm_batch(w[0], rng), mlm_loss),
    "T5": (lambda w, rng: span_batch(w[0], rng), seq2seq_loss),
}
valid_stream = window_stream("valid", run.seed + 1)
valid_windows = [next(valid_stream) for _ in range(PTB_TRAIN.eval_iters)]
pretrain = {}
for name, model in models.items():
    make, loss_fn = objectives[name]
    fixed = np.random.default_rng(run.seed + 2)                               # the same masks at every evaluation
    eval_batches = {"valid": [make(w, fixed) for w in valid_windows]}
    stream = window_stream("train", run.seed)
    optimizer = configure_optimizer(model, PTB_TRAIN.learning_rate, PTB_TRAIN.weight_decay,
                                    (PTB_TRAIN.beta1, PTB_TRAIN.beta2))
    history = train(model, optimizer, lambda r: make(next(stream), r), PTB_TRAIN, eval_batches=eval_batches,
                    loss_fn=loss_fn, log=lambda line: print(f"9.2 {name:4s} {line}"))
    targets_per_step = int(np.mean([n_predictions(b) for b in eval_batches["valid"]]))
    pretrain[name] = {"parameters": model.num_parameters(), "history": history,
                      "valid_loss": history["valid"][-1], "targets_per_step": targets_per_step,
                      "ms_per_step": float(np.mean(history["ms_per_step"][1:]))}
for name, p in pretrain.items():
    print(f"9.2 {name}: {p['parameters']:,} parameters, {p['targets_per_step']} predictions per step, valid loss "
          f"{p['valid_loss']:.3f} nats on its own objective, {p['ms_per_step']:.0f} ms/step")
print("9.2 the three valid losses score different predictions (next words, masked words, spans): they are not "
      "comparable; 9.3 scores the three models on the same words")
results["pretraining"] = {"train_config": dataclasses.asdict(PTB_TRAIN), "batch_size": PTB_BATCH,
                          "configs": {n: dataclasses.asdict(m.config) for n, m in models.items()}, **pretrain}
section_done("9.2")


# %% 9.3 What the right context buys
# The same test words, scored five ways (and by their unigram frequency, for reference). Each test
# window holds T words w_0..w_{T-1}; for every position t >= 1:
#   GPT                 -ln p(w_t | w_0..w_{t-1})              the left context (t words of it)
#   BERT, both sides    -ln p(w_t | the window, w_t masked)    t words on the left, T-1-t on the right
#   BERT, left only     the same, with the window cut after w_t (key_lengths = t + 1: the words to
#                       the right are padding no query sees; training windows end anywhere, so BERT
#                       has met words with nothing to their right)
#   T5, both sides      -ln p(w_t | the window with w_t cut out as a one-word span), the decoder
#                       writing "<extra_id_0> w_t"
#   T5, left only       the same, the source cut after the sentinel
# Within BERT (and within T5) the two numbers differ only in the right context: same model, same
# words, same left context. That difference is what the right context buys: four tenths of a nat for
# BERT here, on words of every frequency, most on the frequent ones. Between GPT and BERT the training
# differs too: in the same steps GPT learned from every next word, BERT from 15% of the words (9.2),
# and after 1000 steps GPT's left-only loss is a nat below BERT's two-sided one. T5 after 1000 steps
# writes a span's word at about the unigram level, with or without the right context: its decoder
# has yet to learn to find the sentinel in the source and read its neighbours there (the number task
# of 9.4 shows that it can learn to read a source). Learning from fewer predictions per step, both
# need more steps than GPT to use what they see; how many at this size is an experiment to try (raise
# PTB_TRAIN.max_iters). The unigram frequencies of the training text (no context at all) are where
# every model starts from.
T = PTB_WIDTH["block_size"]
test_windows = ids["test"][:CONTEXT_WINDOWS * T].reshape(CONTEXT_WINDOWS, T)                 # (N, T)
for m in models.values():
    m.eval()
gpt_nll = -token_logprobs(models["GPT"], test_windows[:, :-1], test_windows[:, 1:])   # (N, T-1): positions 1..T-1
positions = np.arange(1, T)
row_of, at = np.divmod(np.arange(CONTEXT_WINDOWS * (T - 1)), T - 1)                  # one row per scored word
at = at + 1
masked = test_windows[row_of].copy()                                                    # (N (T-1), T)
masked[np.arange(len(at)), at] = tok.mask_id
truth = test_windows[row_of, at]
one_word = span_corrupt(test_windows[row_of], tok.sentinel_ids(), pad_id=tok.pad_id,
                        noise=np.arange(T) == at[:, None])                              # w_t -> <extra_id_0>
assert (one_word.targets[:, 1] == truth).all()                  # the span's word is the decoder's 2nd target


def masked_nll(chunk: slice, right_side: bool) -> np.ndarray:
    """BERT's -ln p(w_t) at the masked position of each row of `chunk`, with or without the words after it."""
    key_lengths = None if right_side else at[chunk] + 1
    h = models["BERT"].hidden_states(masked[chunk], key_lengths)                      # (n, T, C)
    logits = models["BERT"].head(h[np.arange(h.shape[0]), at[chunk]])                 # (n, V)
    return F.cross_entropy(logits, truth[chunk], reduction="none").data


def span_nll(chunk: slice, right_side: bool) -> np.ndarray:
    """T5's -ln p(w_t | source, <extra_id_0>), the second token the decoder writes; the source whole or
    cut after the sentinel."""
    src_lengths = one_word.src_lengths[chunk] if right_side else at[chunk] + 1
    logits, _ = models["T5"](one_word.src[chunk], src_lengths, one_word.dec_in[chunk, :2])
    return F.cross_entropy(logits[:, 1], truth[chunk], reduction="none").data


with no_grad():
    chunks = [slice(i, i + 512) for i in range(0, len(at), 512)]
    nll = {"unigram (no context)": -np.log((counts[truth] + 1) / (counts.sum() + tok.vocab_size)),  # add-one
           "GPT (left only)": gpt_nll.ravel()}
    for name, score in (("BERT", masked_nll), ("T5", span_nll)):
        for side, right_side in (("left only", False), ("both sides", True)):
            nll[f"{name} ({side})"] = np.concatenate([score(c, right_side) for c in chunks]).astype(np.float64)

# Word classes by how often the word occurs in the training text: its frequency rank
rank = np.empty(tok.vocab_size, np.int64)
rank[np.argsort(-counts, kind="stable")] = np.arange(tok.vocab_size)
classes = {"all": np.ones(len(truth), bool), "frequent (top 100)": rank[truth] < 100,
           "middle (100-999)": (rank[truth] >= 100) & (rank[truth] < 1000), "rare (1000+)": rank[truth] >= 1000}
by_class = {c: {"words": int(sel.sum()), **{k: float(v[sel].mean()) if sel.any() else None for k, v in nll.items()}}
            for c, sel in classes.items()}
for c, row in by_class.items():
    print(f"9.3 {c:18s} {row['words']:5d} words, loss in nats: " + ", ".join(
        f"{k} {row[k]:.3f}" for k in nll if row[k] is not None))


def paired(left: str, right: str) -> dict:
    """How much lower `right`'s loss is than `left`'s on the same words: mean, standard error, share."""
    d = nll[left] - nll[right]
    return {"from": left, "to": right, "mean_nats": float(d.mean()),
            "standard_error": float(d.std(ddof=1) / math.sqrt(len(d))),
            "share_of_words_likelier": float((d > 0).mean()),
            "ppl_from": float(np.exp(nll[left].mean())), "ppl_to": float(np.exp(nll[right].mean()))}


margins = {"BERT": paired("BERT (left only)", "BERT (both sides)"), "T5": paired("T5 (left only)", "T5 (both sides)"),
           "GPT vs BERT": paired("GPT (left only)", "BERT (both sides)")}
for name, m in margins.items():
    print(f"9.3 {m['from']} -> {m['to']}: {m['mean_nats']:+.3f} +- {m['standard_error']:.3f} nats lower on the same "
          f"{len(truth):,} test words (exp: {m['ppl_from']:.0f} -> {m['ppl_to']:.0f}), "
          f"{100 * m['share_of_words_likelier']:.0f}% of them likelier")

# Why an MLM "perplexity" is not a language model's. GPT's exp(mean loss) is the perplexity of a
# probability distribution over whole texts, p(w_1..w_n) = prod_t p(w_t | w_<t), so two language
# models' numbers on the same text can be compared, and the model can generate. BERT's conditionals
# p(w_t | every other word) do not multiply into any distribution over texts (each conditions on the
# very words the others predict), they cannot generate, and their mean depends on how the text was
# hidden: one word at a time (Salazar et al. 2020's pseudo-perplexity, as above) or 15% at once with
# 10% of those shown unchanged (BERT's training objective, below). An MLM "perplexity" describes a
# masking scheme, not the text under a model: a low one makes no language model.
mask_rng = np.random.default_rng(run.seed + 3)
fifteen = [mlm_batch(w, mask_rng) for w in np.array_split(test_windows, max(1, CONTEXT_WINDOWS // 16))]
mlm_15 = evaluate(models["BERT"], fifteen, mlm_loss)
print(f"9.3 BERT's loss on the same test windows with 15% of the words masked (its training objective): "
      f"{mlm_15:.3f} nats (exp {math.exp(mlm_15):.0f}), against {nll['BERT (both sides)'].mean():.3f} "
      f"(exp {math.exp(nll['BERT (both sides)'].mean()):.0f}) one word at a time")

fig, (ax_pos, ax_cls) = plotting.figure(1, 2, width=6.0, height=4.2)
styles = {"unigram (no context)": (plotting.COLORS[7], ":"), "GPT (left only)": (plotting.COLORS[0], "-"),
          "BERT (left only)": (plotting.COLORS[1], "--"), "BERT (both sides)": (plotting.COLORS[1], "-"),
          "T5 (left only)": (plotting.COLORS[2], "--"), "T5 (both sides)": (plotting.COLORS[2], "-")}
bins = np.array_split(positions - 1, 8)                                               # groups of positions
for label, v in nll.items():
    color, line = styles[label]
    per_pos = v.reshape(CONTEXT_WINDOWS, T - 1).mean(axis=0)                         # (T-1,)
    ax_pos.plot([positions[b].mean() for b in bins], [per_pos[b].mean() for b in bins], "o", linestyle=line,
                color=color, label=label)
ax_pos.set_xlabel(f"position of the word in its {T}-word window (= words of left context)")
ax_pos.set_ylabel("test loss (nats per word)")
ax_pos.set_title("Left only (dashed for BERT, T5) vs both sides, by position")
ax_pos.legend(fontsize=8)
width = 0.8 / len(nll)
for k, label in enumerate(nll):
    color, line = styles[label]
    values = [by_class[c][label] if by_class[c][label] is not None else np.nan for c in classes]
    ax_cls.bar(np.arange(len(classes)) + (k - (len(nll) - 1) / 2) * width, values, width, color=color, label=label,
               alpha=0.45 if line != "-" else 1.0)
labels = [c.replace(" (", "\n(") + f"\n{by_class[c]['words']} words" for c in classes]
ax_cls.set_xticks(range(len(classes)), labels, fontsize=8)
ax_cls.set_ylabel("test loss (nats per word)")
ax_cls.set_title("By word frequency in the training text (pale: left only, unigram)")
ax_cls.legend(fontsize=7)
plotting.save(fig, run.out, "ch09_context")
results["context"] = {"windows": CONTEXT_WINDOWS, "window_words": T, "by_class": by_class, "margins": margins,
                      "bert_loss_15_percent_masked": mlm_15,
                      "by_position": {k: v.reshape(CONTEXT_WINDOWS, T - 1).mean(axis=0).tolist()
                                      for k, v in nll.items()}}
section_done("9.3")


# %% 9.4 A task for an encoder-decoder
# "three hundred forty two thousand five hundred six" -> "342506" (scratchlm/tasks.py). The digits come
# out in another order than the words went in ("forty two" is "42" but "two hundred" is "2__"), so a
# model must read the whole source before it writes. Numbers are split once: test numbers are never
# trained on. Two models of about the same size:
#   T5    the encoder reads the words, the decoder writes "<s> 3 4 2 5 0 6 </s>"
#   GPT   one sequence "three hundred ... six = 3 4 2 5 0 6 </s>", trained to predict only what follows
#         "=" (the prompt's targets are ignored); at test time it is given the words and "=".
# Both decode greedily until </s>; exact match = the whole number right. Both can learn the task; the
# encoder-decoder learns it in fewer steps, each step cheaper: its decoder runs on the digits (at most
# 6 and </s>) and reads the words through cross-attention, while the decoder-only model runs every layer
# over words and digits and must learn to look back past its own output to the words.
task = NumberWords(level="word")
numbers = split_numbers(NUMBERS_BOUND, NUMBERS_VALID, NUMBERS_TEST, seed=run.seed)
max_digits = len(str(NUMBERS_BOUND - 1))
t5_numbers = T5(T5Config(vocab_size=task.tok.vocab_size, block_size=16, n_layer=NUMBERS_T5_LAYERS, **NUMBERS_WIDTH))
gpt_numbers = GPT(GPTConfig(vocab_size=task.tok.vocab_size, block_size=24, n_layer=NUMBERS_GPT_LAYERS,
                            **NUMBERS_WIDTH))


def t5_outputs(model: T5, ns: np.ndarray) -> np.ndarray:
    b = task.seq2seq(ns)
    out = generate(model, np.full((len(ns), 1), task.tok.bos_id), max_digits + 1, temperature=0,
                   eos_id=task.tok.eos_id, source=b.src, source_lengths=b.src_lengths)
    return out[:, 1:]


def gpt_outputs(model: GPT, ns: np.ndarray) -> list:
    outputs = [None] * len(ns)
    for rows, prompts in group_by_length(task.prompts(ns)):       # prompts of one length decode together
        out = generate(model, prompts, max_digits + 1, temperature=0, eos_id=task.tok.eos_id)
        for r, row in zip(rows, out):
            outputs[r] = row[prompts.shape[1]:]
    return outputs


def exact_match(model, decode, ns: np.ndarray) -> float:
    model.eval()
    try:
        return task.exact_match(decode(model, ns), ns)
    finally:
        model.train()


def number_batch(model_name: str, ns: np.ndarray):
    if model_name == "T5":
        return task.seq2seq(ns)
    idx, targets, _ = task.decoder_only(ns)
    return idx, targets


number_models = {"T5": (t5_numbers, t5_outputs, seq2seq_loss), "GPT": (gpt_numbers, gpt_outputs, None)}


def train_on_numbers(name: str) -> dict:
    """Train one of number_models, its exact match on the valid numbers logged at every evaluation."""
    model, decode, loss_fn = number_models[name]
    curve = []

    def log(line):
        curve.append(exact_match(model, decode, numbers["valid"]))
        print(f"9.4 {name:3s} {line} | exact match on valid numbers {curve[-1]:.3f}")

    valid = {"valid": [number_batch(name, b) for b in np.array_split(numbers["valid"], NUMBERS_TRAIN.eval_iters)]}
    optimizer = configure_optimizer(model, NUMBERS_TRAIN.learning_rate, NUMBERS_TRAIN.weight_decay,
                                    (NUMBERS_TRAIN.beta1, NUMBERS_TRAIN.beta2))
    history = train(model, optimizer, lambda r: number_batch(name, r.choice(numbers["train"], NUMBERS_BATCH)),
                    NUMBERS_TRAIN, eval_batches=valid, loss_fn=loss_fn, log=log)
    return {"parameters": model.num_parameters(), "config": dataclasses.asdict(model.config), "history": history,
            "valid_exact_match": curve, "test_exact_match": exact_match(model, decode, numbers["test"]),
            "ms_per_step": float(np.mean(history["ms_per_step"][1:]))}


seq2seq = {name: train_on_numbers(name) for name in number_models}
example = numbers["test"][:3]
for name, (model, decode, _) in number_models.items():
    model.eval()
    shown = [f"{task.texts(n)[0]!r} -> {task.decode(o)!r}" for n, o in zip(example, decode(model, example))]
    seq2seq[name]["examples"] = shown
    print(f"9.4 {name}: {seq2seq[name]['parameters']:,} parameters, exact match on {len(numbers['test'])} test "
          f"numbers {seq2seq[name]['test_exact_match']:.4f}, {seq2seq[name]['ms_per_step']:.0f} ms/step; "
          f"e.g. {shown[0]}")
results["seq2seq"] = {"bound": NUMBERS_BOUND, "n_train": len(numbers["train"]), "n_valid": len(numbers["valid"]),
                      "n_test": len(numbers["test"]), "batch_size": NUMBERS_BATCH,
                      "train_config": dataclasses.asdict(NUMBERS_TRAIN), **seq2seq}

fig, ax = plotting.figure()
for (name, label), color in zip((("T5", "encoder-decoder (T5)"), ("GPT", "decoder-only (GPT), source = target")),
                                plotting.COLORS):
    r = seq2seq[name]
    ax.plot(r["history"]["step"], 100 * np.array(r["valid_exact_match"]), "o-", color=color,
            label=f"{label}, {r['parameters']:,} parameters: test {100 * r['test_exact_match']:.2f}%")
ax.set_xlabel("training step")
ax.set_ylabel("exact match on held-out numbers (%)")
ax.set_ylim(-2, 102)
ax.set_title("Number words -> digits, numbers never seen in training")
ax.legend(fontsize=8, loc="lower right")
plotting.save(fig, run.out, "ch09_seq2seq")
section_done("9.4")


# %% 9.5 The modern decoder
# What today's decoders (LLaMA and most open models since) changed in GPT-2, each a config field:
#   RMSNorm   x / rms(x) * w: LayerNorm without the mean and the bias, cheaper, as good
#   RoPE      positions as rotations of q and k inside every attention, instead of a learned vector
#             added at the bottom: scores then depend on how far apart two tokens are
#   SwiGLU    the MLP W_2 (silu(W u) * V u), with 8C/3 hidden units so it keeps 8 C^2 weights
# Both models train with Chapter 6's recipe, on the same batches: the baby GPT on tinyshakespeare, same
# steps (1000, half of Chapter 6's, to fit the time budget), and parameters within half a per cent
# (RoPE has no position table; SwiGLU's three matrices of 344 units hold what GELU's two of 512 do).
# The GPT-2-style model is Chapter 6's: over 16 seeds its full 2000-step recipe gives 1.904 +- 0.010
# nats (benchmarks/gpt_seeds.py), so a difference of a hundredth of a nat between the two is about what
# the seed alone changes.
texts = {split: data.load_text("tinyshakespeare", split) for split in ("train", "valid")}
chars = CharTokenizer.fit(texts["train"])
if TRAIN_CHARS:
    texts["train"] = texts["train"][:TRAIN_CHARS]
char_ids = {split: chars.encode(text) for split, text in texts.items()}
variants = {"GPT-2-style": dataclasses.replace(MODERN_MODEL, vocab_size=chars.vocab_size),
            "modern (RMSNorm, RoPE, SwiGLU)": dataclasses.replace(MODERN_MODEL, vocab_size=chars.vocab_size,
                                                                  norm="rmsnorm", position="rope", mlp="swiglu")}
eval_rng = np.random.default_rng(run.seed + 1)
char_eval = {split: [data.get_batch(char_ids[split], MODERN_BATCH, MODERN_MODEL.block_size, rng=eval_rng)
                     for _ in range(MODERN_TRAIN.eval_iters)] for split in ("train", "valid")}
modern = {}
for name, config in variants.items():
    model = GPT(config)
    optimizer = configure_optimizer(model, MODERN_TRAIN.learning_rate, MODERN_TRAIN.weight_decay,
                                    (MODERN_TRAIN.beta1, MODERN_TRAIN.beta2))
    history = train(model, optimizer,
                    lambda r: data.get_batch(char_ids["train"], MODERN_BATCH, MODERN_MODEL.block_size, rng=r),
                    MODERN_TRAIN, eval_batches=char_eval, rng=np.random.default_rng(run.seed),
                    log=lambda line, name=name: print(f"9.5 {name}: {line}"))
    full_valid = evaluate(model, data.iter_batches(char_ids["valid"], MODERN_BATCH, MODERN_MODEL.block_size))
    modern[name] = {"config": dataclasses.asdict(config), "parameters": model.num_parameters(non_embedding=False),
                    "history": history, "valid_loss_full": full_valid,
                    "ms_per_step": float(np.mean(history["ms_per_step"][1:]))}
    print(f"9.5 {name}: {modern[name]['parameters']:,} parameters, valid loss {full_valid:.4f} nats/char over the "
          f"whole valid split after {MODERN_TRAIN.max_iters} steps ({nats_to_bits(full_valid):.3f} bits/char), "
          f"{modern[name]['ms_per_step']:.0f} ms/step")
(old, old_run), (new, new_run) = modern.items()
print(f"9.5 {new} - {old}: {new_run['valid_loss_full'] - old_run['valid_loss_full']:+.4f} nats/char on the whole "
      f"valid split (the 2000-step recipe's seed-to-seed standard deviation: 0.010)")
results["modern"] = {"train_config": dataclasses.asdict(MODERN_TRAIN), "batch_size": MODERN_BATCH, **modern,
                     "difference_modern_minus_gpt2": new_run["valid_loss_full"] - old_run["valid_loss_full"]}

fig, ax = plotting.figure()
for (name, r), color in zip(modern.items(), plotting.COLORS):
    ax.plot(r["history"]["step"], r["history"]["valid"], "o-", color=color, markersize=3,
            label=f"{name}: {r['parameters']:,} parameters, whole valid split {r['valid_loss_full']:.3f}")
ax.set_xlabel("training step")
ax.set_ylabel("valid loss (nats per character)")
ax.set_title(f"Chapter 6's baby GPT on tinyshakespeare, {MODERN_TRAIN.max_iters} steps")
ax.legend(fontsize=8)
plotting.save(fig, run.out, "ch09_modern")
section_done("9.5")

results["seconds"] = {**seconds, "total": time.perf_counter() - t_start}
print(f"9.5 chapter finished in {results['seconds']['total'] / 60:.1f} minutes ("
      + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
chapter.write_results(run, "ch09_results", results)
