"""Language models built on `scratchlm.autograd` and `scratchlm.nn`.

    nplm.py               NPLMConfig, NPLM: Bengio et al.'s neural probabilistic LM      Chapter 4
    gpt.py                GPTConfig, GPT, KVCache: the decoder-only Transformer         Chapters 6-7
    attention_kernels.py  fused causal softmax, forward and backward (Numba + NumPy twins)

Each model is called the same way, `logits, loss = model(x, targets)`, so `scratchlm.train` trains
all of them; the GPT also exposes `next_logits` for `scratchlm.generate`.
"""
