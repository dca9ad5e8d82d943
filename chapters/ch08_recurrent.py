"""Chapter 8 — Recurrent language models: the RNN, the LSTM, and ELMo's bidirectional LM.

The NPLM (Chapter 4) sees a window of n-1 words; a recurrent network reads the whole past, one word
at a time, into a state vector h_t = f(x_t, h_{t-1}) (scratchlm/models/rnn.py):

    Elman RNN:  h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)
    LSTM:       c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)    (gates i, f, o and candidate g)

and predicts the next word from h_t with a softmax. This chapter trains both on the Penn Treebank
with Chapters 2 and 4's conventions, so every perplexity compares with the KN5 and NPLM numbers:

    8.1  the recurrence by hand; the corpus as parallel streams (truncated backpropagation through
         time); Elman's RNN on PTB
    8.2  why plain RNNs forget: the gradient of the loss at t with respect to h_{t-k}, measured
         against k for the trained RNN (and, once it is trained in 8.3, the LSTM)
    8.3  the LSTM cell gate by gate, fused; Zaremba et al.'s small LSTM on PTB
                                                 -> ch08_vanishing.png, ch08_learning_curves.png
    8.4  ELMo's biLM: a forward and a backward LSTM sharing the embedding and the softmax; filling
         a blank from both sides against the left alone; how contextual its layers are
                                                                          -> ch08_bilm.png
    8.5  the book's table on PTB test so far, beside the literature's numbers

Every perplexity here is over the whole split read as one stream with the state carried across it
(batch 1): each token is predicted from everything before it, the literature's protocol. Averaging
over windows that each start from a zero state would be a different (worse) number.

Run:      python chapters/ch08_recurrent.py [--quick]      (full run: about 21 minutes on 2 cores)
Figures:  figures/ch08_*.png; numbers in figures/ch08_results.json
Library:  scratchlm/models/rnn.py, scratchlm/models/rnn_kernels.py, scratchlm/data.py (stream_windows),
          scratchlm/train.py (the training loop, with TruncatedBPTT as its loss_fn)
"""

import itertools
import json
import math
import time

import numpy as np
from tqdm import tqdm

import scratchlm.autograd.functional as F
from scratchlm import chapter, data, plotting
from scratchlm.autograd import Tensor, no_grad
from scratchlm.data import stream_windows
from scratchlm.models.rnn import (BiLM, RecurrentLM, RNNConfig, ScalarMix, TruncatedBPTT, ZarembaSchedule,
                                  blank_logprobs, lstm_cell, lstm_recurrence, recurrence_ref, rnn_recurrence)
from scratchlm.optim import SGD
from scratchlm.tokenizers import WordVocab
from scratchlm.train import evaluate, train

