"""Chapter 6 — The Transformer: attention, from one head to a GPT.

An n-gram model and the NPLM see a fixed window of the past. Self-attention lets every position
look at all earlier positions (up to block_size of them, 64 here against the NPLM's 8) and decide,
from their content, how much of each to take: position t asks a question (its query q_t), every
earlier position s offers an answer's address (its key k_s) and content (its value v_s), and the
output is the average of the values weighted by
softmax_s(q_t . k_s / sqrt(d)) over s <= t. Stack that with a small MLP, residual connections and
layer normalisation, and you have the decoder of GPT (scratchlm/models/gpt.py):

    6.1  one head of causal self-attention, by hand
    6.2  many heads side by side, and the same computation fused into one op
    6.3  the model: nanoGPT's CPU-sized character GPT; before training its loss is ln V, a uniform guess
    6.4  the baselines on the same characters: Kneser-Ney n-grams (Chapter 2) and the NPLM (Chapter 4)
    6.5  training the baby GPT on tinyshakespeare with nanoGPT's recipe (2000 steps)
    6.6  samples from it
    6.7  what the heads look at                                   -> ch06_attention.png
    6.8  a GPT on names (makemore's data), with its baselines
    6.9  the learning curves against the baselines, in bits per character  -> ch06_loss.png

Run:      python chapters/ch06_transformer.py [--quick]   (full run: 11.8 minutes on 2 idle cores)
Figures:  figures/ch06_loss.png, figures/ch06_attention.png; numbers and samples in
          figures/ch06_results.json. The trained baby GPT is saved for Chapter 7 in
          checkpoints/ch06_baby_gpt.npz (with --quick: in the output folder).
Library:  scratchlm/models/gpt.py, scratchlm/models/attention_kernels.py,
          scratchlm/models/attention_products.py, scratchlm/train.py, scratchlm/generate.py
"""

import dataclasses
import math
import time

import numpy as np

from scratchlm import chapter, data, ngram, plotting
from scratchlm.autograd import Tensor, no_grad
from scratchlm.checkpoint import save_checkpoint
from scratchlm.generate import generate
from scratchlm.metrics import nats_to_bits
from scratchlm.models.gpt import (GPT, GPTConfig, causal_self_attention, causal_self_attention_ref, causal_softmax,
                                  record_attention)
from scratchlm.models.nplm import NPLM, NPLMConfig
from scratchlm.rng import get_rng
from scratchlm.tokenizers import CharTokenizer
from scratchlm.train import EpochSettings, TrainConfig, configure_optimizer, evaluate, train, train_epochs

# Settings. The baby GPT and its recipe are nanoGPT's CPU run on tinyshakespeare characters:
# n_layer 4, n_head 4, n_embd 128, block_size 64, batch 12, no dropout, no biases, tied embeddings
# (nanoGPT calls its larger GPU model the "baby GPT"; this one shrinks it for a CPU); GELU is the
# tanh approximation here, nanoGPT's the exact erf form (GPTConfig(gelu="none") gives it);
# AdamW (beta2 0.99, weight decay 0.1), lr 1e-3 -> 1e-4 (100 warmup steps, cosine), clip 1.0.
MODEL = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False, tie_weights=True)
TRAIN = TrainConfig(max_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
                    weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=100, eval_iters=20)
BATCH_SIZE = 12
NGRAM_ORDERS = (3, 5, 7)                  # modified Kneser-Ney; the best on valid is the reference
NPLM_MODEL = dict(context=8, n_embd=24, n_hidden=256, dropout=0.1, weight_decay=0.01)  # Chapter 4's
NPLM_TRAIN = EpochSettings(epochs=4, batch_size=512, learning_rate=3e-3, min_lr=3e-5, warmup_steps=100)
SAMPLE_CHARS = 600
TEMPERATURE = 0.8                         # nanoGPT's sample.py default
ATTENTION_CHARS = 32                      # 6.7: length of the excerpt whose attention maps are drawn
# names: the longest name has 15 letters, so a block of 16 holds '.' + name (inputs) and name + '.'.
# A small data set (25,626 names), so dropout 0.2 and a larger batch.
NAMES_MODEL = GPTConfig(n_layer=4, n_head=4, n_embd=96, block_size=16, dropout=0.2)
NAMES_TRAIN = TrainConfig(max_iters=4000, learning_rate=3e-3, min_lr=1.5e-4, warmup_iters=100,
                          lr_decay_iters=4000, weight_decay=0.1, eval_interval=250, eval_iters=4)
