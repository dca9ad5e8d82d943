"""Chapter 10 — Pretrain, then fine-tune: full fine-tuning, LoRA and prompt tuning, measured against
training from scratch.

The recipe behind every model of the second half of the book: pretrain a language model on a large
general corpus, then fine-tune it on a small labelled data set for the task at hand. ULMFiT (Howard &
Ruder 2018) put it in three steps, which this chapter follows on a laptop CPU:

    general-domain LM  ->  target-domain LM  ->  classifier
    (PTB + Shakespeare)    (the unlabelled       (the labelled training messages)
                            training messages)

The task is the SMS Spam Collection (5,574 messages, 13% spam): read a message, say ham or spam. The
classifier is the pretrained GPT's body with a small head that reads the hidden state of the
message's last real token (scratchlm/models/classifier.py, exercise 10.2). What is trained of it is
the choice this chapter measures:

    linear probe       only a logistic regression on frozen features            C (K + 1) parameters
    last block + head  the top block, the final norm and the head
    full fine-tuning   everything
    LoRA               low-rank updates W + (alpha / r) B A of chosen matrices (Hu et al. 2021;
                       scratchlm/peft.py, exercise 10.1); the pretrained weights stay frozen
    prompt tuning      only P vectors prepended to the input (Lester et al. 2021; exercise 10.3);
                       the class is read off the LM head's scores of the words "ham" and "spam"

    10.1  pretraining a GPT on byte-level BPE (Chapter 5) over PTB and Shakespeare, then on the
          unlabelled training messages; the checkpoints are saved for later chapters
    10.2  the baselines: bag-of-words logistic regression, and the same GPT trained from scratch on
          the labels alone
    10.3  the methods, each on all the labelled training messages          -> ch10_lora_rank.png
    10.4  label efficiency: 16 to all labelled messages, three seeds each  -> ch10_label_efficiency.png
    10.5  what each method costs: trainable parameters, optimiser state, seconds per epoch, the bytes
          to keep per task                                                   -> ch10_cost_accuracy.png
    10.6  the same comparison on a Chinese task: which section of the Book of Songs (风, 雅, 颂) a poem
          comes from, with a character-level GPT pretrained on the other classics

Run:      python chapters/ch10_finetuning.py [--quick]   (full run: 17.9 minutes on 2 idle cores)
Figures:  figures/ch10_label_efficiency.png, ch10_cost_accuracy.png, ch10_lora_rank.png; numbers in
          figures/ch10_results.json; checkpoints in checkpoints/ (not committed)
Library:  scratchlm/peft.py, scratchlm/models/classifier.py, scratchlm/models/logistic.py, scratchlm/models/gpt.py,
          scratchlm/tokenizers/bpe.py, scratchlm/train.py, scratchlm/metrics.py, scratchlm/data.py
"""

import dataclasses
import math
import time

import numpy as np

from scratchlm import chapter, data, plotting
from scratchlm.autograd import no_grad
from scratchlm.checkpoint import save_checkpoint
from scratchlm.metrics import accuracy, f1_score, macro_f1
from scratchlm.models.classifier import (SequenceClassifier, classification_loss, extract_features, padded_lengths,
                                         predict)
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.models.logistic import BagOfWords, train_logistic
from scratchlm.peft import (SoftPrompt, adapter_bytes, apply_lora, load_adapter, merge_lora,
                            save_adapter, trainable_parameters)
from scratchlm.rng import manual_seed
from scratchlm.tokenizers import ByteBPE, CharTokenizer
from scratchlm.train import EpochSettings, TrainConfig, configure_optimizer, evaluate, train, train_epochs

# Settings.
# 10.1: byte-level BPE with 2,048 ids learned from the general text; a GPT of 2 blocks, 4 heads, 128 wide with
# 128 positions (a 64-token message fits behind a 50-vector prompt). Two blocks rather than Chapter 6's four:
# at twice the learning rate they reach a lower valid loss on PTB + Shakespeare in the same steps (4.29
# at step 800, against four blocks' 4.45 at 1e-3), after 900 steps on the messages they read the valid
# messages at 3.97 nats per token (four blocks after 300: 4.30), and each step costs less, measured side
# by side: a language-model step 0.63 of four blocks', a fine-tuning step on 64 tokens 0.64 of four
# blocks' on 48.
BPE_VOCAB = 2048
MODEL = GPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=128, dropout=0.0)
PRETRAIN = TrainConfig(max_iters=1000, learning_rate=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=1000,
                       weight_decay=0.1, eval_interval=200, eval_iters=8)
DOMAIN = TrainConfig(max_iters=900, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20, lr_decay_iters=900,
                     weight_decay=0.1, eval_interval=300, eval_iters=8)
