"""Language models built on `scratchlm.autograd` and `scratchlm.nn`.

    gpt.py                GPTConfig, GPT, KVCache: the decoder-only Transformer    Chapters 6-7
    attention_kernels.py  fused causal softmax, forward and backward (Numba + NumPy twins)
"""