NAMES_BATCH = 128
NAMES_NPLM_TRAIN = EpochSettings(epochs=20, batch_size=256, learning_rate=3e-3, min_lr=3e-5, warmup_steps=100,
                                 patience=3)
TRAIN_CHARS = None                        # use the whole training text

run = chapter.parse_args(__doc__)
if run.quick:
    MODEL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32)
    TRAIN = TrainConfig(max_iters=40, warmup_iters=5, lr_decay_iters=40, eval_interval=20, eval_iters=2)
    NGRAM_ORDERS = (3,)
    NPLM_TRAIN = EpochSettings(epochs=1, batch_size=512, learning_rate=3e-3, warmup_steps=10)
    SAMPLE_CHARS, ATTENTION_CHARS = 100, 16
    NAMES_MODEL = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)
    NAMES_TRAIN = TrainConfig(max_iters=40, warmup_iters=5, lr_decay_iters=40, eval_interval=20, eval_iters=2)
    NAMES_NPLM_TRAIN = EpochSettings(epochs=1, batch_size=256, learning_rate=3e-3, warmup_steps=10)
    TRAIN_CHARS = 50_000
CHECKPOINT = (run.out if run.quick else chapter.REPO_ROOT / "checkpoints") / "ch06_baby_gpt.npz"
results = {}
t_start = time.perf_counter()

# %% 6.1 One head of causal self-attention
# Eight positions with 16-dimensional vectors x_t (random here: the mechanics do not care). One head
# projects them to queries, keys and values of size hs = 8 and mixes the values:
#   S = Q K^T / sqrt(hs)            how well each query matches each key, (T, T)
#   P = softmax over s <= t of S    the causal mask: position t cannot see the future
#   Y = P V                         each output is a weighted average of the visible values
# Dividing by sqrt(hs) keeps the scores' spread near 1 whatever the head size, so the softmax does
# not start out saturated. `causal_softmax` does mask, scale and softmax in one Numba kernel
# (exercise 6.1), and its backward pass is the softmax's Jacobian-vector product over the visible
# keys, dS[t, j] = P[t, j] (dP[t, j] - sum_j' dP[t, j'] P[t, j']) / sqrt(hs) (exercise 6.2).
rng = get_rng()
T, C, hs = 8, 16, 8
x = Tensor(rng.normal(size=(T, C)))
Wq, Wk, Wv = (Tensor(rng.normal(size=(C, hs)) / math.sqrt(C)) for _ in range(3))
q, k, v = x @ Wq, x @ Wk, x @ Wv                               # (T, hs) each
P = causal_softmax(q @ k.transpose(1, 0), 1 / math.sqrt(hs))     # (T, T)
y = P @ v                                                        # (T, hs)
scores = (q.data @ k.data.T) / math.sqrt(hs)                     # the same by plain NumPy:
masked = np.where(np.tri(T, dtype=bool), scores, -np.inf)        # -inf above the diagonal ...
by_numpy = np.exp(masked - masked.max(1, keepdims=True))
by_numpy /= by_numpy.sum(1, keepdims=True)                       # ... becomes weight 0
print(f"6.1 one head: row 3 of P = {np.round(P.data[3], 3).tolist()} (sums to {P.data[3].sum():.6f}); "
      f"max |kernel - NumPy| = {np.abs(P.data - by_numpy).max():.1e}")
results["one_head"] = {"weights": np.round(P.data, 6).tolist(), "output_shape": list(y.shape),
                       "max_abs_diff_numpy": float(np.abs(P.data - by_numpy).max())}

