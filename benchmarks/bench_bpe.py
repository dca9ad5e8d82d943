"""Byte-level BPE on tinyshakespeare: training time and encoding speed (the claims of Chapter 5).

    python benchmarks/bench_bpe.py [--threads 1] [--vocab 1024 4096] [--repeats 3] [--skip-python]

Training learns vocab - 256 merges from all of tinyshakespeare (1,115,394 bytes), end to end
(pre-tokenization included), with
    plain Python   scratchlm's train_bpe_ref, the algorithm as the book states it (timed once)
    Numba          scratchlm's train_bpe_numba (median of --repeats runs after a warm-up call, so
                   compilation is not counted)
    HF tokenizers  Hugging Face's Rust trainer with its byte-level pre-tokenizer, when installed
The two scratchlm trainers must give the same merges (checked). HF's tie-breaking differs from
ours, so tied merges may come in another order; the table counts how many of our merges HF
learned too, and gives both tokenizers' bytes per token on the text.

Encoding: MB/s for the whole text as one string, ours and HF's, median of --repeats.
All thread pools are pinned to --threads (benchmarks/_common.py).
"""

from __future__ import annotations

from _common import set_threads

THREADS = set_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from scratchlm import data  # noqa: E402
from scratchlm.tokenizers import ByteBPE, train_bpe_numba, train_bpe_ref  # noqa: E402

try:
    import tokenizers as hf
except ImportError:  # the benchmark still times scratchlm alone
    hf = None


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def median_time(fn, *args, repeats: int):
    times = []
    for _ in range(repeats):
        out, t = timed(fn, *args)
        times.append(t)
    return out, statistics.median(times)


def row(cells) -> None:
    """One line of a table: right-aligned columns, wide enough for the longest header."""
    print(" ".join(f"{c:>{w}}" for c, w in zip(map(str, cells), [6, 13, 8, 9, 12, 14, 17, 15, 19])), flush=True)


def hf_train(text: str, vocab_size: int):
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                     initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return tok


def hf_merges(tok) -> list[tuple[bytes, bytes]]:
    """A trained HF byte-level BPE's merges as pairs of byte strings.

    HF's byte-level alphabet writes byte b as one printable character (GPT-2's table): the 188
    printable Latin-1 bytes as themselves, the other 68 as chr(256), chr(257), ... in byte order.
    """
    printable = [b for b in range(256) if chr(b).isprintable() and b not in (0x20, 0xA0, 0xAD)]
    others = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(bytes(char_to_byte[c] for c in s) for s in m) for m in merges]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=THREADS, help="threads for every pool (default 1)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-python", action="store_true",
                        help="leave out the plain-Python runs (minutes)")
    args = parser.parse_args()

    text = data.load_text("tinyshakespeare", "train") + data.load_text("tinyshakespeare", "valid")
    n_bytes = len(text.encode("utf-8"))
    print(f"tinyshakespeare: {n_bytes:,} bytes; threads: {args.threads} (of {os.cpu_count()} CPUs); "
          f"HF tokenizers: {hf.__version__ if hf else 'not installed'}")
    train_bpe_numba(text[:10_000], 300)  # warm-up: load the compiled kernels

    print("\nTraining (seconds)")
    row(["vocab", "plain Python", "Numba", "speed-up", "same merges", "HF tokenizers",
         "bytes/token ours", "bytes/token HF", "merges in HF's set"])
    trained = {}
    for vocab in args.vocab:
        merges, t_numba = median_time(train_bpe_numba, text, vocab, repeats=args.repeats)
        trained[vocab] = ByteBPE(merges)
        python_cells, hf_cells = ["-", "-", "-"], ["-", "-", "-"]
        if not args.skip_python:
            python_merges, t_python = timed(train_bpe_ref, text, vocab)
            python_cells = [f"{t_python:.2f}", f"{t_python / t_numba:.0f}x", str(python_merges == merges)]
        if hf:
            trained[vocab, "hf"], t_hf = median_time(hf_train, text, vocab, repeats=args.repeats)
            ours = {(trained[vocab].vocab[a], trained[vocab].vocab[b]) for a, b in merges}
            theirs = hf_merges(trained[vocab, "hf"])
            hf_cells = [f"{t_hf:.3f}", f"{n_bytes / len(trained[vocab, 'hf'].encode(text).ids):.3f}",
                        f"{len(ours & set(theirs))}/{len(theirs)}"]
        bytes_per_token = n_bytes / len(trained[vocab].encode(text))
        row([vocab, python_cells[0], f"{t_numba:.3f}", *python_cells[1:], hf_cells[0],
             f"{bytes_per_token:.3f}", *hf_cells[1:]])

    print("\nEncoding all of tinyshakespeare (MB/s, 1 MB = 10^6 bytes)")
    row(["vocab", "scratchlm", "HF tokenizers"])
    for vocab in args.vocab:
        _, t = median_time(trained[vocab].encode, text, repeats=args.repeats)
        hf_col = "-"
        if hf:
            _, t_hf = median_time(trained[vocab, "hf"].encode, text, repeats=args.repeats)
            hf_col = f"{n_bytes / t_hf / 1e6:.2f}"
        row([vocab, f"{n_bytes / t / 1e6:.2f}", hf_col])


if __name__ == "__main__":
    main()
