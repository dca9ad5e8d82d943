"""Language models built on `scratchlm.autograd` and `scratchlm.nn`.

    nplm.py               NPLMConfig, NPLM: Bengio et al.'s neural probabilistic LM      Chapter 4
    gpt.py                GPTConfig, GPT: the decoder-only Transformer (GPT-2-style or    Chapters 6-7, 9
                          the modern decoder: RMSNorm, RoPE, SwiGLU); Block, MLP: the
                          one Transformer block every architecture is built from
    attention.py          the attention op (causal, bidirectional, padded, cross), the   Chapters 6-7, 9
                          SelfAttention and CrossAttention modules, KVCache, record_attention
    attention_kernels.py  fused attention softmax, forward and backward (Numba + NumPy twins)
    rnn.py                RNNConfig, RNN, LSTM, RecurrentLM, BiLM, TruncatedBPTT:          Chapter 8
                          recurrent LMs and ELMo's bidirectional LM
    rnn_kernels.py        fused LSTM/RNN cell steps, forward and backward (Numba + NumPy twins)

Each model is called the same way, `logits, loss = model(x, targets)`, so `scratchlm.train` trains
all of them; the GPT also exposes `next_logits` for `scratchlm.generate`.
"""