# %% 6.2 Many heads
# One head computes one kind of match. Multi-head attention splits the width C into n_head heads of
# size C / n_head, runs them side by side on their own slices of Q, K, V (one matrix product makes
# all three for all heads: c_attn, C -> 3C), and concatenates their outputs. Written head by head
# in Tensor ops (causal_self_attention_ref) it is a loop; the model uses one fused graph node
# (causal_self_attention) with the backward pass written out. They agree, gradients included.
qkv = Tensor(rng.normal(size=(2, T, 3 * C)), requires_grad=True)
twin = Tensor(qkv.data.copy(), requires_grad=True)
g = rng.normal(size=(2, T, C))
fused, looped = causal_self_attention(qkv, n_head=4), causal_self_attention_ref(twin, n_head=4)
fused.backward(g)
looped.backward(g)
diff = {"output": float(np.abs(fused.data - looped.data).max()),
        "gradient": float(np.abs(qkv.grad - twin.grad).max())}
print(f"6.2 four heads: fused op vs head-by-head Tensor ops, max |difference| output {diff['output']:.1e}, "
      f"gradient {diff['gradient']:.1e}")
results["multi_head_max_abs_diff"] = diff

# %% 6.3 The model
# A block is x + Attention(LayerNorm(x)) followed by x + MLP(LayerNorm(x)): the residual stream x
# carries each position's representation up the stack, and every sub-layer adds a correction to it.
# Token and position embeddings go in at the bottom; a final LayerNorm and the transposed token
# embedding (weight tying) turn the top of the stream into logits over the vocabulary.
texts = {split: data.load_text("tinyshakespeare", split) for split in ("train", "valid")}
chars = CharTokenizer.fit(texts["train"])  # 65 characters
if TRAIN_CHARS:
    texts["train"] = texts["train"][:TRAIN_CHARS]
ids = {split: chars.encode(text) for split, text in texts.items()}
MODEL = dataclasses.replace(MODEL, vocab_size=chars.vocab_size)
model = GPT(MODEL)
initial_loss = evaluate(model, [data.get_batch(ids["valid"], BATCH_SIZE, MODEL.block_size) for _ in range(4)])
print(f"6.3 baby GPT: {model.num_parameters() / 1e6:.2f}M parameters (without position embeddings), "
      f"vocabulary {chars.vocab_size} characters; loss before training {initial_loss:.3f} nats "
      f"vs ln {chars.vocab_size} = {math.log(chars.vocab_size):.3f}")
results["model"] = {"config": dataclasses.asdict(MODEL), "parameters": model.num_parameters(),
                    "parameters_with_positions": model.num_parameters(non_embedding=False),
                    "initial_loss": initial_loss}


# %% 6.4 Baselines on the same characters
# Chapter 2's modified Kneser-Ney n-grams, counted over lines (the line break is the end-of-sentence
# token, so every character of the text is predicted once), and Chapter 4's NPLM, predicting each
# character from the 8 before it. All numbers are cross-entropies on the valid split, in bits/char.
def ngram_bits(train_sents, valid_sents, orders) -> dict:
    """Valid bits per token of a modified Kneser-Ney model of each order."""
    out = {}
    for order in orders:
        lm = ngram.fit(train_sents, order=order, smoothing="modified_kneser_ney")
        out[order] = lm.evaluate(valid_sents).bits_per_token
    return out


def nplm_bits(stream: dict, vocab_size: int, bos: int, eos: int, settings: EpochSettings) -> tuple[float, dict]:
    """Valid bits per token of Chapter 4's NPLM trained on `stream` (ids per split), and its history."""
    cfg = NPLMConfig(vocab_size=vocab_size, **NPLM_MODEL)
    windows = {s: data.context_windows(v, cfg.context, bos, eos) for s, v in stream.items()}
    m = NPLM(cfg)
    opt = configure_optimizer(m, settings.learning_rate, cfg.weight_decay)
    history = train_epochs(m, opt, windows["train"], windows["valid"], settings, log=lambda line: None)
    return nats_to_bits(history["best_valid"]), history


lines = {split: [list(line) for line in text.removesuffix("\n").split("\n")] for split, text in texts.items()}
shakespeare_ngram = ngram_bits(lines["train"], lines["valid"], NGRAM_ORDERS)
best_order = min(shakespeare_ngram, key=shakespeare_ngram.get)
newline = int(chars.encode("\n")[0])
shakespeare_nplm, nplm_history = nplm_bits(ids, chars.vocab_size, bos=newline, eos=-1,  # one long "sentence"
                                           settings=NPLM_TRAIN)
for order, bits in shakespeare_ngram.items():
    print(f"6.4 tinyshakespeare, modified Kneser-Ney {order}-gram: {bits:.3f} bits/char")
