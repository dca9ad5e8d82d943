"""scratchlm: language models built from scratch in NumPy, chapter by chapter.

Data flows one way: text -> tokens -> counts or tensors -> model -> loss/metrics -> figure.

    scratchlm.data          data sets (registry, splits, batches)        Chapter 5 onwards
    scratchlm.tokenizers    characters, words, byte-level BPE            Chapter 5
    scratchlm.ngram         counting, smoothing, ARPA                    Chapters 1-2
    scratchlm.autograd      Tensor, reverse-mode autodiff, fused ops     Chapter 3
    scratchlm.nn, .optim    layers, optimisers, schedules                Chapter 3 onwards
    scratchlm.models        NPLM (Chapter 4), GPT (Chapter 6)
    scratchlm.metrics       nats, bits, perplexity
    scratchlm.plotting      the book's figure style
    scratchlm.runtime       thread-pool and malloc settings made at import; start_mpi
    scratchlm.sweep         training runs, cached, over MPI ranks           Chapter 11
"""

from scratchlm import runtime  # noqa: F401  (thread-pool and malloc settings, before any kernel runs)

__version__ = "0.1.0"