# Settings. Zaremba, Sutskever & Vinyals (2014), "small" non-regularised LSTM: 2 layers of 200, word
# vectors of 200, 20 unrolled steps, batch 20, every parameter ~ U(-0.1, 0.1), SGD at 1 halved every
# epoch after the 4th, gradient norm clipped at 5, 13 epochs -> 120.7 valid / 114.5 test. Their loss
# sums the 20 steps of a window; ours averages its 400 targets, so the same updates are lr 20 and a
# clipping norm of 0.25 (ZarembaSchedule). What changes is the number of epochs: an epoch is 2,324
# steps of a full 10,001-word softmax, over 2 minutes on 2 cores (the softmax and its cross-entropy,
# V x H weights at 6 flops each per token, are most of it), so 13 epochs would take the chapter's
# whole budget on their own. We keep their schedule and stop after epoch 6: their epochs 7-13 run
# at 1/8 of the rate and less, where the model changes little.
LSTM_MODEL = RNNConfig(cell="lstm", n_embd=200, n_hidden=200, n_layer=2, init_range=0.1)
LSTM_EPOCHS, LSTM_DECAY_AFTER, LSTM_LR = 6, 4, 20.0
# Elman's RNN: the same shape and recipe, only the cell differs (8.2 compares the two), except the
# rate: at 20 the tanh RNN's updates (up to lr x clip = 5 in norm) wreck it within 100 steps (its
# loss climbs past ln V); 5 is the largest of 20, 10, 5, 1 that trained steadily in 300 steps.
# One epoch: the learning curves compare it with the LSTM's first.
RNN_MODEL = RNNConfig(cell="tanh", n_embd=200, n_hidden=200, n_layer=2, init_range=0.1)
RNN_EPOCHS, RNN_DECAY_AFTER, RNN_LR = 1, 1, 5.0
# The biLM: the small LSTM twice (sharing embedding and softmax); each step trains both directions,
# so an epoch costs two of the LSTM's. One epoch, at the LSTM's rate.
BILM_MODEL = LSTM_MODEL
BILM_EPOCHS, BILM_DECAY_AFTER, BILM_LR = 1, 1, 20.0
BATCH, BPTT, CLIP, DECAY = 20, 20, 0.25, 0.5
EVAL_BPTT = 500                # evaluation windows (batch 1, state carried): only the speed depends on it
VANISH_STEPS, VANISH_ROWS = 40, 200   # 8.2: how far back, and over how many positions of valid
SIMILARITY_USES = 20                  # 8.4: words seen at least this often in test, this many uses each
BLANK_WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0]   # 8.4: weights of the right side tried on valid
BLANK_VALID_TOKENS = 10_000
# The literature, on the same split (Mikolov's 10k-word PTB):
LITERATURE = {
    "KN5": (141.2, "Mikolov et al. 2011, Table 2 (interpolated modified Kneser-Ney 5-gram)"),
    "NPLM": (140.2, "Mikolov et al. 2011, Table 2 (Bengio's feed-forward NNLM)"),
    "RNN": (124.7, "Mikolov 2012, PhD thesis, Table 4.1 (RNN LM)"),
    "LSTM": (114.5, "Zaremba et al. 2014, Table 1 (non-regularised LSTM, 2 x 200; valid 120.7)"),
}
ZAREMBA_VALID = 120.7

run = chapter.parse_args(__doc__)
if run.quick:  # seconds: a slice of PTB, small models, one epoch each
    LSTM_MODEL = RNNConfig(cell="lstm", n_embd=32, n_hidden=32, n_layer=2)
    RNN_MODEL = RNNConfig(cell="tanh", n_embd=32, n_hidden=32, n_layer=2)
    BILM_MODEL = LSTM_MODEL
    LSTM_EPOCHS = RNN_EPOCHS = BILM_EPOCHS = 1
    LSTM_LR = RNN_LR = BILM_LR = 5.0       # small models take smaller steps
    VANISH_STEPS, VANISH_ROWS, SIMILARITY_USES = 12, 16, 5
results = {"settings": {"lstm": vars(LSTM_MODEL), "rnn": vars(RNN_MODEL), "bilm": vars(BILM_MODEL),
                        "epochs": {"lstm": LSTM_EPOCHS, "rnn": RNN_EPOCHS, "bilm": BILM_EPOCHS},
                        "decay_after": {"lstm": LSTM_DECAY_AFTER, "rnn": RNN_DECAY_AFTER, "bilm": BILM_DECAY_AFTER},
                        "lr": {"lstm": LSTM_LR, "rnn": RNN_LR, "bilm": BILM_LR},
                        "batch": BATCH, "bptt": BPTT, "clip": CLIP, "decay": DECAY,
                        "evaluation": "whole split as one stream, batch 1, state carried across windows"}}
t_start = time.perf_counter()


def ppl(nats: float) -> float:
    return math.exp(nats)


def epochs(n: int) -> str:
    return f"{n} epoch" + ("s" if n != 1 else "")


def earlier_chapter(name: str, *keys):
    """A number from an earlier chapter's results (figures/chNN_results.json, from its full run), or
    None with a note when that file is missing or was written by a --quick run."""
    path = chapter.FIGURES_DIR / f"{name}.json"
    if not path.exists():
        print(f"8.1 note: {path} is missing (run chapters/{name.replace('_results', '')}*.py): "
              f"its numbers are left out")
        return None
    value = json.loads(path.read_text(encoding="utf-8"))
    if value.get("quick"):
        print(f"8.1 note: {path} comes from a --quick run: its numbers are left out")
        return None
    for key in keys:
        value = value[key]
    return value