LM_BATCH = 16
# A message's first 64 BPE tokens. Spam is long: 48 tokens cut 26% of the training messages and 90% of the
# spam, and the bag of words of those 48 tokens scores 98.31% on test (99.46% on 64 tokens, 99.55% on all).
MAX_TOKENS = 64
# 10.2-10.5: fine-tuning, AdamW with a warmup and a cosine, the weights of the best valid epoch kept.
# The learning rates were chosen on the valid messages, with every labelled message, by valid accuracy
# (the criterion 10.3 picks its best LoRA by); never on test:
#   from scratch       5e-4, 1e-3, 2e-3: 97.77, 97.95, 97.35% (mean of seeds 0, 1, 2)
#   full fine-tuning   5e-4, 1e-3, 2e-3: 97.29, 97.65, 96.75% (mean of seeds 0, 1, 2)
#   last block + head  5e-4, 1e-3, 2e-3: 96.57, 97.83, 97.83% (seed 0; a tie, the smaller kept)
#   LoRA               1e-3, 2e-3, 4e-3, 8e-3: 96.93, 97.47, 97.83, 97.65% (seed 0, r = 4 on q and v)
#   prompt tuning      1e-2, 3e-2, 1e-1: 93.14, 94.04, 93.86% (seed 0, P = 10)
# (The mean valid losses of the first two, 0.075, 0.081, 0.095 and 0.093, 0.094, 0.113, would pick 5e-4:
# for full fine-tuning a tie.)
EPOCHS, BATCH = 3, 32
LR = {"from scratch": 1e-3, "last block + head": 1e-3, "full fine-tuning": 1e-3, "LoRA": 4e-3, "prompt": 3e-2}
FT_WEIGHT_DECAY = 0.01
LORA_RANKS, LORA_TARGETS = (1, 4, 16), ("qv", "all")
PROMPT_LENGTHS = (10, 50)
# 10.4: label budgets, each trained from seeds 0, 1, 2 on a stratified sample of the training messages
BUDGETS, SEEDS = (16, 64, 256, 1024, None), (0, 1, 2)          # None: every training message
MIN_STEPS = 40                              # a small budget is trained for at least this many steps
# 10.6: Book of Songs sections; a character-level GPT pretrained on the other classics (67,291 characters:
# 200 steps of 16 x 128 read them about 6 times)
ZH_MODEL = GPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=128, dropout=0.0)
ZH_PRETRAIN = TrainConfig(max_iters=200, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20, lr_decay_iters=200,
                          weight_decay=0.1, eval_interval=50, eval_iters=4)
ZH_EPOCHS = 10
ZH_MIN_COUNT = 2                            # rarer characters read as <unk> (3,038 of 4,250 kept)
GENERAL_CHARS = None                        # all of PTB's and Shakespeare's training text
MESSAGES = None                             # every message of each split

run = chapter.parse_args(__doc__)
if run.quick:
    BPE_VOCAB, GENERAL_CHARS, MESSAGES = 320, 200_000, {"train": 400, "valid": 100, "test": 200}
    MODEL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=48, dropout=0.0)
    PRETRAIN = TrainConfig(max_iters=20, warmup_iters=5, lr_decay_iters=20, eval_interval=10, eval_iters=2)
    DOMAIN = TrainConfig(max_iters=10, warmup_iters=2, lr_decay_iters=10, eval_interval=5, eval_iters=2)
    LM_BATCH, MAX_TOKENS, EPOCHS = 8, 24, 1
    LORA_RANKS, PROMPT_LENGTHS = (1, 4), (4,)
    BUDGETS, SEEDS, MIN_STEPS = (16, None), (0, 1), 4
    ZH_MODEL = GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=48, dropout=0.0)
    ZH_PRETRAIN = TrainConfig(max_iters=10, warmup_iters=2, lr_decay_iters=10, eval_interval=5, eval_iters=2)
    ZH_EPOCHS = 2
CHECKPOINTS = run.out / "checkpoints" if run.quick else chapter.REPO_ROOT / "checkpoints"
results = {"settings": {"bpe_vocab": BPE_VOCAB, "model": dataclasses.asdict(MODEL), "max_tokens": MAX_TOKENS,
                        "epochs": EPOCHS, "batch_size": BATCH, "learning_rates": LR,
                        "weight_decay": FT_WEIGHT_DECAY, "min_steps": MIN_STEPS}}
seconds = {}                                # per section: the full run's time budget is kept section by section
t_start = time.perf_counter()


def section_done(name: str) -> None:
    seconds[name] = time.perf_counter() - t_start - sum(seconds.values())


# %% 10.1 Pretraining, then the target domain
# ULMFiT's first two steps. The general-domain language model reads Penn Treebank's Wall Street Journal
# and Shakespeare: nothing like a text message. Byte-level BPE (Chapter 5) learned on that text encodes
# any message all the same (no unknown tokens), if in more pieces than the messages' own words would
# need. The second step continues the same language model on the training messages without their
# labels: the target domain's words, spellings and numbers, learned before a single label is seen.
# The valid and test messages are never read here.
general = {split: data.load_text("ptb", split) + data.load_text("tinyshakespeare", split)
           for split in ("train", "valid")}
