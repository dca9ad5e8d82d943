"""Language models built on `scratchlm.autograd` and `scratchlm.nn`.

    nplm.py               NPLMConfig, NPLM: Bengio et al.'s neural probabilistic LM      Chapter 4
    gpt.py                GPTConfig, GPT: the decoder-only Transformer (GPT-2-style or    Chapters 6-7, 9
                          the modern decoder: RMSNorm, RoPE, SwiGLU); Block, MLP: the
                          one Transformer block every architecture is built from
    bert.py               BERTConfig, BERT: the encoder, a masked language model; Stack:  Chapter 9
                          positions + Blocks + final norm, the body of BERT and T5
    t5.py                 T5Config, T5: the encoder-decoder (encoder Stack, decoder      Chapter 9
                          Stack with cross-attention, tied embeddings); seq2seq_loss
    attention.py          the attention op (causal, bidirectional, padded, cross), the   Chapters 6-7, 9
                          SelfAttention and CrossAttention modules, KVCache, record_attention
    attention_kernels.py  fused attention softmax, forward and backward (Numba + NumPy twins)
    rnn.py                RNNConfig, RNN, LSTM, RecurrentLM, BiLM, TruncatedBPTT:          Chapter 8
                          recurrent LMs and ELMo's bidirectional LM
    rnn_kernels.py        fused LSTM/RNN cell steps, forward and backward (Numba + NumPy twins)
    classifier.py         SequenceClassifier: a class read at a decoder body's last real     Chapter 10
                          token (new score layer or the LM head's label tokens); its loss_fn
    logistic.py           BagOfWords, LogisticRegression, train_logistic: the bag-of-words  Chapter 10
                          baseline and the linear probe on frozen features

Each model is called the same way, `logits, loss = model(x, targets)` (BERT also takes key_lengths
for a padded batch; T5 is called `model(src, src_lengths, dec_in, targets)`, and trains through
`loss_fn=seq2seq_loss`), so `scratchlm.train` trains all of them; the GPT exposes `next_logits` for
`scratchlm.generate`, and T5 `encode` and `next_logits(idx, memory)` for decoding from a source.
"""