# %% 8.1 The recurrence by hand, and the RNN on PTB
# One tanh unit, three steps, by hand: h_t = tanh(w_x x_t + w_h h_{t-1} + b). The fused op
# (rnn_recurrence: every step's matrix product and a Numba kernel, one graph node) gives the same.
w_x, w_h, b, xs = 0.5, 0.9, -0.1, [1.0, -2.0, 0.5]
h, by_hand = 0.0, []
for x_t in xs:
    h = math.tanh(w_x * x_t + w_h * h + b)
    by_hand.append(h)
fused = rnn_recurrence(np.array([[[w_x * x_t + b] for x_t in xs]]), np.array([[w_h]]), np.zeros((1, 1)))
print(f"8.1 by hand h_1..h_3 = {', '.join(f'{v:.6f}' for v in by_hand)}; the fused loop: "
      f"{', '.join(f'{v:.6f}' for v in fused.data.ravel())}")
results["by_hand"] = {"h": by_hand, "fused": fused.data.ravel().tolist()}

# The data. Each sentence is `w1 .. wm </s>` as in Chapters 2 and 4, and the sentences follow each
# other in one stream; a </s> stands before the first one, so every token of the split, </s> included,
# is predicted once: the tokens Chapter 2's n-grams and Chapter 4's NPLM scored. The vocabulary is
# theirs (every training word, <unk> as PTB writes it, <s> and </s>): <s> is never read or predicted,
# its output unit just learns a probability near 0.
lines = {split: data.load_lines("ptb", split) for split in ("train", "valid", "test")}
if run.quick:
    lines = {"train": lines["train"][:600], "valid": lines["valid"][:60], "test": lines["test"][:60]}
vocab = WordVocab.fit(" ".join(lines["train"]))
eos = vocab.eos_id
ids = {split: vocab.encode_lines(ls) for split, ls in lines.items()}                 # w1 .. wm </s> ...
streams = {split: np.concatenate([[eos], v]) for split, v in ids.items()}          # </s> first
# Truncated backpropagation through time (Zaremba's batching): the training stream is cut into 20
# parallel streams, walked 20 steps at a time. The state at the end of a window starts the next one
# (the forward pass sees all the history), detached (the backward pass stops at the window's edge).
# TruncatedBPTT is the loss_fn that carries it inside scratchlm.train's loop (exercise 8.3), one
# state per stream name, so evaluation keeps its own.
train_windows = stream_windows(streams["train"], BATCH, BPTT, "train")                  # exercise 8.2
eval_windows = {split: stream_windows(streams[split], 1, EVAL_BPTT, split) for split in ("valid", "test")}
print(f"8.1 PTB: vocabulary {len(vocab):,}; {len(ids['train']):,} training tokens as {BATCH} streams of "
      f"{streams['train'].size // BATCH:,}: {len(train_windows):,} windows of {BPTT} steps per epoch; "
      f"{len(ids['valid']):,} valid and {len(ids['test']):,} test tokens, each read as one stream")
results["data"] = {"vocab_size": len(vocab), "tokens": {s: int(v.size) for s, v in ids.items()},
                   "windows_per_epoch": len(train_windows)}
references = {"KN5": earlier_chapter("ch02_results", "ptb_table", "modified_kneser_ney", "5"),
              "NPLM": earlier_chapter("ch04_results", "ptb", "nplm", "test_ppl"),
              "NPLM + KN5": earlier_chapter("ch04_results", "ptb", "mixture", "test_ppl")}