print(f"6.4 tinyshakespeare, NPLM (8 characters of context): {shakespeare_nplm:.3f} bits/char "
      f"after {len(nplm_history['epoch'])} epochs")
results["shakespeare_baselines"] = {"ngram_bits_per_char": shakespeare_ngram, "best_ngram_order": best_order,
                                    "nplm_bits_per_char": shakespeare_nplm, "nplm_history": nplm_history}

# %% 6.5 Training the baby GPT
# Each step draws 12 random windows of 64 characters; the targets are the same windows shifted by
# one, so one forward pass scores 768 predictions, each with all of its window's past as context.
# The log line every 100 steps estimates train and valid loss on 20 fixed batches each.
# How much of the final number is the seed? benchmarks/gpt_seeds.py trains this recipe from 16 seeds
# with scratchlm and with an identical PyTorch model, side by side: both give 1.9041 +- 0.0096 nats
# on the whole valid split (1.8866 to 1.9265), while nanoGPT's own estimate, 20 random batches,
# scatters about twice as widely (standard deviation 0.0186, range 1.8629 to 1.9323). nanoGPT's
# "1.88" is one such estimate; on the whole split none of the 16 runs of either implementation gets
# that low. Nor do two things nanoGPT may have done differently when it reported 1.88: over seeds 0-7
# the recipe gives 1.9057, without weight decay on the embeddings (nanoGPT's early optimiser groups)
# 1.9044, and with GPT-2's biases as well 1.8972 (gpt_seeds.py --no-decay-embeddings [--bias]).
eval_rng = np.random.default_rng(run.seed + 1)
eval_batches = {split: [data.get_batch(ids[split], BATCH_SIZE, MODEL.block_size, rng=eval_rng)
                        for _ in range(TRAIN.eval_iters)] for split in ("train", "valid")}
optimizer = configure_optimizer(model, TRAIN.learning_rate, TRAIN.weight_decay, (TRAIN.beta1, TRAIN.beta2))
history = train(model, optimizer, lambda r: data.get_batch(ids["train"], BATCH_SIZE, MODEL.block_size, rng=r),
                TRAIN, eval_batches=eval_batches, log=lambda line: print("6.5 " + line))
full_valid = evaluate(model, data.iter_batches(ids["valid"], BATCH_SIZE, MODEL.block_size))
ms_per_step = float(np.mean(history["ms_per_step"][1:]))
print(f"6.5 baby GPT after {TRAIN.max_iters} steps: valid loss {full_valid:.4f} nats/char over the whole valid "
      f"split ({nats_to_bits(full_valid):.3f} bits/char; nanoGPT reports 1.88), {ms_per_step:.0f} ms/step")
CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
save_checkpoint(CHECKPOINT, model, config=MODEL, step=TRAIN.max_iters,
                extra={"tokenizer": chars.to_dict(), "valid_loss": full_valid})
results["shakespeare"] = {"train_config": dataclasses.asdict(TRAIN), "batch_size": BATCH_SIZE, "history": history,
                          "valid_loss_full": full_valid, "valid_bits_per_char": nats_to_bits(full_valid),
                          "ms_per_step": ms_per_step}

# %% 6.6 Samples
# Start from a line break and sample one character at a time from softmax(logits / 0.8) (Chapter 7
# compares decoding strategies). The model has learned the look of a play: names in capitals, verse
# lines, punctuation; the meaning is still mostly Shakespeare-shaped noise.
model.eval()
sample = chars.decode(generate(model, [[newline]], SAMPLE_CHARS, temperature=TEMPERATURE)[0, 1:])
print("6.6 sample (temperature 0.8):\n" + "\n".join("    " + line for line in sample[:400].split("\n")))
results["shakespeare"]["sample"] = {"temperature": TEMPERATURE, "text": sample}

# %% 6.7 What the heads look at
# Run the model on a valid excerpt and keep each head's weights P (record_attention asks every
# attention module to keep those of its last forward pass): row t shows where position t looked.
# Heads specialise: some weight the current and previous characters (a head of the first layer
# puts 30% of its weight on the previous one, on average: an n-gram inside the model), some at the
# first letter of the current word (a vertical bar spanning the word), some at the start of the
# line or the speaker's name.
excerpt_ids = ids["valid"][:ATTENTION_CHARS][None]                            # (1, T)
with no_grad(), record_attention(model) as attention:                         # one module per layer
    model(excerpt_ids)