if GENERAL_CHARS:
    general["train"] = general["train"][:GENERAL_CHARS]
tok = ByteBPE.train(general["train"], BPE_VOCAB)
sms = {split: data.load_labelled("sms-spam", split) for split in ("train", "valid", "test")}
if MESSAGES:
    sms = {split: (texts[:MESSAGES[split]], labels[:MESSAGES[split]]) for split, (texts, labels) in sms.items()}
domain_text = {"train": "\n".join(sms["train"][0]) + "\n",            # data.unlabelled_lines("sms-spam")
               "valid": "\n".join(sms["valid"][0]) + "\n"}
lm_ids = {"general": {s: tok.encode(t) for s, t in general.items()},
          "domain": {s: tok.encode(t) for s, t in domain_text.items()}}
print(f"10.1 byte-level BPE with {tok.vocab_size:,} ids learned on {len(general['train']):,} characters of PTB and "
      f"Shakespeare: {len(lm_ids['general']['train']):,} training tokens "
      f"({len(general['train']) / len(lm_ids['general']['train']):.2f} characters per token); the training "
      f"messages: {len(lm_ids['domain']['train']):,} tokens "
      f"({len(domain_text['train']) / len(lm_ids['domain']['train']):.2f} characters per token)")


def fit_lm(model, ids: dict, config: TrainConfig, label: str) -> dict:
    """Next-token training of `model` on random windows of ids["train"]; valid loss on fixed windows of
    ids["valid"]."""
    T = model.config.block_size
    train_rng, valid_rng = np.random.default_rng(run.seed), np.random.default_rng(run.seed + 1)
    valid = [data.get_batch(ids["valid"], LM_BATCH, T, rng=valid_rng) for _ in range(config.eval_iters)]
    optimizer = configure_optimizer(model, config.learning_rate, config.weight_decay, (config.beta1, config.beta2))
    t0 = time.perf_counter()
    history = train(model, optimizer, lambda _: data.get_batch(ids["train"], LM_BATCH, T, rng=train_rng), config,
                    eval_batches={"valid": valid}, log=lambda line: print(f"{label} {line}"))
    history["seconds"] = time.perf_counter() - t0
    return history


def gpt_with(config: GPTConfig, state: dict | None, seed: int) -> GPT:
    """A GPT of `config`: the pretrained weights `state`, or random ones (seeded) for None."""
    manual_seed(seed)
    model = GPT(config)
    if state is not None:
        model.load_state_dict(state)
    return model


config = dataclasses.replace(MODEL, vocab_size=tok.vocab_size)
gpt = gpt_with(config, None, run.seed)
general_history = fit_lm(gpt, lm_ids["general"], PRETRAIN, "10.1 general")
general_state = gpt.state_dict()
# How well the general model knows text messages, before and after reading the training messages
sms_valid = [data.get_batch(lm_ids["domain"]["valid"], LM_BATCH, MODEL.block_size, rng=np.random.default_rng(7))
             for _ in range(DOMAIN.eval_iters)]
general_on_sms = evaluate(gpt, sms_valid)
domain_history = fit_lm(gpt, lm_ids["domain"], DOMAIN, "10.1 messages")
domain_state = gpt.state_dict()
domain_on_sms = evaluate(gpt, sms_valid)
CHECKPOINTS.mkdir(parents=True, exist_ok=True)
tok.save(CHECKPOINTS / "ch10_bpe.json")
save_checkpoint(CHECKPOINTS / "ch10_gpt_general.npz", gpt_with(config, general_state, run.seed), config=config)
save_checkpoint(CHECKPOINTS / "ch10_gpt_sms.npz", gpt, config=config)
print(f"10.1 the general model reads the valid messages at {general_on_sms:.3f} nats per token; after "
      f"{DOMAIN.max_iters} steps on the training messages, {domain_on_sms:.3f}. Checkpoints and the tokenizer "
      f"in {CHECKPOINTS}")
results["pretraining"] = {
    "tokens": {"general_train": int(lm_ids["general"]["train"].size), "messages_train": int(lm_ids["domain"]["train"].size)},
    "parameters": gpt.num_parameters(), "general": general_history, "domain": domain_history,
    "sms_valid_loss": {"general": general_on_sms, "after_domain": domain_on_sms}}
section_done("10.1")


# %% 10.2 The baselines
# A message becomes at most MAX_TOKENS BPE ids (its start: the end of a long message is cut), padded
# on the right with -1 to one array per split. Every method below is scored the same way on the same
# test messages: accuracy, and the F1 of the spam class, the harmonic mean of its precision and
# recall. 13% of the messages are spam, so answering "ham" every time is 87% accurate with a spam F1
# of 0: accuracy alone flatters a classifier that misses spam.
def encode_split(texts, tok, max_tokens: int) -> np.ndarray:
    return data.pad_sequences([tok.encode(t)[:max_tokens] for t in texts], max_tokens, pad=-1)