def fit(model, loss_fn, windows, valid, epochs: int, decay_after: int, lr: float, label: str) -> dict:
    """Train with SGD and Zaremba's schedule through scratchlm.train.train: one optimiser step per
    window, one evaluation of `valid` per epoch and one before training (valid None: none, and the log
    line of each epoch gives only the learning rate and the speed)."""
    steps = len(windows)
    schedule = ZarembaSchedule(max_iters=epochs * steps, lr_decay_iters=epochs * steps, steps_per_epoch=steps,
                               learning_rate=lr, grad_clip=CLIP, decay_after=decay_after, decay=DECAY,
                               eval_interval=steps)
    bar = tqdm(total=schedule.max_iters, desc=label, unit="step", mininterval=10, leave=False,
               disable=None)                    # a progress bar on a terminal only, not in a log file
    order = itertools.count()

    def next_window(rng):                       # in order: epoch after epoch over the same windows
        bar.update()
        return windows[next(order) % steps]
    t0 = time.perf_counter()
    history = train(model, SGD(model.parameters(), lr=lr), next_window, schedule,
                    eval_batches={} if valid is None else {"valid": valid}, loss_fn=loss_fn,
                    log=lambda line: bar.write(f"{label} {line}"))
    bar.close()
    history["seconds"] = time.perf_counter() - t0
    history["valid_ppl"] = [ppl(v) for v in history.get("valid", [])]
    history["seconds_per_epoch"] = float(np.mean(history["ms_per_step"][1:])) * steps / 1000
    history["train_loss_per_epoch"] = np.reshape(history.pop("loss"), (epochs, steps)).mean(axis=1).tolist()
    return history


def stream_ppl(model, split: str) -> float:
    """Perplexity over a whole split read as one stream (batch 1, state carried across windows)."""
    return ppl(evaluate(model, eval_windows[split], TruncatedBPTT()))


rnn = RecurrentLM(RNNConfig(**{**vars(RNN_MODEL), "vocab_size": len(vocab)}))
rnn_history = fit(rnn, TruncatedBPTT(), train_windows, eval_windows["valid"], RNN_EPOCHS, RNN_DECAY_AFTER, RNN_LR,
                  "8.1 RNN")
rnn_ppl = {"valid": rnn_history["valid_ppl"][-1], "test": stream_ppl(rnn, "test")}   # valid: the last evaluation
print(f"8.1 RNN ({rnn.num_parameters():,} parameters): valid perplexity by epoch "
      + ", ".join(f"{v:.1f}" for v in rnn_history["valid_ppl"][1:])
      + f"; test {rnn_ppl['test']:.1f} ({rnn_history['seconds_per_epoch']:.0f} s per epoch)")
results["rnn"] = {"parameters": rnn.num_parameters(), "valid_ppl": rnn_ppl["valid"], "test_ppl": rnn_ppl["test"],
                  "history": rnn_history}

# %% 8.2 Why plain RNNs forget
# How much does the prediction at step t depend on the state k steps back? Unroll the top layer in
# Tensor ops (recurrence_ref keeps every h_t as a graph node), score the word after the last step,
# and read the gradient of that loss at every h_{t-k}. In the RNN it passes k Jacobians
# diag(1 - h^2) W_hh and shrinks geometrically; in the LSTM it also runs along the cell, multiplied by
# the forget gates, which the model learns to hold near 1 where the past matters.
def gradient_through_time(model, x, y):
    """Per row, ||d loss_T / d h_{T-k}|| of the top layer for k = 0 .. T-1 (k along axis 1). In float64:
    the RNN's gradients shrink by many orders of magnitude over 40 steps."""
    top, H = model.config.n_layer - 1, model.config.n_hidden
    f64 = lambda a: Tensor(np.asarray(a.data, dtype=np.float64))  # noqa: E731  (constants: no parameter grads)
    model.eval()
    with no_grad():
        below = model.rnn.forward_layers(model.wte(x))[0][top - 1] if top > 0 else model.wte(x)
        xp = f64(model.rnn.project(below, top))                        # the top layer's input projections
    model.train()
    h0 = Tensor(np.zeros((len(x), H)), requires_grad=True)
    _, hs = recurrence_ref(xp, f64(getattr(model.rnn, f"weight_hh_l{top}")), h0,
                           np.zeros((len(x), H)) if model.config.cell == "lstm" else None)
    for h in hs:
        h.retain_grad()
    logits = F.linear(hs[-1], f64(model.head.weight), f64(model.head.bias))
    F.cross_entropy(logits, y[:, -1], reduction="sum").backward()    # each row's own loss
    return np.stack([np.linalg.norm(hs[-1 - k].grad, axis=1) for k in range(len(hs))], axis=1)