maps = [layer.last_weights[0] for layer in attention]                        # (n_head, T, T) each
excerpt = chars.decode(excerpt_ids[0])
labels = [{" ": "·", "\n": "¶"}.get(c, c) for c in excerpt]  # show spaces and line breaks
fig, axes = plotting.figure(MODEL.n_layer, MODEL.n_head, width=3.0, height=3.0, squeeze=False,
                            layout="constrained")
for layer, head_maps in enumerate(maps):
    for head, m in enumerate(head_maps):
        ax = axes[layer][head]
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(ATTENTION_CHARS), labels if layer == MODEL.n_layer - 1 else [],
                      fontsize=6, fontfamily="monospace")
        ax.set_yticks(range(ATTENTION_CHARS), labels if head == 0 else [], fontsize=6, fontfamily="monospace")
        ax.tick_params(length=0, pad=1)
        ax.grid(False)
        ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
fig.suptitle(f"Attention weights of the baby GPT on {excerpt[:ATTENTION_CHARS]!r} "
             "(row: query position, column: key position)")
plotting.save(fig, run.out, "ch06_attention")
prev_char = [float(np.mean(np.diagonal(m, offset=-1, axis1=1, axis2=2), axis=-1).max()) for m in maps]
print(f"6.7 attention maps saved; per layer, the head most focused on the previous character puts "
      f"{', '.join(f'{w:.2f}' for w in prev_char)} of its weight there on average")
results["attention"] = {"excerpt": excerpt, "max_mean_weight_on_previous_char": prev_char}

# %% 6.8 A GPT on names
# Each name is its own sequence: inputs '.' + name, targets name + '.', padded to the block
# (data.pad_sequences) with '.' in the inputs and -1 in the targets (ignored by the loss). The loss
# is in nats per character, the end '.' included, like Chapter 4's names models, so the three
# models below are scored on exactly the same predictions.
names = {split: data.load_lines("names", split) for split in ("train", "valid")}
if run.quick:
    names = {"train": names["train"][:3000], "valid": names["valid"][:500]}
name_chars = CharTokenizer.fit("." + "".join(names["train"]))
dot = int(name_chars.encode(".")[0])


def encode_each(strings: list[str]) -> list[np.ndarray]:
    """The ids of each string, from one call to the tokenizer (one id per character)."""
    return np.split(name_chars.encode("".join(strings)), np.cumsum([len(s) for s in strings])[:-1])