# A task: its encoded splits and labels, the class whose F1 is reported, and the model it starts from
sms_task = {"X": {split: encode_split(texts, tok, MAX_TOKENS) for split, (texts, _) in sms.items()},
            "y": {split: labels for split, (_, labels) in sms.items()}, "positive": 1,
            "classes": 2, "config": config, "pretrained": domain_state}
X, y = sms_task["X"], sms_task["y"]
cut = np.mean([len(tok.encode(t)) > MAX_TOKENS for t in sms["train"][0]])
print(f"10.2 SMS: {', '.join(f'{s} {len(v):,} ({v.mean():.1%} spam)' for s, v in y.items())}; "
      f"{cut:.1%} of the training messages are longer than {MAX_TOKENS} tokens and are cut")


def task_scores(task: dict, pred, split: str = "test") -> dict:
    """Accuracy, and the positive class's F1 (SMS: spam) or, without one, the macro F1 of all classes."""
    labels = task["y"][split]
    if task["positive"] is None:
        return {"accuracy": accuracy(pred, labels), "macro_f1": macro_f1(pred, labels)}
    return {"accuracy": accuracy(pred, labels), "spam_f1": f1_score(pred, labels, positive=task["positive"])}


def describe(s: dict) -> str:
    return f"test accuracy {s['accuracy']:.2%}, " + (f"spam F1 {s['spam_f1']:.3f}" if "spam_f1" in s
                                                     else f"macro F1 {s['macro_f1']:.3f}")