def through_time(model, name: str) -> np.ndarray:
    """The geometric mean over VANISH_ROWS valid positions of ||d loss_t / d h_{t-k}|| / (its k = 0 value)."""
    norms = gradient_through_time(model, x_rows, y_rows)
    curve = np.exp(np.log(norms).mean(axis=0))
    curve /= curve[0]
    print(f"8.2 {name}: ||d loss_t / d h_t-k|| relative to k = 0: "
          + ", ".join(f"k={k} {curve[k]:.1e}" for k in (1, 5, 10, 20, VANISH_STEPS - 1) if k < VANISH_STEPS))
    return curve


starts = np.linspace(0, ids["valid"].size - VANISH_STEPS - 2, VANISH_ROWS).astype(int)
x_rows = np.stack([streams["valid"][s:s + VANISH_STEPS] for s in starts])
y_rows = np.stack([streams["valid"][s + 1:s + VANISH_STEPS + 1] for s in starts])
vanishing = {"RNN": through_time(rnn, "RNN")}

# %% 8.3 The LSTM
# The cell, gate by gate (exercise 8.1): a = x W_ih^T + h W_hh^T + b holds four blocks of H. With
# the forget gate open (a_f >> 0) and the input gate shut (a_i << 0) the cell keeps its value
# whatever comes in: the memory the RNN lacks. The fused op does the same arithmetic in one Numba
# kernel per step (rnn_kernels.py) and gives the same numbers.
keep = Tensor(np.array([[-20.0, 20.0, 5.0, 20.0]]))                 # i shut, f open, any g, o open
h_keep, c_keep = lstm_cell(keep, Tensor(np.array([[0.7]])))
write = Tensor(np.array([[20.0, -20.0, 0.5, 20.0]]))                # i open, f shut: c = tanh(0.5)
h_write, c_write = lstm_cell(write, Tensor(np.array([[0.7]])))
rng = np.random.default_rng(run.seed)
xp_demo, w_demo = rng.standard_normal((2, 5, 12)), 0.5 * rng.standard_normal((12, 3))
zero3 = np.zeros((2, 3))
diff = np.abs(lstm_recurrence(xp_demo, w_demo, zero3, zero3).data - recurrence_ref(xp_demo, w_demo, zero3, zero3)[0].data)
print(f"8.3 keep: c 0.7 -> {c_keep.item():.4f} (h {h_keep.item():.4f}); write: c 0.7 -> {c_write.item():.4f} "
      f"(tanh 0.5 = {math.tanh(0.5):.4f}); fused loop vs cell by cell: max difference {diff.max():.1e}")
results["cell_demo"] = {"keep_c": c_keep.item(), "write_c": c_write.item(), "fused_max_diff": float(diff.max())}

lstm = RecurrentLM(RNNConfig(**{**vars(LSTM_MODEL), "vocab_size": len(vocab)}))
lstm_history = fit(lstm, TruncatedBPTT(), train_windows, eval_windows["valid"], LSTM_EPOCHS, LSTM_DECAY_AFTER, LSTM_LR,
                   "8.3 LSTM")
lstm_ppl = {"valid": lstm_history["valid_ppl"][-1], "test": stream_ppl(lstm, "test")}
print(f"8.3 LSTM ({lstm.num_parameters():,} parameters): valid perplexity by epoch "
      + ", ".join(f"{v:.1f}" for v in lstm_history["valid_ppl"][1:])
      + f"; test {lstm_ppl['test']:.1f} (Zaremba et al.: valid {ZAREMBA_VALID}, test {LITERATURE['LSTM'][0]} "
        f"after 13 epochs; {lstm_history['seconds_per_epoch']:.0f} s per epoch here)")
