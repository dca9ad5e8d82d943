"""Bad input to the GPT, the decoders and the tokenizers (Chapters 5-7), and to the special tokens,
pretraining objectives and synthetic tasks (Chapter 9), gets an error that names the offending
field, value, shape or file, not a deep traceback or a silent wrong answer.

Each table row is (id, call, exception type, regex the message must match); the call takes the
test's tmp_path, since the file cases write their bad file there first.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scratchlm import tokenizers
from scratchlm.checkpoint import save_checkpoint
from scratchlm.generate import beam_search, generate, log_likelihood, next_token_probs
from scratchlm.models.gpt import GPT, GPTConfig, record_attention
from scratchlm.nn import Linear
from scratchlm.objectives import bert_mask, seq2seq_batch, span_corrupt, span_noise_mask
from scratchlm.rng import manual_seed
from scratchlm.tasks import NumberWords, number_to_words, split_numbers, words_to_number
from scratchlm.tokenizers import PAD, ByteBPE, CharTokenizer, WordVocab

TINY = dict(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8)


def tiny_gpt() -> GPT:
    manual_seed(0)
    return GPT(GPTConfig(**TINY))


class NeverRun:
    """A decodable model that fails the test if it is run: bad settings must be refused first."""
    block_size = 8

    def next_logits(self, idx):
        raise AssertionError("the model ran before the decoding settings were checked")


def config(**change):
    return lambda tmp_path: GPTConfig(**{**TINY, **change})


def forward(idx, targets=None):
    return lambda tmp_path: tiny_gpt()(np.asarray(idx), targets)


def write_then(content: bytes | str, call):
    """Write `content` to tmp_path/tok.json, then call(path)."""
    def run(tmp_path):
        path = tmp_path / "tok.json"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return call(path)
    return run


def gpt_checkpoint_with(**change):
    """A GPT checkpoint whose stored config has `change` applied (same weights), then load it."""
    def run(tmp_path):
        model = tiny_gpt()
        for field, value in change.items():   # set after construction, so nothing checks it before saving
            setattr(model.config, field, value)
        save_checkpoint(tmp_path / "gpt.npz", model, config=model.config)
        return GPT.from_checkpoint(tmp_path / "gpt.npz")
    return run


CASES = [
    # GPTConfig: every size a positive integer, the width split evenly between the heads
    ("config vocab_size 0", config(vocab_size=0), ValueError, r"GPTConfig: vocab_size must be an integer >= 1, got 0"),
    ("config block_size -1", config(block_size=-1), ValueError, r"block_size must be an integer >= 1, got -1"),
    ("config n_layer 0", config(n_layer=0), ValueError, r"n_layer must be an integer >= 1, got 0"),
    ("config n_layer 2.5", config(n_layer=2.5), ValueError, r"n_layer must be an integer >= 1, got 2\.5"),
    ("config n_head 0", config(n_head=0), ValueError, r"n_head must be an integer >= 1, got 0"),
    ("config n_embd % n_head", config(n_embd=10, n_head=4), ValueError,
     r"n_embd=10 is not a multiple of n_head=4"),
    ("config dropout 1", config(dropout=1.0), ValueError, r"dropout must be in \[0, 1\), got 1\.0"),
    ("config gelu", config(gelu="relu"), ValueError, r"gelu must be 'tanh' or 'none', got 'relu'"),
    ("checkpoint with a bad config", gpt_checkpoint_with(n_head=3), ValueError,
     r"gpt\.npz: GPTConfig: n_embd=8 is not a multiple of n_head=3"),
    # GPT.forward: ids are (B, T) with 1 <= T <= block_size, targets the same shape
    ("1-D ids", forward([1, 2, 3]), ValueError, r"shape \(B, T\) with T >= 1, got shape \(3,\).*idx\[None\]"),
    ("T = 0", forward(np.zeros((2, 0), np.int64)), ValueError, r"T >= 1, got shape \(2, 0\)"),
    ("T > block_size", forward(np.zeros((1, 7), np.int64)), ValueError, r"7 tokens is longer than block_size 6"),
    ("targets of another shape", forward(np.zeros((2, 3), np.int64), np.zeros((2, 2), np.int64)), ValueError,
     r"targets must have the shape of idx \(2, 3\), got \(2, 2\)"),
    ("id outside the vocabulary", forward([[1, 7]]), IndexError, r"id 7 .* outside \[0, 7\)"),
    # decoding settings, refused before the model runs
    ("temperature nan", lambda p: generate(NeverRun(), [[1]], 3, temperature=math.nan), ValueError,
     r"temperature must be a finite number >= 0 \(0 is greedy\), got nan"),
    ("temperature -1", lambda p: generate(NeverRun(), [[1]], 3, temperature=-1.0), ValueError,
     r"temperature .* got -1\.0"),
    ("temperature inf", lambda p: generate(NeverRun(), [[1]], 3, temperature=math.inf), ValueError,
     r"temperature .* got inf"),
    ("sampling at temperature 0", lambda p: next_token_probs(np.zeros((1, 3)), temperature=0), ValueError,
     r"temperature must be a finite number > 0 .*got 0"),
    ("max_new_tokens -1", lambda p: generate(NeverRun(), [[1]], -1), ValueError,
     r"max_new_tokens must be an integer >= 0, got -1"),
    ("top_k 0", lambda p: generate(NeverRun(), [[1]], 3, top_k=0), ValueError, r"top_k must be an integer >= 1.*got 0"),
    ("top_k 2.5", lambda p: generate(NeverRun(), [[1]], 3, top_k=2.5), ValueError, r"top_k .*got 2\.5"),
    ("top_p 0", lambda p: generate(NeverRun(), [[1]], 3, top_p=0.0), ValueError,
     r"top_p must be in \(0, 1\].*got 0\.0"),
    ("top_p 1.5", lambda p: generate(NeverRun(), [[1]], 3, top_p=1.5), ValueError, r"top_p .*got 1\.5"),
    ("top_p nan", lambda p: generate(NeverRun(), [[1]], 3, top_p=math.nan), ValueError, r"top_p .*got nan"),
    ("1-D prompt to generate", lambda p: generate(NeverRun(), [1, 2], 3), ValueError,
     r"prompt must be \(B, T\) ids with T >= 1, got shape \(2,\)"),
    ("beam_width 0", lambda p: beam_search(NeverRun(), [1], 3, beam_width=0), ValueError,
     r"beam_width must be an integer >= 1, got 0"),
    ("beam max_new_tokens -2", lambda p: beam_search(NeverRun(), [1], -2), ValueError,
     r"max_new_tokens must be an integer >= 0, got -2"),
    ("beam length_penalty nan", lambda p: beam_search(NeverRun(), [1], 3, length_penalty=math.nan), ValueError,
     r"length_penalty must be a finite number, got nan"),
    ("2-D prompt to beam search", lambda p: beam_search(NeverRun(), [[1, 2]], 3), ValueError,
     r"one prompt: ids of shape \(T,\), got shape \(1, 2\)"),
    ("1-D ids to log_likelihood", lambda p: log_likelihood(NeverRun(), [1, 2, 3], 1), ValueError,
     r"ids must be \(B, T\), got shape \(3,\)"),
    # recording attention needs attention modules
    ("record_attention without attention", lambda p: record_attention(Linear(2, 2)).__enter__(), ValueError,
     r"Linear has no attention module"),
    # tokenizers
    ("CharTokenizer.fit('')", lambda p: CharTokenizer.fit(""), ValueError, r"the text is empty"),
    ("CharTokenizer.fit(list)", lambda p: CharTokenizer.fit(["ab", "c"]), TypeError, r"one str, got list"),
    ("BPE vocab_size 255", lambda p: ByteBPE.train("abc", 255), ValueError, r"vocab_size=255: .*256 byte tokens"),
    ("BPE vocab_size -1, Python trainer", lambda p: ByteBPE.train("abc", -1, trainer="python"), ValueError,
     r"vocab_size=-1"),
    ("BPE vocab_size float", lambda p: ByteBPE.train("abc", 300.5), TypeError, r"vocab_size=300\.5 \(float\)"),
    ("BPE vocab_size str", lambda p: ByteBPE.train("abc", "300"), TypeError, r"vocab_size='300' \(str\)"),
    ("BPE truncated to 1.5", lambda p: ByteBPE.train("abcabc", 258).truncated(1.5), TypeError, r"vocab_size=1\.5"),
    ("BPE invalid pattern", lambda p: ByteBPE(pattern="(unclosed"), ValueError,
     r"pattern '\(unclosed' is not a valid regular expression"),
    ("tokenizer file with an invalid pattern",
     write_then(json.dumps({"type": "ByteBPE", "pattern": "[a-", "merges": []}), tokenizers.load), ValueError,
     r"tok\.json: not a valid ByteBPE file .*pattern '\[a-' is not a valid regular expression"),
    ("tokenizer file not UTF-8", write_then(b'{"type": "CharTokenizer", "chars": "a\xff", "unk": false}',
                                            tokenizers.load), ValueError,
     r"tok\.json: not UTF-8 text: byte 0xff at offset 37"),
    ("tokenizer saved into a missing folder", lambda p: CharTokenizer.fit("ab").save(p / "no" / "tok.json"),
     FileNotFoundError, r"cannot write .*no/tok\.json: folder .*no does not exist"),
    # special tokens (Chapter 9)
    ("special that is a word", lambda p: WordVocab.fit("a <mask>").with_specials(["<mask>"]), ValueError,
     r"special token '<mask>' is also the word '<mask>' \(id 3\) of this WordVocab"),
    ("special that is a character", lambda p: CharTokenizer.fit("ab#").with_specials(["#"]), ValueError,
     r"special token '#' is also the character '#' of this CharTokenizer"),
    ("special listed twice", lambda p: CharTokenizer.fit("ab").with_specials([PAD, PAD]), ValueError,
     r"special token '<pad>' is listed twice"),
    ("special not a string", lambda p: CharTokenizer.fit("ab").with_specials([3]), ValueError,
     r"a special token is a non-empty string, got 3"),
    ("special empty", lambda p: CharTokenizer.fit("ab").with_specials([""]), ValueError,
     r"non-empty string, got ''"),
    ("specials as one string", lambda p: CharTokenizer.fit("ab").with_specials(PAD), TypeError,
     r"with_specials takes a list of names, got the string '<pad>' \(write \['<pad>'\]\)"),
    ("special the tokenizer lacks", lambda p: CharTokenizer.fit("ab").with_specials([PAD]).mask_id, ValueError,
     r"this CharTokenizer has no special token '<mask>' \(it has: <pad>\); add it with"),
    ("tokenizer file with specials not a list",
     write_then(json.dumps({"type": "CharTokenizer", "chars": "ab", "unk": False, "specials": "<pad>"}),
                tokenizers.load), ValueError,
     r"tok\.json: not a valid CharTokenizer file .*'specials' must be a list of strings, got '<pad>'"),
    ("tokenizer file with a special that is a word",
     write_then(json.dumps({"type": "WordVocab", "words": ["<unk>", "<s>", "</s>", "a"], "specials": ["a"]}),
                tokenizers.load), ValueError,
     r"tok\.json: not a valid WordVocab file .*special token 'a' is also the word 'a' \(id 3\)"),
    # BERT's masking
    ("mask_prob 0", lambda p: bert_mask([[1, 2]], 9, 10, mask_prob=0.0), ValueError,
     r"mask_prob must be a probability in \(0, 1\), got 0\.0"),
    ("mask_prob 1", lambda p: bert_mask([[1, 2]], 9, 10, mask_prob=1), ValueError, r"mask_prob .*got 1"),
    ("mask_prob nan", lambda p: bert_mask([[1, 2]], 9, 10, mask_prob=math.nan), ValueError, r"mask_prob .*got nan"),
    ("mask_prob str", lambda p: bert_mask([[1, 2]], 9, 10, mask_prob="0.15"), ValueError, r"mask_prob .*got '0\.15'"),
    ("mask_frac + random_frac > 1", lambda p: bert_mask([[1, 2]], 9, 10, mask_frac=0.9, random_frac=0.2),
     ValueError, r"mask_frac \+ random_frac = 1\.1 is more than 1"),
    ("random_frac -0.1", lambda p: bert_mask([[1, 2]], 9, 10, random_frac=-0.1), ValueError,
     r"random_frac must be in \[0, 1\], got -0\.1"),
    ("ids outside the vocabulary to mask", lambda p: bert_mask([[1, 40]], 9, 10), ValueError,
     r"ids: id 40 at \(0, 1\) is outside the vocabulary \[0, 10\)"),
    ("mask_id outside the vocabulary", lambda p: bert_mask([[1, 2]], 10, 10), ValueError,
     r"mask_id: id 10 .* outside the vocabulary \[0, 10\)"),
    ("float ids to mask", lambda p: bert_mask([[1.5, 2.0]], 9, 10), TypeError,
     r"ids must be integer ids, got an array of dtype float64"),
    ("every id special", lambda p: bert_mask([[1]], 1, 2, special_ids=[0, 1]), ValueError,
     r"every id of \[0, 2\) is special"),
    # T5's span corruption
    ("noise_density 0", lambda p: span_noise_mask([10], noise_density=0), ValueError,
     r"noise_density must be a probability in \(0, 1\), got 0"),
    ("noise_density 1.5", lambda p: span_noise_mask([10], noise_density=1.5), ValueError, r"noise_density .*1\.5"),
    ("mean_span_length 0.5", lambda p: span_noise_mask([10], mean_span_length=0.5), ValueError,
     r"mean_span_length must be a finite number >= 1 \(tokens\), got 0\.5"),
    ("mean_span_length inf", lambda p: span_noise_mask([10], mean_span_length=math.inf), ValueError,
     r"mean_span_length .*got inf"),
    ("row of one token to corrupt", lambda p: span_corrupt(np.ones((2, 5), np.int64), range(9), lengths=[5, 1]),
     ValueError, r"row 1 has 1 tokens; a row needs at least 2"),
    ("1-D ids to corrupt", lambda p: span_corrupt(np.ones(5, np.int64), range(9)), ValueError,
     r"ids must be \(B, L\), got shape \(5,\)"),
    ("lengths beyond the row", lambda p: span_corrupt(np.ones((1, 5), np.int64), range(9), lengths=[6]), ValueError,
     r"lengths must be \(1,\) values <= L = 5, got \[6\]"),
    ("sentinels repeated", lambda p: span_corrupt(np.ones((1, 5), np.int64), [7, 8, 7]), ValueError,
     r"sentinel_ids must be distinct, got \[7, 8, 7\]"),
    ("too few sentinels", lambda p: span_corrupt(np.ones((1, 40), np.int64), [7]), ValueError,
     r"row 0 has \d+ spans and needs \d+ sentinels .*1 sentinel_ids were given; add more"),
    ("noise mask of another shape",
     lambda p: span_corrupt(np.ones((1, 5), np.int64), [7, 8], noise=np.ones((1, 4), bool)), ValueError, r"noise must be a bool mask of the shape of ids \(1, 5\), got bool \(1, 4\)"),
    ("seq2seq sources and targets differ", lambda p: seq2seq_batch([[1]], [[1], [2]], 0, 1), ValueError,
     r"1 sources but 2 targets"),
    # decoding with eos and a source
    ("eos_id -1", lambda p: generate(NeverRun(), [[1]], 3, eos_id=-1), ValueError,
     r"eos_id must be a token id \(an integer >= 0\) or None, got -1"),
    ("eos_id 2.0", lambda p: beam_search(NeverRun(), [1], 3, eos_id=2.0), ValueError, r"eos_id .*got 2\.0"),
    ("source of another batch", lambda p: generate(NeverRun(), [[1]], 3, source=[1, 2]), ValueError,
     r"source must be \(B, S\) ids with one row per prompt row \(B = 1\), got shape \(2,\)"),
    ("source_lengths of another shape", lambda p: generate(NeverRun(), [[1]], 3, source=[[1, 2]],
                                                           source_lengths=[2, 2]), ValueError,
     r"source_lengths must have shape \(1,\), got \(2,\)"),
    ("source_lengths without a source", lambda p: generate(NeverRun(), [[1]], 3, source_lengths=[2]), ValueError,
     r"source_lengths was given without a source"),
    ("2-D source to beam search", lambda p: beam_search(NeverRun(), [1], 3, source=[[1, 2]]), ValueError,
     r"one source: ids of shape \(S,\), got shape \(1, 2\)"),
    # the number words task
    ("number_to_words(-1)", lambda p: number_to_words(-1), ValueError,
     r"number_to_words takes an integer in \[0, 1,000,000,000,000\), got -1"),
    ("number_to_words(10**12)", lambda p: number_to_words(10**12), ValueError, r"got 1000000000000"),
    ("number_to_words(2.5)", lambda p: number_to_words(2.5), ValueError, r"got 2\.5"),
    ("words_to_number with 'and'", lambda p: words_to_number("one hundred and one"), ValueError,
     r"'and' \(word 2 of 'one hundred and one'\) is not a number word"),
    ("split with no training numbers", lambda p: split_numbers(100, 50, 50), ValueError,
     r"n_valid \+ n_test = 100 leaves no training numbers below bound=100"),
    ("split bound 0", lambda p: split_numbers(0, 0, 0), ValueError, r"bound must be in \[1, "),
    ("split n_test -1", lambda p: split_numbers(10, 1, -1), ValueError, r"n_test must be an integer >= 0, got -1"),
    ("NumberWords level", lambda p: NumberWords("byte"), ValueError, r"level must be 'word' or 'char', got 'byte'"),
    ("exact_match counts differ", lambda p: NumberWords().exact_match([[1]], [1, 2]), ValueError,
     r"1 outputs for 2 numbers"),
]


@pytest.mark.parametrize("call,error,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_problem(tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path)

