"""scratchlm.tokenizers: round trips on arbitrary Unicode, word-vocabulary ids, the BPE trainers
(plain Python vs Numba, merge for merge), the encode kernel vs its reference, the JSON files, and
the special tokens of Chapter 9 (never produced by encode, saved, decoded or skipped)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import data, tokenizers
from scratchlm.tokenizers import (BOS, CLS, EOS, MASK, PAD, PATTERN, SEP, ByteBPE, CharTokenizer, WordVocab,
                                  sentinels, train_bpe_numba, train_bpe_ref)
from scratchlm.tokenizers.bpe import apply_merges, chunk_counts

ENGLISH = """First Citizen:
Before we proceed any further, hear me speak.
All: Speak, speak.  You are all resolved rather to die than to famish?
It's 1608 -- they'll say we're starving; I'd say so too. snake_case_name, naïve café, Ⅻ ½ ٣٤
"""
CHINESE = ("关关雎鸠，在河之洲。窈窕淑女，君子好逑。\n参差荇菜，左右流之。窈窕淑女，寤寐求之。\n"
           "子曰：“学而时习之，不亦说乎？”\n")
MIXED = ENGLISH + CHINESE + "emoji 🙂🙂 and tabs\t\tand\r\nCRLF 😀 ελληνικά кириллица"

fast = settings(max_examples=60, deadline=None)


# --- pre-tokenization -----------------------------------------------------------------------

@fast
@given(st.text())
def test_pattern_chunks_concatenate_back_to_the_text(s):
    assert "".join(re.findall(PATTERN, s)) == s


def test_pattern_splits_like_gpt2():
    assert re.findall(PATTERN, "Hello, world! It's 2024  now_ok") == \
        ["Hello", ",", " world", "!", " It", "'s", " 2024", " ", " now", "_", "ok"]
    assert re.findall(PATTERN, "关关雎鸠，在河之洲。") == ["关关雎鸠", "，", "在河之洲", "。"]


# --- round trips ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bpe():
    return ByteBPE.train(MIXED * 3, 400)


@fast
@given(st.text())
def test_bpe_round_trip_on_any_unicode(bpe, s):
    ids = bpe.encode(s)
    assert ids.dtype == np.int64 and (len(ids) == 0 or (ids.min() >= 0 and ids.max() < bpe.vocab_size))
    assert bpe.decode(ids) == s


@fast
@given(st.text(min_size=1))  # an empty text has no vocabulary: fit refuses it (test_bad_inputs_models)
def test_char_round_trip_when_fit_on_the_text(s):
    tok = CharTokenizer.fit(s)
    ids = tok.encode(s)
    assert tok.vocab_size == len(set(s)) and ids.dtype == np.int64
    assert tok.decode(ids) == s


@fast
@given(st.lists(st.text(st.characters(blacklist_categories=["Zs", "Zl", "Zp", "Cc", "Cs"]), min_size=1)))
def test_word_round_trip_on_single_spaced_words(words):
    words = [w for w in words if w.split() == [w]]  # str.split also splits at a few other characters
    s = " ".join(words)
    vocab = WordVocab.fit(s)
    assert vocab.decode(vocab.encode(s)) == s


def test_round_trips_on_chinese():
    for tok in (ByteBPE.train(CHINESE, 300), CharTokenizer.fit(CHINESE)):
        assert tok.decode(tok.encode(CHINESE)) == CHINESE
    line = CHINESE.splitlines()[0]
    assert WordVocab.fit(line).decode(WordVocab.fit(line).encode(line)) == line


# --- characters -----------------------------------------------------------------------------

def test_char_ids_in_code_point_order_and_unknowns():
    tok = CharTokenizer.fit("hello, 世界")
    assert tok.chars == [" ", ",", "e", "h", "l", "o", "世", "界"]
    assert tok.encode("hole 界").tolist() == [3, 5, 4, 2, 0, 7]
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 2 is not among the 8 characters"):
        tok.encode("hoz")
    unk = CharTokenizer.fit("hello", unk=True)
    assert unk.vocab_size == 5 and unk.encode("hxe").tolist() == [2, 0, 1]
    assert unk.decode(unk.encode("hxe")) == "h\ufffde"


def test_decode_rejects_ids_outside_the_vocabulary(bpe):
    for tok in (bpe, CharTokenizer.fit("abc"), WordVocab.fit("a b")):
        with pytest.raises(ValueError, match=f"id {tok.vocab_size} at position 1 is outside"):
            tok.decode([0, tok.vocab_size])
        with pytest.raises(ValueError, match="id -1 at position 0"):
            tok.decode([-1])


# --- words ----------------------------------------------------------------------------------

def test_word_ids_specials_then_count_then_alphabet():
    vocab = WordVocab.fit("b a c b a d <unk> e e e".split())
    assert vocab.words == ["<unk>", "<s>", "</s>", "e", "a", "b", "c", "d"]
    assert vocab.encode("a zz <unk> e").tolist() == [4, 0, 0, 3]
    assert WordVocab.fit("b a c b a d e e e", min_count=2).words[3:] == ["e", "a", "b"]
    assert WordVocab.fit("b a c b a d e e e", max_size=5).words == ["<unk>", "<s>", "</s>", "e", "a"]
    assert vocab.encode_lines(["a b", "e"], bos=True).tolist() == [1, 4, 5, 2, 1, 3, 2]
    with pytest.raises(ValueError, match="max_size=2"):
        WordVocab.fit("a", max_size=2)


def test_ptb_word_ids(data_dir):
    lines = data.load_lines("ptb", "train")
    vocab = WordVocab.fit(" ".join(lines))
    # PTB's 9,999 distinct words include its literal <unk>, which is ours: 9,998 + 3 specials
    assert vocab.vocab_size == 10_001 and vocab.words[3:6] == ["the", "N", "of"]
    ids = vocab.encode_lines(lines)  # a </s> after each sentence, as Mikolov's <eos>
    assert len(ids) == 929_589 and (ids == vocab.eos_id).sum() == 42_068 and (ids == 0).sum() == 45_020


# --- BPE training ---------------------------------------------------------------------------

def test_trainers_on_a_hand_worked_example_with_ties():
    # chunks "ab", " ab", " cd", " cd": (32,99), (97,98), (99,100) all occur twice; the smallest wins
    expected = [(32, 99), (97, 98), (256, 100), (32, 257)]
    for train in (train_bpe_ref, train_bpe_numba):
        assert train("ab ab cd cd", 300) == expected  # stops early: nothing left to merge


def test_trainers_agree_on_english_chinese_and_mixed_text():
    for text, vocab_size in [(ENGLISH * 4, 420), (CHINESE * 2, 380), (MIXED, 500), ("aaaaaaa bbbb aaa", 270)]:
        merges = train_bpe_ref(text, vocab_size)
        assert len(merges) > 0
        assert train_bpe_numba(text, vocab_size) == merges


@fast
@given(st.text(alphabet="ab c\n", max_size=300), st.integers(256, 300))
def test_trainers_agree_when_ties_abound(text, vocab_size):
    assert train_bpe_numba(text, vocab_size) == train_bpe_ref(text, vocab_size)


def test_trainers_agree_on_real_text(data_dir):
    for name, split, n_chars in [("tinyshakespeare", "train", 20_000), ("chinese-classics", "valid", 3_000)]:
        text = data.load_text(name, split)[:n_chars]
        assert train_bpe_numba(text, 400) == train_bpe_ref(text, 400)


def test_smaller_vocab_is_a_prefix_of_a_larger_one():
    big = ByteBPE.train(MIXED, 450)
    assert ByteBPE.train(MIXED, 320).merges == big.truncated(320).merges == big.merges[:64]


def test_vocab_size_beyond_the_text_stops_when_pairs_run_out():
    # the Numba trainer sizes its merge table by what the text allows, not by vocab_size
    # (a vocab_size of 10**12 used to ask for a 16 TB table: MemoryError)
    for train in (train_bpe_numba, train_bpe_ref):
        assert train("abab ab", 10**12) == [(97, 98), (32, 256), (256, 256)]  # " ab" -> 257


def test_training_rejects_small_vocab_and_unknown_trainer():
    with pytest.raises(ValueError, match="vocab_size=255"):
        ByteBPE.train("abc", 255)
    with pytest.raises(ValueError, match="unknown trainer 'fast'"):
        ByteBPE.train("abc", 300, trainer="fast")


# --- BPE encoding ---------------------------------------------------------------------------

def test_encode_kernel_matches_applying_merges_in_order(bpe):
    for chunk in chunk_counts(MIXED + "unseen words: zebra 熊猫"):
        expected = apply_merges(list(chunk.encode("utf-8")), bpe.merges)
        assert bpe.encode(chunk).tolist() == expected


def test_encode_compresses_the_training_text(bpe):
    ids = bpe.encode(ENGLISH)
    assert len(ids) < len(ENGLISH.encode()) / 2
    assert bpe.vocab[bpe.merges[0][0]] + bpe.vocab[bpe.merges[0][1]] == bpe.vocab[256]


# --- files ----------------------------------------------------------------------------------

def test_save_and_load_every_tokenizer(tmp_path, bpe):
    for tok in (bpe, CharTokenizer.fit(MIXED, unk=True), WordVocab.fit(MIXED)):
        p = tok.save(tmp_path / f"{type(tok).__name__}.json")
        for loaded in (type(tok).load(p), tokenizers.load(p)):
            assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
            assert np.array_equal(loaded.encode(MIXED), tok.encode(MIXED))
    assert [tuple(m) for m in json.loads((tmp_path / "ByteBPE.json").read_text())["merges"]] == bpe.merges


def test_load_reports_bad_files(tmp_path, bpe):
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="t.json: not JSON"):
        tokenizers.load(p)
    bpe.save(p)
    with pytest.raises(ValueError, match="holds a 'ByteBPE' tokenizer, not a WordVocab"):
        WordVocab.load(p)
    p.write_text(json.dumps({"type": "ByteBPE", "pattern": PATTERN, "merges": [[97, 98], [300, 1]]}))
    with pytest.raises(ValueError, match=r"not a valid ByteBPE file .*merge 1 = \(300, 1\)"):
        ByteBPE.load(p)
    p.write_text(json.dumps({"type": "Pickle", "x": 1}))
    with pytest.raises(ValueError, match="unknown tokenizer type 'Pickle'"):
        tokenizers.load(p)


# --- special tokens (Chapter 9) -------------------------------------------------------------

SPECIALS9 = [PAD, MASK, CLS, SEP, BOS, EOS, *sentinels(3)]


def every_tokenizer(bpe):
    return [CharTokenizer.fit(MIXED + "<mask>"), CharTokenizer.fit(MIXED, unk=True), WordVocab.fit(MIXED), bpe]


def test_specials_follow_the_text_ids_and_leave_them_unchanged(bpe):
    for tok in every_tokenizer(bpe):
        with_sp = tok.with_specials(SPECIALS9)
        assert np.array_equal(with_sp.encode(MIXED), tok.encode(MIXED))
        assert with_sp.n_text == tok.vocab_size
        added = [s for s in SPECIALS9 if s not in tok.special_names]   # WordVocab has <s> and </s> already
        assert with_sp.vocab_size == tok.vocab_size + len(added)
        assert with_sp.special_ids(added).tolist() == list(range(tok.vocab_size, with_sp.vocab_size))
        assert with_sp.sentinel_ids().tolist() == with_sp.special_ids(sentinels(3)).tolist()
        assert with_sp.with_specials([MASK, EOS]).vocab_size == with_sp.vocab_size   # already there: same ids


def test_text_spelling_a_special_encodes_as_text(bpe):
    text = "a <mask> b </s> <extra_id_0>"
    for tok in (CharTokenizer.fit(text), WordVocab.fit("a b"), bpe):
        tok = tok.with_specials(SPECIALS9)
        ids = tok.encode(text)
        assert not np.isin(ids, tok.special_ids([PAD, MASK, CLS, SEP, *sentinels(3)])).any()
        assert (ids < tok.n_text).all()
    # WordVocab: a word it does not know is <unk>, whatever it looks like
    words = WordVocab.fit("a b").with_specials([MASK])
    assert words.encode("a <mask>").tolist() == [3, words.unk_id]


def test_decode_writes_specials_by_name_or_skips_them(bpe):
    char = CharTokenizer.fit("hello").with_specials([PAD, MASK, EOS])
    ids = [*char.encode("he"), char.mask_id, *char.encode("llo"), char.eos_id, char.pad_id]
    assert char.decode(ids) == "he<mask>llo</s><pad>"
    assert char.decode(ids, skip_special=True) == "hello"
    assert char.is_special(ids).tolist() == [False, False, True, False, False, False, True, True]
    # a special between the bytes of one character: the text on each side decodes on its own
    tok = bpe.with_specials([MASK])
    e_acute = tok.encode("é").tolist()
    assert tok.decode(e_acute + [tok.mask_id]) == "é<mask>" and tok.decode([tok.mask_id] + e_acute) == "<mask>é"
    # WordVocab: <s> and </s> are specials, <unk> stands for a word and stays
    words = WordVocab.fit("a b").with_specials([PAD])
    ids = [words.bos_id, 3, 0, words.pad_id, words.eos_id]
    assert words.decode(ids) == "<s> a <unk> <pad> </s>"
    assert words.decode(ids, skip_special=True) == "a <unk>"
    assert words.special_names == (BOS, EOS, PAD) and words.eos_id == 2


def test_named_special_ids():
    tok = CharTokenizer.fit("abc").with_specials([PAD, MASK, CLS, SEP, BOS, EOS])
    assert [tok.pad_id, tok.mask_id, tok.cls_id, tok.sep_id, tok.bos_id, tok.eos_id] == [3, 4, 5, 6, 7, 8]
    assert tok.special_id("<cls>") == 5
    with pytest.raises(ValueError, match=r"no special token '<extra_id_0>' \(it has: <pad>, .*with_specials"):
        tok.special_id("<extra_id_0>")
    assert tok.sentinel_ids().tolist() == []


def test_specials_are_saved_and_files_without_them_are_unchanged(tmp_path, bpe):
    for tok in every_tokenizer(bpe):
        plain = tok.save(tmp_path / "plain.json")
        assert "specials" not in json.loads(plain.read_text())          # Chapters 1-7's files, as before
        sp = tok.with_specials(SPECIALS9)
        p = sp.save(tmp_path / "sp.json")
        assert json.loads(p.read_text())["specials"] == list(sp.specials)
        loaded = tokenizers.load(p)
        assert loaded.special_names == sp.special_names and loaded.vocab_size == sp.vocab_size
        ids = [*sp.encode("ab"), sp.mask_id, sp.sentinel_ids()[2]]
        assert loaded.decode(ids) == sp.decode(ids)
    assert CharTokenizer.fit("ba").to_dict() == {"chars": "ab", "unk": False}


def test_truncated_bpe_keeps_its_specials(bpe):
    tok = bpe.with_specials([PAD, EOS])
    small = tok.truncated(300)
    assert small.specials == (PAD, EOS) and small.eos_id == 301 and small.vocab_size == 302