results["lstm"] = {"parameters": lstm.num_parameters(), "valid_ppl": lstm_ppl["valid"], "test_ppl": lstm_ppl["test"],
                   "history": lstm_history}

# 8.2's measurement on the trained LSTM, beside the RNN's.
vanishing["LSTM"] = through_time(lstm, "LSTM")
ks = np.arange(VANISH_STEPS)
results["vanishing"] = {"k": ks.tolist(), **{name: v.tolist() for name, v in vanishing.items()}}
fig, ax = plotting.figure()
for name, v in vanishing.items():
    ax.semilogy(ks, v, "o-", ms=3, label=f"{name} (trained)")
ax.set_xlabel("k (steps back)")
ax.set_ylabel("||d loss_t / d h_(t-k)||, relative to k = 0")
ax.set_title(f"Gradient through time, top layer, geometric mean over {VANISH_ROWS} valid positions")
ax.legend()
plotting.save(fig, run.out, "ch08_vanishing")

fig, ax = plotting.figure()
for name, history in (("RNN", rnn_history), ("LSTM", lstm_history)):
    at_epoch = np.array(history["step"][1:]) / len(train_windows)
    ax.plot(at_epoch, history["valid_ppl"][1:], "o-", label=f"{name} valid (test {results[name.lower()]['test_ppl']:.1f})")
styles = iter([("0.3", "--"), ("0.3", ":"), (plotting.COLORS[3], "--"), (plotting.COLORS[2], ":")])
for name, value in [("KN5 test (Ch. 2)", references["KN5"]), ("NPLM test (Ch. 4)", references["NPLM"]),
                    ("Mikolov's RNN test", LITERATURE["RNN"][0]), ("Zaremba's LSTM valid", ZAREMBA_VALID)]:
    color, style = next(styles)
    if value is not None:
        ax.axhline(value, color=color, ls=style, lw=1.2, label=f"{name} {value:.1f}")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("perplexity (whole split, state carried)")
ax.set_title("Recurrent LMs on PTB")
ax.legend(fontsize=8)
plotting.save(fig, run.out, "ch08_learning_curves")

# %% 8.4 ELMo's biLM
# Two LSTM LMs, one reading left to right, one right to left (an ordinary LM on the reversed stream),
# sharing the word vectors and the softmax; each step trains both on a window of their own stream,
# on the sum of the two log-likelihoods (TruncatedBPTT.bidirectional). Each direction then has its own
# perplexity. Together they can do what neither can alone: fill a blank from both sides, with
# p(w | left, right) proportional to p_fwd(w | left) p_bwd(w | right) (exercise 8.4) -- the task BERT
# trains on directly (Chapter 9).
bilm = BiLM(RNNConfig(**{**vars(BILM_MODEL), "vocab_size": len(vocab)}))
reverse = {split: np.concatenate([[eos], v[::-1]]) for split, v in ids.items()}
bilm_train = list(zip(train_windows, stream_windows(reverse["train"], BATCH, BPTT, "train (backward)")))
# No evaluation on valid during training (it would read valid twice per epoch): the numbers below
# are each direction's over test.
bilm_history = fit(bilm, TruncatedBPTT().bidirectional, bilm_train, None, BILM_EPOCHS, BILM_DECAY_AFTER, BILM_LR,
                   "8.4 biLM")
# Every test token as a blank: its log-probability from the left (the forward LM: exactly its stream
# perplexity), from the right (the backward LM's) and from both, and each one's five best guesses.
# Both: p(w | left, right) ~ p_fwd(w | left) p_bwd(w | right) / p(w) by Bayes' rule, were the two
# sides independent given the word (p(w): the training unigram; without dividing by it the prior
# would count twice). They are not, and two models that err alike would be believed twice, so the
# right side's evidence ln p_bwd - ln p(w) gets a weight, tuned on valid (0 is the left alone).
unigram = np.bincount(ids["train"], minlength=len(vocab)) + 1.0                 # add-one: <s> is never seen
log_prior = np.log(unigram / unigram.sum())
valid_part = ids["valid"][:BLANK_VALID_TOKENS]
weight_curve = [ppl(-blank_logprobs(bilm, valid_part, eos, log_prior, w, EVAL_BPTT, top=0)["both"].mean())
                for w in BLANK_WEIGHTS]
