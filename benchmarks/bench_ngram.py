"""n-gram estimation and scoring speed on Penn Treebank (Chapters 1-2), with the references beside.

    python benchmarks/bench_ngram.py [--repeats 3] [--nltk-sentences 2000]

Rows:
  fit      `ngram.fit(train sentences, N, "modified_kneser_ney")` on PTB train (929k tokens): text
           -> vocabulary -> ids -> counts -> adjusted counts -> discounts -> interpolation. "cold"
           is the first fit in a fresh process (it loads Numba's cached kernels); "warm" the best
           of --repeats later ones. Peak memory is the process's maximum resident set, measured in
           a fresh process per order, minus what it held before fitting (Python, NumPy, Numba and
           the text already loaded).
  score    tokens/s of `lm.logprob_ids(ids)` over PTB test (82,430 scored tokens, ids already
           encoded), and of `lm.perplexity(sentences)` from token strings.
  nltk.lm  KneserNeyInterpolated, when nltk is installed: fit on the first --nltk-sentences
           sentences, scoring timed on the first 300 test tokens (it is ~10^4 times slower).
  KenLM    lmplz's fit time when `lmplz` is on PATH; the `kenlm` Python module's scoring of our
           ARPA file (full_scores, sentence by sentence) when it is installed.

Timings use time.perf_counter; on a shared machine they are noisy (the script prints the load).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import set_threads  # noqa: E402

THREADS = set_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from scratchlm import data, ngram  # noqa: E402


def load(split: str) -> list[list[str]]:
    return [line.split() for line in data.load_lines("ptb", split)]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB. Unlike getrusage's ru_maxrss it is not
    inherited from the parent across fork + exec."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_child(order: int) -> None:
    """Run in a fresh process: print the peak-RSS growth of one fit as JSON."""
    train = load("train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ngram.fit(train[:100], order, "modified_kneser_ney")  # load the kernels first
    before = peak_rss_mb()
    t = time.perf_counter()
    lm = ngram.fit(train, order, "modified_kneser_ney")
    seconds = time.perf_counter() - t
    print(json.dumps({"before_mb": before, "peak_mb": peak_rss_mb(), "seconds": seconds, "sizes": lm.sizes()}))


def fit_cold(order: int) -> float:
    """Seconds for the first fit in a fresh interpreter (Numba kernels loaded from cache)."""
    code = ("import time; from scratchlm import data, ngram; "
            "train = [l.split() for l in data.load_lines('ptb', 'train')]; "
            f"t = time.perf_counter(); ngram.fit(train, {order}, 'modified_kneser_ney'); "
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_nltk(train, test, n_sentences: int, n_tokens: int = 300):
    try:
        from nltk.lm import KneserNeyInterpolated
        from nltk.lm.preprocessing import padded_everygram_pipeline
    except ImportError:
        return None
    t = time.perf_counter()
    grams, vocab = padded_everygram_pipeline(3, train[:n_sentences])
    lm = KneserNeyInterpolated(3)
    lm.fit(grams, vocab)
    fit_s = time.perf_counter() - t
    events = []
    for s in test:
        toks = ["<s>", "<s>", *s, "</s>"]
        events += [(toks[i], toks[i - 2:i]) for i in range(2, len(toks))]
    events = events[:n_tokens]
    t = time.perf_counter()
    for word, context in events:
        lm.score(word, context)
    return fit_s, len(events) / (time.perf_counter() - t)


def bench_kenlm_scoring(lm, test, repeats: int):
    try:
        import kenlm
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lm.arpa")
        ngram.write_arpa(lm, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = kenlm.Model(path)
    lines = [" ".join(s) for s in test]
    n = sum(len(s) + 1 for s in test)
    seconds = best_of(lambda: [sum(x[0] for x in model.full_scores(line)) for line in lines], repeats)
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nltk-sentences", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child)

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; threads {THREADS}")
    train, test = load("train"), load("test")
    rows = []
    models = {}
    for order in (3, 5):
        cold = fit_cold(order)
        warm = best_of(lambda: models.__setitem__(order, ngram.fit(train, order, "modified_kneser_ney")),
                       args.repeats)
        mem = json.loads(subprocess.run([sys.executable, __file__, "--memory-child", str(order)],
                                        capture_output=True, text=True, check=True).stdout)
        rows.append((f"scratchlm fit MKN order {order}", f"{warm:.2f} s warm, {cold:.2f} s cold",
                     f"peak RSS +{mem['peak_mb'] - mem['before_mb']:.0f} MB (total {mem['peak_mb']:.0f} MB)"))

    ids = models[5].encode(test)
    n_scored = int((ids != models[5].vocab.bos_id).sum())
    for order in (3, 5):
        lm = models[order]
        s_ids = best_of(lambda: lm.logprob_ids(ids), max(args.repeats, 5))
        s_text = best_of(lambda: lm.perplexity(test), max(args.repeats, 5))
        rows.append((f"scratchlm score order {order} (ppl {lm.perplexity(test):.2f})",
                     f"{n_scored / s_ids / 1e6:.2f} M tokens/s from ids",
                     f"{n_scored / s_text / 1e6:.2f} M tokens/s from strings"))

    nltk = bench_nltk(train, test, args.nltk_sentences)
    if nltk is None:
        rows.append(("nltk.lm KneserNeyInterpolated", "not installed", ""))
    else:
        rows.append((f"nltk.lm KN order 3, {args.nltk_sentences} sentences", f"fit {nltk[0]:.2f} s",
                     f"{nltk[1]:.0f} tokens/s ({1e3 / nltk[1]:.1f} ms per token)"))

    if shutil.which("lmplz"):
        with tempfile.TemporaryDirectory() as tmp:
            text = os.path.join(tmp, "train.txt")
            with open(text, "w") as f:
                f.writelines(" ".join("<ptbunk>" if w == "<unk>" else w for w in s) + "\n" for s in train)
            for order in (3, 5):
                t = time.perf_counter()
                subprocess.run(["lmplz", "-o", str(order), "--text", text, "--arpa", os.path.join(tmp, "o.arpa")],
                               capture_output=True, check=True)
                rows.append((f"KenLM lmplz -o {order}", f"{time.perf_counter() - t:.2f} s", ""))
    else:
        rows.append(("KenLM lmplz", "not on PATH", ""))
    ken = bench_kenlm_scoring(models[5], test, args.repeats)
    rows.append(("KenLM python module, order 5 (our ARPA)",
                 "not installed" if ken is None else f"{ken / 1e6:.2f} M tokens/s", "full_scores per sentence"))

    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'time / speed':34s}  notes")
    for name, a, b in rows:
        print(f"{name:{width}}  {a:34s}  {b}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