def fine_tune(clf, task: dict, lr: float, seed: int, label: str, rows=None, valid_rows=None, epochs: int = EPOCHS,
              batch_size: int = BATCH, patience: int = 2) -> dict:
    """Train what requires gradients in `clf` with classification_loss through scratchlm.train.train_epochs
    on the rows `rows` of the task's training split (all by default), early stopping on `valid_rows` of
    its valid split; returns its scores (valid and test) and costs."""
    X, y = task["X"], task["y"]
    rows = np.arange(len(y["train"])) if rows is None else rows
    valid_rows = np.arange(len(y["valid"])) if valid_rows is None else valid_rows
    steps = epochs * math.ceil(len(rows) / batch_size)
    settings = EpochSettings(epochs=epochs, batch_size=batch_size, learning_rate=lr, min_lr=lr / 10,
                             warmup_steps=min(20, steps // 10), patience=patience, eval_batch_size=256)
    optimizer = configure_optimizer(clf, lr, FT_WEIGHT_DECAY)
    history = train_epochs(clf, optimizer, (X["train"][rows], y["train"][rows]),
                           (X["valid"][valid_rows], y["valid"][valid_rows]), settings,
                           rng=np.random.default_rng(seed), loss_fn=classification_loss,
                           log=lambda line: print(f"{label} {line}"))
    state_bytes = sum(a.nbytes for state in optimizer.state for a in state.values())  # AdamW's two moments
    valid = task_scores(task, predict(clf, X["valid"]), "valid")
    return {**task_scores(task, predict(clf, X["test"])), **{f"valid_{k}": v for k, v in valid.items()},
            "trainable": trainable_parameters(clf), "optimizer_state_bytes": int(state_bytes),
            "bytes_per_task": adapter_bytes(clf),             # what trained: for full fine-tuning, every weight
            "seconds_per_epoch": float(np.mean(history["seconds"])), "epochs": len(history["epoch"]),
            "best_epoch": history["best_epoch"]}


def make(method: str, task: dict, seed: int, r: int = 0, targets: str = "", n_prompt: int = 0) -> SequenceClassifier:
    """A classifier for `task` whose trainable part is `method`'s (10.3): "from scratch" (every weight,
    random), or the task's pretrained body with "full fine-tuning", "last block + head", "LoRA" (rank r
    on `targets`) or "prompt tuning" (n_prompt vectors, the task's verbalizer as the head); seeded."""
    body = gpt_with(task["config"], None if method == "from scratch" else task["pretrained"], seed)
    if method == "prompt tuning":
        return SequenceClassifier(SoftPrompt(body, n_prompt, rng=np.random.default_rng(seed)), task["classes"],
                                  label_ids=task["verbalizer"])
    clf = SequenceClassifier(body, task["classes"])
    if method == "last block + head":
        clf.requires_grad_(False)
        for module in (body.h[len(body.h) - 1], body.ln_f, clf.score):
            module.requires_grad_(True)
    elif method == "LoRA":
        apply_lora(clf, r=r, alpha=2 * r, targets=targets, rng=np.random.default_rng(seed))
        clf.score.requires_grad_(True)
    elif method not in ("from scratch", "full fine-tuning"):
        raise ValueError(f"make: unknown method {method!r}")
    return clf


bow = BagOfWords(unit="word").fit(sms["train"][0])
bow_X = {split: bow.transform(texts) for split, (texts, _) in sms.items()}
t0 = time.perf_counter()
bow_model, bow_history = train_logistic((bow_X["train"], y["train"]), (bow_X["valid"], y["valid"]),
                                        rng=np.random.default_rng(run.seed))
baselines = {"bag of words": {**task_scores(sms_task, bow_model.predict(bow_X["test"])),
                              "trainable": trainable_parameters(bow_model), "features": len(bow),
                              "seconds": time.perf_counter() - t0}}
print(f"10.2 bag of words ({len(bow):,} words seen at least twice, logistic regression): "
      f"{describe(baselines['bag of words'])}")
baselines["from scratch"] = fine_tune(make("from scratch", sms_task, run.seed), sms_task, LR["from scratch"],
                                      run.seed, "10.2 from scratch")
print(f"10.2 the same GPT from random weights on the labels alone: {describe(baselines['from scratch'])}")
results["baselines"] = baselines
section_done("10.2")


# %% 10.3 Fine-tuning, five ways
# The same pretrained body (after 10.1's two steps) every time; what trains differs:
#   linear probe        the body frozen; a logistic regression on its features f (models/logistic.py)
#   last block + head   the top Transformer block, the final norm and the new head
#   full fine-tuning    every weight, and the new head
#   LoRA                A and B of rank r in the chosen matrices (exercise 10.1), and the new head; the
#                       pretrained weights frozen. "qv": the query and value rows of each attention's
#                       packed c_attn (the paper's choice); "all": every matrix of every block
#   prompt tuning       P vectors before the message (exercise 10.3), nothing else: not even a head.
#                       The class is the likelier of the two words " ham" and " spam" after the message,
#                       as the language-model head scores them (a verbalizer)
# The head reads the hidden state of each message's last real token (exercise 10.2).
sms_task["verbalizer"] = [int(tok.encode(" " + name)[0]) for name in data.LABEL_NAMES["sms-spam"]]  # first tokens
print(f"10.3 prompt tuning reads the LM head's logits of the tokens "
      f"{[tok.decode([i]) for i in sms_task['verbalizer']]}")


methods = {}
probe_features = {split: extract_features(gpt_with(config, domain_state, run.seed), X[split]) for split in X}
t0 = time.perf_counter()
probe, _ = train_logistic((probe_features["train"], y["train"]), (probe_features["valid"], y["valid"]),
                          rng=np.random.default_rng(run.seed))
methods["linear probe"] = {**task_scores(sms_task, probe.predict(probe_features["test"])),
                           "trainable": trainable_parameters(probe), "seconds": time.perf_counter() - t0}
print(f"10.3 linear probe: {describe(methods['linear probe'])}")
for name in ("last block + head", "full fine-tuning"):
    methods[name] = fine_tune(make(name, sms_task, run.seed), sms_task, LR[name], run.seed, f"10.3 {name}")
    print(f"10.3 {name}: {describe(methods[name])}, {methods[name]['trainable']:,} trainable parameters")
best_lora, lora = None, None                # the best LoRA on valid accuracy (the fewest parameters on a tie)
for targets in LORA_TARGETS:
    for r in LORA_RANKS:
        name = f"LoRA r={r} {targets}"
        clf = make("LoRA", sms_task, run.seed, r=r, targets=targets)
        methods[name] = {**fine_tune(clf, sms_task, LR["LoRA"], run.seed, f"10.3 {name}"), "r": r,
                         "targets": targets}
        print(f"10.3 {name}: {describe(methods[name])}, {methods[name]['trainable']:,} trainable parameters")
        if best_lora is None or ((methods[name]["valid_accuracy"], -methods[name]["trainable"])
                                 > (methods[best_lora]["valid_accuracy"], -methods[best_lora]["trainable"])):
            best_lora, lora = name, clf           # 10.4 and 10.5 use it; the others are let go
for P in PROMPT_LENGTHS:
    name = f"prompt tuning P={P}"
    methods[name] = fine_tune(make("prompt tuning", sms_task, run.seed, n_prompt=P), sms_task, LR["prompt"], run.seed,
                              f"10.3 {name}")
    print(f"10.3 {name}: {describe(methods[name])}, {methods[name]['trainable']:,} trainable parameters")
LORA_R, LORA_ON = methods[best_lora]["r"], methods[best_lora]["targets"]
print(f"10.3 the best LoRA on valid accuracy: {best_lora}")
results["methods"] = methods
results["best_lora"] = best_lora
section_done("10.3")


# %% 10.4 How many labels does pretraining save?
# Each budget is a stratified sample of the training messages (the spam share kept), drawn anew for
# each seed, which also seeds the new weights and the order of the batches. A classifier that has
# 16 labels to learn from would not have 554 more to choose its epoch with, so the valid messages
# used for early stopping are a stratified sample too, as many as the budget (at least 64). A small
# budget is trained for at least MIN_STEPS steps.
#
# What pretraining buys shrinks as the labels grow. Measured while choosing the settings above (full
# fine-tuning minus from scratch, test accuracy, mean of seeds 0-2): +4.8 points at 16 labels, +3.6 at
# 64, +0.9 at 256, 0.00 at 1,024 and -0.03 at all 3,899 (one message in three runs). A seed moves one
# run's accuracy by about 0.4 points (the sample standard deviation at 1,024 and at all labels), so a
# three-seed gap between two methods is known to about 0.35: beyond 256 labels the two are level. With
# every label the pretrained model has seen nothing the other does not but 2M tokens of WSJ and
# Shakespeare, far from text messages. At 1,024 labels the gap moves with the pretraining, within that
# noise: -0.48 after 900 steps on the training messages alone, -0.36 after the 1,000 general steps and
# 300 on the messages, 0.00 after the 1,000 and 900 (these settings), -0.44 after the 1,000 and 1,500
# (by then the messages' valid loss is back up, 4.02 from 3.97 nats per token: their 143k tokens read
# 21 times). With every label the valid messages agree: from scratch 97.95%, full fine-tuning 97.65%
# (the learning rates' table above).
efficiency = {"budgets": [n or len(y["train"]) for n in BUDGETS], "seeds": list(SEEDS)}
curves = {name: [] for name in ("bag of words", "from scratch", "full fine-tuning", best_lora)}
for n in BUDGETS:
    for seed in (run.seed + s for s in SEEDS):
        rng = np.random.default_rng([seed, n or 0])
        rows = data.stratified_sample(y["train"], n, rng)
        valid_rows = data.stratified_sample(y["valid"], None if n is None else max(64, n), rng)
        batch = min(BATCH, len(rows))
        epochs = max(EPOCHS, math.ceil(MIN_STEPS / math.ceil(len(rows) / batch)))
        point = {}
        model, _ = train_logistic((bow_X["train"][rows], y["train"][rows]),
                                  (bow_X["valid"][valid_rows], y["valid"][valid_rows]), rng=np.random.default_rng(seed))
        point["bag of words"] = task_scores(sms_task, model.predict(bow_X["test"]))
        for name in ("from scratch", "full fine-tuning", best_lora):
            if n is None and seed == run.seed:       # the same run as 10.2's or 10.3's: not repeated
                point[name] = (baselines if name == "from scratch" else methods)[name]
                continue
            clf = (make("LoRA", sms_task, seed, r=LORA_R, targets=LORA_ON) if name == best_lora
                   else make(name, sms_task, seed))
            lr = LR["LoRA" if name == best_lora else name]
            point[name] = fine_tune(clf, sms_task, lr, seed, f"10.4 {len(rows)} labels, seed {seed}, {name}", rows,
                                    valid_rows, epochs=epochs, batch_size=batch, patience=max(2, epochs // 4))
        for name in curves:
            curves[name].append({"labels": len(rows), "seed": seed, "accuracy": point[name]["accuracy"],
                                 "spam_f1": point[name]["spam_f1"]})
        print(f"10.4 {len(rows):5d} labels, seed {seed}: "
              + "; ".join(f"{name} {point[name]['accuracy']:.2%} (F1 {point[name]['spam_f1']:.3f})" for name in curves))


def mean_at(name: str, labels: int, key: str) -> float:
    return float(np.mean([p[key] for p in curves[name] if p["labels"] == labels]))


labels_axis = sorted({p["labels"] for p in curves["bag of words"]})
summary = {name: {str(n): {"accuracy": mean_at(name, n, "accuracy"), "spam_f1": mean_at(name, n, "spam_f1")}
                  for n in labels_axis} for name in curves}
gaps = {str(n): summary["full fine-tuning"][str(n)]["accuracy"] - summary["from scratch"][str(n)]["accuracy"]
        for n in labels_axis}
for n in labels_axis:
    print(f"10.4 {n:5d} labels, mean of {len(SEEDS)} seeds: "
          + "; ".join(f"{name} {summary[name][str(n)]['accuracy']:.2%} (F1 {summary[name][str(n)]['spam_f1']:.3f})"
                      for name in curves))
# Test accuracies are whole messages out of the same test set: equal counts are a tie, however the float
# means round, hence the 1e-12.
at_or_above = all(g >= -1e-12 for g in gaps.values())
print("10.4 full fine-tuning minus from scratch (test accuracy, mean of seeds): "
      + ", ".join(f"{100 * g:+.2f} points at {n} labels" for n, g in gaps.items())
      + f"; at or above at every budget: {'yes' if at_or_above else 'no'}")
efficiency.update(runs=curves, mean=summary, pretrained_minus_scratch_accuracy=gaps,
                  pretrained_at_or_above_scratch=at_or_above)
results["label_efficiency"] = efficiency

fig, axes = plotting.figure(1, 2, width=5.0, height=3.8)
for ax, key, title in zip(axes, ("accuracy", "spam_f1"), ("test accuracy", "spam F1 on test")):
    for (name, points), color in zip(curves.items(), plotting.COLORS):
        ax.plot(labels_axis, [summary[name][str(n)][key] for n in labels_axis], "o-", color=color, label=name)
        ax.scatter([p["labels"] for p in points], [p[key] for p in points], s=8, color=color, alpha=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training messages")
    ax.set_title(title)
axes[0].axhline(1 - y["test"].mean(), color=plotting.COLORS[7], linestyle=":", linewidth=1)
axes[0].text(labels_axis[0], 1 - y["test"].mean(), " always 'ham'", va="bottom", fontsize=8)
axes[1].legend(fontsize=8, loc="lower right")
fig.suptitle(f"SMS spam: pretraining against labels (mean of {len(SEEDS)} seeds, each seed a dot)")
plotting.save(fig, run.out, "ch10_label_efficiency")
section_done("10.4")


# %% 10.5 What each method costs
# Per task, a fully fine-tuned model is a whole new copy of the weights; LoRA and prompt tuning keep
# one frozen base and save only what trained (scratchlm.peft.save_adapter: the adapter's arrays and,
# for LoRA, where they go). AdamW keeps two numbers per trained parameter (its moment estimates), so
# optimiser memory follows the trainable parameters too. Seconds per epoch do not shrink as much:
# LoRA and prompt tuning still run the whole model forward and backward (the gradient has to reach
# the adapters in the lower blocks and the prompt at the bottom); they only skip the frozen weights'
# own gradients.
adapters = CHECKPOINTS / "adapters"
adapters.mkdir(exist_ok=True)
cost = {}
for name, m in methods.items():
    if name == "linear probe":
        continue
    cost[name] = {"trainable": m["trainable"], "optimizer_state_bytes": m["optimizer_state_bytes"],
                  "seconds_per_epoch": m["seconds_per_epoch"], "bytes_per_task": m["bytes_per_task"],
                  "accuracy": m["accuracy"], "spam_f1": m["spam_f1"]}
total = methods["full fine-tuning"]["trainable"]
for name, c in cost.items():
    print(f"10.5 {name:22s} {c['trainable']:>9,} trainable ({c['trainable'] / total:7.3%}), optimiser state "
          f"{c['optimizer_state_bytes'] / 1024:8.1f} KiB, {c['seconds_per_epoch']:5.1f} s per epoch, "
          f"{c['bytes_per_task'] / 1024:8.1f} KiB to keep per task, {describe(c)}")
# The adapter is the whole task: saved, loaded onto a fresh copy of the base, it gives the same
# predictions; merged into the weights (W + alpha/r B A), it costs nothing at inference.
path = save_adapter(adapters / "ch10_sms_lora.npz", lora)
fresh = make("full fine-tuning", sms_task, run.seed + 99)        # the base alone, a new head
load_adapter(path, fresh)
sample = X["test"][:64]
with no_grad():
    before = lora.eval()(sample, padded_lengths(sample))[0].data
    reloaded = fresh.eval()(sample, padded_lengths(sample))[0].data
    merge_lora(lora)
    merged = lora(sample, padded_lengths(sample))[0].data
print(f"10.5 {best_lora}: adapter file {path.stat().st_size / 1024:.1f} KiB; loaded onto a fresh base, the largest "
      f"logit difference is {np.abs(reloaded - before).max():.1e}; merged into the weights, "
      f"{np.abs(merged - before).max():.1e} (float32)")
results["cost"] = {"methods": cost, "total_parameters": total, "adapter_file_bytes": path.stat().st_size,
                   "adapter_reload_max_logit_difference": float(np.abs(reloaded - before).max()),
                   "merged_max_logit_difference": float(np.abs(merged - before).max())}

fig, ax = plotting.figure(width=6.5, height=4.2)
families = {"full": plotting.COLORS[0], "last": plotting.COLORS[2], "LoRA": plotting.COLORS[1],
            "prompt": plotting.COLORS[3], "linear": plotting.COLORS[4], "from": plotting.COLORS[7]}
points = {**{n: m for n, m in methods.items()}, "from scratch": baselines["from scratch"]}
for name, m in points.items():
    ax.scatter(m["trainable"], m["accuracy"], color=families[name.split()[0]], s=30)
    ax.annotate(name, (m["trainable"], m["accuracy"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
ax.axhline(baselines["bag of words"]["accuracy"], color=plotting.COLORS[5], linestyle="--", linewidth=1)
ax.text(ax.get_xlim()[0], baselines["bag of words"]["accuracy"], " bag of words", fontsize=8, va="bottom")
ax.set_xscale("log")
ax.set_xlabel("trainable parameters")
ax.set_ylabel("test accuracy")
ax.set_title("SMS spam, every labelled training message: accuracy against what is trained")
plotting.save(fig, run.out, "ch10_cost_accuracy")

fig, ax = plotting.figure(width=5.5, height=3.8)
for targets, color in zip(LORA_TARGETS, plotting.COLORS[1:]):
    ax.plot(LORA_RANKS, [methods[f"LoRA r={r} {targets}"]["accuracy"] for r in LORA_RANKS], "o-", color=color,
            label=f"LoRA on {'q and v' if targets == 'qv' else 'every matrix'}")
ax.axhline(methods["full fine-tuning"]["accuracy"], color=plotting.COLORS[0], linestyle="--", label="full fine-tuning")
ax.axhline(baselines["from scratch"]["accuracy"], color=plotting.COLORS[7], linestyle=":", label="from scratch")
ax.set_xscale("log", base=2)
ax.set_xticks(LORA_RANKS, [str(r) for r in LORA_RANKS])
ax.set_xlabel("rank r")
ax.set_ylabel("test accuracy")
ax.legend(fontsize=8)
ax.set_title("LoRA's rank and where it goes")
plotting.save(fig, run.out, "ch10_lora_rank")
section_done("10.5")


# %% 10.6 The same comparison in Chinese
# Which section of the Book of Songs a poem comes from: 风 (airs of the states, 160 poems), 雅
# (odes, 105) or 颂 (hymns, 40). A character-level GPT is pretrained on the other classics (the
# Analects, the Tang poems, and the Book of Songs without its valid and test poems: data.unlabelled_lines).
# Poems are cut to their first ZH block_size characters. The bag of characters marks which
# characters a poem holds (presence, chosen on valid). Three classes, one of them small, so the score
# beside accuracy is the macro F1: the mean of the three classes' F1.
zh = {split: data.load_labelled("shijing-sections", split) for split in ("train", "valid", "test")}
zh_text = data.unlabelled_lines("shijing-sections")
# The characters seen at least ZH_MIN_COUNT times in the pretraining text; the rarer ones, and any never
# seen there, read as one <unk>. The vocabulary sets the cost of the LM head (V x C per position): all
# of the classics' characters would make it most of the model.
chars, counts = np.unique(list("".join(zh_text)), return_counts=True)
zh_tok = CharTokenizer(chars[counts >= ZH_MIN_COUNT].tolist(), unk=True)
zh_ids = {"train": zh_tok.encode("\n".join(zh_text)), "valid": zh_tok.encode("\n".join(zh["valid"][0]))}
zh_config = dataclasses.replace(ZH_MODEL, vocab_size=zh_tok.vocab_size)
zh_gpt = gpt_with(zh_config, None, run.seed)
zh_history = fit_lm(zh_gpt, zh_ids, ZH_PRETRAIN, "10.6 classics")
zh_state = zh_gpt.state_dict()
zh_task = {"X": {s: encode_split(texts, zh_tok, zh_config.block_size) for s, (texts, _) in zh.items()},
           "y": {s: labels for s, (_, labels) in zh.items()}, "positive": None,
           "classes": 3, "config": zh_config, "pretrained": zh_state}
unk_rate = np.mean(np.concatenate([x[x >= 0] for x in zh_task["X"].values()]) == zh_tok.unk_id)
print(f"10.6 the pretraining text: {sum(map(len, zh_text)):,} characters, {len(chars):,} distinct; the "
      f"{zh_tok.vocab_size - 1:,} seen at least {ZH_MIN_COUNT} times are kept, the rest read as <unk> "
      f"({unk_rate:.1%} of the labelled poems' characters)")
boc = BagOfWords(unit="char", binary=True).fit(zh["train"][0])
boc_X = {split: boc.transform(texts) for split, (texts, _) in zh.items()}
chinese = {name: [] for name in ("bag of characters", "from scratch", "full fine-tuning", "LoRA")}
for seed in (run.seed + s for s in SEEDS):
    model, _ = train_logistic((boc_X["train"], zh_task["y"]["train"]), (boc_X["valid"], zh_task["y"]["valid"]),
                              rng=np.random.default_rng(seed))
    chinese["bag of characters"].append(task_scores(zh_task, model.predict(boc_X["test"])))
    for name in ("from scratch", "full fine-tuning", "LoRA"):
        clf = make(name, zh_task, seed, r=LORA_R, targets=LORA_ON)
        chinese[name].append(fine_tune(clf, zh_task, LR[name], seed, f"10.6 seed {seed} {name}", epochs=ZH_EPOCHS,
                                       batch_size=16, patience=3))
zh_summary = {name: {key: float(np.mean([r[key] for r in rs])) for key in ("accuracy", "macro_f1")}
              for name, rs in chinese.items()}
for name, s in zh_summary.items():
    print(f"10.6 {name}: test accuracy {s['accuracy']:.2%}, macro F1 {s['macro_f1']:.3f} (mean of {len(SEEDS)} seeds)")
results["chinese"] = {"split": {s: len(v) for s, v in zh_task["y"].items()}, "pretraining_characters": sum(map(len, zh_text)),
                      "pretraining": zh_history, "runs": chinese, "mean": zh_summary}
section_done("10.6")

results["seconds"] = seconds
print(f"10 done in {sum(seconds.values()) / 60:.1f} minutes: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
chapter.write_results(run, "ch10_results", results)