best_weight = BLANK_WEIGHTS[int(np.argmin(weight_curve))]
print(f"8.4 weight of the right side, on the first {valid_part.size:,} valid tokens: "
      + ", ".join(f"{w:g}: {v:.1f}" for w, v in zip(BLANK_WEIGHTS, weight_curve)) + f" -> {best_weight:g}")
blanks = blank_logprobs(bilm, ids["test"], eos, log_prior, best_weight, EVAL_BPTT)
fill = {"forward_ppl": ppl(-blanks["forward"].mean()), "backward_ppl": ppl(-blanks["backward"].mean()),
        "both_ppl": ppl(-blanks["both"].mean()), "weight": best_weight, "weights": BLANK_WEIGHTS,
        "valid_ppl_by_weight": weight_curve, "valid_tokens": int(valid_part.size),
        "forward_accuracy": float((blanks["forward_top"][:, 0] == ids["test"]).mean()),
        "both_accuracy": float((blanks["both_top"][:, 0] == ids["test"]).mean())}
bilm_ppl = {"forward": fill["forward_ppl"], "backward": fill["backward_ppl"]}
print(f"8.4 biLM ({bilm.num_parameters():,} parameters, {epochs(BILM_EPOCHS)}): test perplexity forward "
      f"{bilm_ppl['forward']:.1f}, backward {bilm_ppl['backward']:.1f}")
print(f"8.4 filling a blank in test: from the left alone perplexity {fill['forward_ppl']:.1f} "
      f"(top-1 right {fill['forward_accuracy']:.1%}); from both sides (weight {best_weight:g}) "
      f"{fill['both_ppl']:.1f} (top-1 right {fill['both_accuracy']:.1%})")
# One example: a test sentence with a word blanked out, the five best guesses of each.
sentence_end = np.flatnonzero(ids["test"] == eos)
first, last = sentence_end[2] + 1, sentence_end[3]          # the fourth test sentence
t_blank = first + (last - first) // 2
words = [vocab.words[i] for i in ids["test"][first:last]]
top5 = {name: [vocab.words[i] for i in blanks[f"{key}_top"][t_blank]] for name, key in (("left", "forward"),
                                                                                     ("both", "both"))}
shown = " ".join("___" if i == t_blank - first else w for i, w in enumerate(words))
print(f"8.4 \"{shown}\" ({vocab.words[ids['test'][t_blank]]!r}): left alone guesses {', '.join(top5['left'])}; "
      f"both sides {', '.join(top5['both'])}")

# How contextual is each layer? ELMo's vector for token t mixes the layers (ScalarMix; its weights
# are learned by each downstream task, here left at an equal mix). Layer 0 is the word's embedding,
# the same vector wherever the word occurs; the LSTM layers depend on the sentence. Self-similarity
# (Ethayarajh 2019): the mean cosine between a word's vectors at different occurrences, for words
# seen at least SIMILARITY_USES times in test, against the mean cosine of random pairs of tokens.
# Each layer's vectors are centred first (its mean over test subtracted): the LSTM states share a
# large common direction, which would make every pair of tokens look alike.
layers = bilm.stream_layers(ids["test"], EVAL_BPTT)
with no_grad():
    layers.append(ScalarMix(len(layers))(layers).data)
layer_names = ["embedding"] + [f"LSTM layer {j}" for j in range(1, len(layers) - 1)] + ["ELMo mix"]
counts = np.bincount(ids["test"], minlength=len(vocab))
frequent = [w for w in np.flatnonzero(counts >= SIMILARITY_USES) if w not in (eos, vocab.unk_id)]
sim_rng = np.random.default_rng(run.seed)
uses = [sim_rng.choice(np.flatnonzero(ids["test"] == w), SIMILARITY_USES, replace=False) for w in frequent]
pairs = sim_rng.integers(0, ids["test"].size, (2, 5000))
similarity = {"self": [], "random": []}
def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


