"""scratchlm.tasks (Chapter 9, §9.4): number words <-> digits, its splits and its two batch formats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.objectives import IGNORE
from scratchlm.tasks import LIMIT, NumberWords, group_by_length, number_to_words, split_numbers, words_to_number

KNOWN = {
    0: "zero", 7: "seven", 13: "thirteen", 19: "nineteen", 20: "twenty", 40: "forty", 42: "forty two",
    99: "ninety nine", 100: "one hundred", 101: "one hundred one", 110: "one hundred ten",
    999: "nine hundred ninety nine", 1000: "one thousand", 1001: "one thousand one",
    12_000: "twelve thousand", 100_010: "one hundred thousand ten",
    342_506: "three hundred forty two thousand five hundred six",
    999_999: "nine hundred ninety nine thousand nine hundred ninety nine",
    1_000_000: "one million", 2_000_017: "two million seventeen",
    1_000_000_000: "one billion", LIMIT - 1: " ".join(["nine hundred ninety nine " + s for s in
                                                       ("billion", "million", "thousand")]) +
    " nine hundred ninety nine",
}


def test_known_numbers():
    for n, words in KNOWN.items():
        assert number_to_words(n) == words
        assert words_to_number(words) == n


def test_every_number_below_ten_thousand_round_trips_and_is_distinct():
    words = [number_to_words(n) for n in range(10_000)]
    assert len(set(words)) == 10_000
    assert [words_to_number(w) for w in words] == list(range(10_000))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, LIMIT - 1))
def test_round_trip_on_any_number(n):
    assert words_to_number(number_to_words(n)) == n


def test_other_spellings_are_refused():
    for text, why in [("one hundred and one", "'and' .* is not a number word"), ("forty-two", "not a number word"),
                      ("twelve hundred", r"adds up to 1,200, which is written 'one thousand two hundred'"),
                      ("two forty", "not how number_to_words writes"), ("thousand", "adds up to 0"),
                      ("", "empty")]:
        with pytest.raises(ValueError, match=why):
            words_to_number(text)


def test_split_is_seeded_disjoint_and_complete():
    split = split_numbers(1000, n_valid=100, n_test=200, seed=3)
    assert [len(split[s]) for s in ("train", "valid", "test")] == [700, 100, 200]
    assert np.array_equal(np.sort(np.concatenate(list(split.values()))), np.arange(1000))
    assert not set(split["test"]) & set(split["train"]) and not set(split["valid"]) & set(split["train"])
    again = split_numbers(1000, n_valid=100, n_test=200, seed=3)
    assert all(np.array_equal(split[s], again[s]) for s in split)
    assert not np.array_equal(split["test"], split_numbers(1000, 100, 200, seed=4)["test"])


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("reverse", [False, True])
def test_seq2seq_batches_encode_the_pairs(level, reverse):
    task = NumberWords(level, reverse)
    numbers = [342506, 7, 40, 101]
    b = task.seq2seq(numbers)
    tok = task.tok
    for row, n in enumerate(numbers):
        source, target = task.texts(n)
        src = b.src[row, :b.src_lengths[row]]
        assert src[-1] == tok.eos_id and (b.src[row, b.src_lengths[row]:] == tok.pad_id).all()
        digits_as_words = level == "word" and reverse        # the source "342" is the tokens 3 4 2
        assert tok.decode(src, skip_special=True) == (" ".join(source) if digits_as_words else source)
        out = b.targets[row][b.targets[row] != IGNORE]
        assert out[-1] == tok.eos_id and task.decode(out) == target
        assert b.dec_in[row, 0] == tok.bos_id and b.dec_in[row, 1:len(out)].tolist() == out[:-1].tolist()
    assert task.exact_match([row[row != IGNORE] for row in b.targets], numbers) == 1.0
    assert task.exact_match([row[row != IGNORE] for row in b.targets], [342506, 8, 40, 101]) == 0.75


def test_word_level_tokens():
    task = NumberWords()
    assert task.texts(342506) == ("three hundred forty two thousand five hundred six", "342506")
    src, tgt = task.encode([342506])
    assert task.tok.decode(src[0]) == "three hundred forty two thousand five hundred six"
    assert task.tok.decode(tgt[0]) == "3 4 2 5 0 6" and len(tgt[0]) == 6
    assert task.tok.vocab_size == 3 + 32 + 10 + 1 + 1      # specials, number words, digits, '=', <pad>


@pytest.mark.parametrize("level", ["word", "char"])
def test_decoder_only_format(level):
    task = NumberWords(level)
    numbers = [342506, 7]
    idx, targets, prompt_lengths = task.decoder_only(numbers)
    for row, n in enumerate(numbers):
        source, target = task.texts(n)
        P = prompt_lengths[row]
        assert task.tok.decode(idx[row, :P]) == (source + " =" if level == "word" else source + "=")
        predicted = targets[row] != IGNORE
        assert predicted.tolist() == [P - 1 <= t < P - 1 + len(task.encode([n])[1][0]) + 1
                                      for t in range(idx.shape[1])]
        assert task.decode(targets[row][predicted]) == target
        # targets are the next ids of the full sequence
        full = np.append(idx[row], targets[row, -1])
        assert (targets[row][predicted] == full[1:][predicted]).all()
        assert np.array_equal(task.prompts(numbers)[row], idx[row, :P])


def test_group_by_length():
    seqs = [[1, 2], [3], [4, 5], [6, 7, 8]]
    groups = group_by_length(seqs)
    assert [rows.tolist() for rows, _ in groups] == [[1], [0, 2], [3]]
    assert groups[1][1].tolist() == [[1, 2], [4, 5]]