def name_arrays(ns: list[str], block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """X, Y (N, block_size): X = '.' + name, Y = name + '.', padded with '.' in X and -1 in Y."""
    X = data.pad_sequences(encode_each(["." + name for name in ns]), block_size, pad=dot)
    Y = data.pad_sequences(encode_each([name + "." for name in ns]), block_size, pad=-1)
    return X, Y


name_data = {split: name_arrays(ns, NAMES_MODEL.block_size) for split, ns in names.items()}
NAMES_MODEL = dataclasses.replace(NAMES_MODEL, vocab_size=name_chars.vocab_size)
names_model = GPT(NAMES_MODEL)
names_eval = {split: [(X[i:i + 512], Y[i:i + 512]) for i in range(0, len(X), 512)]
              for split, (X, Y) in name_data.items()}
names_eval["train"] = names_eval["train"][:NAMES_TRAIN.eval_iters]  # an estimate; valid is scored in full


def name_batch(r):
    rows = r.integers(0, len(name_data["train"][0]), NAMES_BATCH)
    return name_data["train"][0][rows], name_data["train"][1][rows]


names_optimizer = configure_optimizer(names_model, NAMES_TRAIN.learning_rate, NAMES_TRAIN.weight_decay,
                                      (NAMES_TRAIN.beta1, NAMES_TRAIN.beta2))
names_history = train(names_model, names_optimizer, name_batch, NAMES_TRAIN, eval_batches=names_eval,
                      log=lambda line: print("6.8 names " + line))
names_sents = {split: [list(n) for n in ns] for split, ns in names.items()}
names_ngram = ngram_bits(names_sents["train"], names_sents["valid"], NGRAM_ORDERS)
name_stream = {split: name_chars.encode("".join(n + "." for n in ns)) for split, ns in names.items()}
names_nplm, names_nplm_history = nplm_bits(name_stream, name_chars.vocab_size, bos=dot, eos=dot,
                                           settings=NAMES_NPLM_TRAIN)
names_model.eval()
raw = generate(names_model, np.full((20, 1), dot), NAMES_MODEL.block_size - 1, temperature=1.0)
samples = [name_chars.decode(row[1:]).split(".")[0] for row in raw]
names_gpt_bits = nats_to_bits(names_history["valid"][-1])
print(f"6.8 names: GPT ({names_model.num_parameters():,} parameters) {names_gpt_bits:.3f} bits/char; "
      f"best Kneser-Ney {min(names_ngram.values()):.3f} (order {min(names_ngram, key=names_ngram.get)}); "
      f"NPLM {names_nplm:.3f}")
print(f"6.8 names sampled: {', '.join(samples)}")
new = [s for s in samples if s not in set(names["train"])]
results["names"] = {"config": dataclasses.asdict(NAMES_MODEL), "train_config": dataclasses.asdict(NAMES_TRAIN),
                    "batch_size": NAMES_BATCH, "parameters": names_model.num_parameters(), "history": names_history,
                    "valid_bits_per_char": names_gpt_bits, "ngram_bits_per_char": names_ngram,
                    "nplm_bits_per_char": names_nplm, "nplm_history": names_nplm_history,
                    "samples": samples, "samples_not_in_train": new}

# %% 6.9 Learning curves against the baselines
# Loss in bits per character (nats / ln 2), against the best n-gram and the NPLM on the same split.
# nanoGPT's CPU budget, 2000 steps of 768 characters, is about 1.5 passes over the training text:
# the GPT's valid curve is still falling when its schedule ends (about 0.01 nats per 100 steps),
# while the n-gram has counted all there is to count and the NPLM has had several passes. Compute,
# not only architecture, decides the ranking; nanoGPT's larger GPU model (6 layers, 384 wide, 256
# characters of context, 5000 steps of 16k characters) reaches 1.47 nats = 2.12 bits on this split.
fig, axes = plotting.figure(1, 2, width=6.0, height=4.2)
panels = [("tinyshakespeare (characters)", history, nats_to_bits(full_valid), shakespeare_ngram, shakespeare_nplm),
          ("names (characters)", names_history, names_gpt_bits, names_ngram, names_nplm)]
for ax, (title, hist, final, ngram_refs, nplm_ref) in zip(axes, panels):
    steps = hist["step"]
    ax.plot(np.arange(1, len(hist["loss"]) + 1), nats_to_bits(np.array(hist["loss"])), color=plotting.COLORS[0],
            alpha=0.25, linewidth=0.8, label="train (each step's batch)")
    ax.plot(steps, nats_to_bits(np.array(hist["train"])), "o-", color=plotting.COLORS[0], markersize=3,
            label="train (estimate)")
    ax.plot(steps, nats_to_bits(np.array(hist["valid"])), "o-", color=plotting.COLORS[1], markersize=3,
            label="valid")
    order = min(ngram_refs, key=ngram_refs.get)
    ax.axhline(ngram_refs[order], linestyle="--", color=plotting.COLORS[2],
               label=f"Kneser-Ney {order}-gram (Ch. 2): {ngram_refs[order]:.2f}")
    ax.axhline(nplm_ref, linestyle=":", color=plotting.COLORS[3], label=f"NPLM (Ch. 4): {nplm_ref:.2f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (bits per character)")
    ax.set_title(f"GPT on {title}: valid {final:.2f} bits/char")
    ax.legend(fontsize=8)
plotting.save(fig, run.out, "ch06_loss")
for title, _, final, ngram_refs, nplm_ref in panels:
    print(f"6.9 {title}: GPT {final:.3f} bits/char, best n-gram "
          f"{min(ngram_refs.values()):.3f}, NPLM {nplm_ref:.3f}")

results["seconds"] = time.perf_counter() - t_start
print(f"6.9 chapter finished in {results['seconds'] / 60:.1f} minutes")
chapter.write_results(run, "ch06_results", results)