for layer in layers:
    layer = layer - layer.mean(axis=0)
    self_sim = []
    for rows in uses:
        cos = unit(layer[rows]) @ unit(layer[rows]).T
        self_sim.append((cos.sum() - np.trace(cos)) / (len(rows) * (len(rows) - 1)))
    similarity["self"].append(float(np.mean(self_sim)))
    similarity["random"].append(float(np.mean(np.sum(unit(layer[pairs[0]]) * unit(layer[pairs[1]]), axis=1))))
for name, s, r in zip(layer_names, similarity["self"], similarity["random"]):
    print(f"8.4 {name}: self-similarity {s:.3f} over {len(uses)} words (random pairs of tokens {r:.3f})")
results["bilm"] = {"parameters": bilm.num_parameters(), "test_ppl": bilm_ppl, "history": bilm_history,
                   "fill_blank": fill, "example": {"sentence": shown, "answer": vocab.words[ids["test"][t_blank]],
                                                   "top5": top5},
                   "self_similarity": {"layers": layer_names, **similarity, "words": len(uses)}}

fig, (ax1, ax2) = plotting.figure(1, 2, width=5.0)
bars = {"left alone\n(forward LM)": fill["forward_ppl"], "right alone\n(backward LM)": fill["backward_ppl"],
        "both sides": fill["both_ppl"]}
ax1.bar(list(bars), list(bars.values()), color=plotting.COLORS[:3])
for i, value in enumerate(bars.values()):
    ax1.text(i, value, f"{value:.1f}", ha="center", va="bottom")
ax1.set_ylabel("perplexity of the blanked word (test)")
ax1.set_title("Filling a blank with the biLM")
x_pos = np.arange(len(layers))
ax2.bar(x_pos - 0.2, similarity["self"], 0.4, label="same word, other contexts")
ax2.bar(x_pos + 0.2, similarity["random"], 0.4, label="random pairs of tokens")
ax2.set_xticks(x_pos, [n.replace("LSTM layer", "layer") for n in layer_names], fontsize=8)
ax2.set_ylabel("mean cosine similarity")
ax2.set_title("How contextual is each layer?")
ax2.legend(fontsize=8)
plotting.save(fig, run.out, "ch08_bilm")

# %% 8.5 The book's table on PTB
# The same test tokens every time (each sentence's words and its </s>), the same vocabulary.
table = [("KN5 (Chapter 2)", references["KN5"], LITERATURE["KN5"]),
         ("NPLM (Chapter 4)", references["NPLM"], LITERATURE["NPLM"]),
         ("NPLM + KN5 (Chapter 4)", references["NPLM + KN5"], None),
         (f"RNN, tanh, 2 x {RNN_MODEL.n_hidden}, {epochs(RNN_EPOCHS)}", rnn_ppl["test"], LITERATURE["RNN"]),
         (f"LSTM, 2 x {LSTM_MODEL.n_hidden}, {epochs(LSTM_EPOCHS)}", lstm_ppl["test"], LITERATURE["LSTM"]),
         (f"biLM forward direction, {epochs(BILM_EPOCHS)}", bilm_ppl["forward"], None)]
for name, ours, (theirs, source) in ((n, o, lit or (None, "")) for n, o, lit in table):
    mine = "left out" if ours is None else f"{ours:6.1f}"
    print(f"8.5 {name:<34} test perplexity {mine}" + (f"   literature {theirs:.1f} ({source})" if theirs else ""))
results["table"] = [{"model": name, "test_ppl": ours, "literature": lit[0] if lit else None,
                     "source": lit[1] if lit else None} for name, ours, lit in table]

results["seconds"] = time.perf_counter() - t_start
print(f"8.5 chapter finished in {results['seconds'] / 60:.1f} minutes")
chapter.write_results(run, "ch08_results", results)
