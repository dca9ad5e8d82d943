"""scratchlm.data: the registry (lookup order, checksums, downloads, errors), splits and batching.

Registry tests register a toy data set whose URL is a local file or a local HTTP server: they never
touch the internet. Split tests use the real data sets (skipped without $SCRATCHLM_DATA_DIR).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from collections import Counter

import numpy as np
import pytest

from scratchlm import data

CONTENT = "a toy corpus\nwith two lines\n".encode()
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered data set `toy` with one file served from tmp/remote; empty data and cache dirs."""
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "toy.txt").write_bytes(CONTENT)
    register = functools.partial(_register, monkeypatch)
    register(url=(remote / "toy.txt").as_uri(), sha256=SHA)
    monkeypatch.setenv("SCRATCHLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRATCHLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_verified", {})
    return register, tmp_path


def _register(monkeypatch, url: str, sha256: str):
    ds = data.Dataset("toy", "a toy data set", {"toy.txt": data.RemoteFile(url, sha256, len(CONTENT))})
    monkeypatch.setitem(data.DATASETS, "toy", ds)


def _place(root, content=CONTENT):
    (root / "toy").mkdir(parents=True, exist_ok=True)
    (root / "toy" / "toy.txt").write_bytes(content)
    return root / "toy" / "toy.txt"


def test_found_in_data_dir_first(toy):
    _, tmp = toy
    in_data, _ = _place(tmp / "data"), _place(tmp / "cache")
    assert data.find("toy", "toy.txt") == in_data
    assert data.path("toy", "toy.txt") == in_data
    assert data.path("toy") == in_data  # one-file data sets need no file name


def test_cache_hit_needs_no_download(toy):
    register, tmp = toy
    register(url=(tmp / "nowhere.txt").as_uri(), sha256=SHA)  # a download would fail
    cached = _place(tmp / "cache")
    assert data.find("toy", "toy.txt") == cached
    assert data.path("toy", "toy.txt") == cached


def test_download_from_file_url_into_cache(toy):
    _, tmp = toy
    assert data.find("toy", "toy.txt") is None
    p = data.path("toy", "toy.txt")
    assert p == tmp / "cache" / "toy" / "toy.txt" and p.read_bytes() == CONTENT
    assert data.find("toy", "toy.txt") == p
    assert [f.name for f in p.parent.iterdir()] == ["toy.txt"]  # no temp file left behind


def test_download_from_http_server(toy):
    register, tmp = toy
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp / "remote"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        register(url=f"http://127.0.0.1:{server.server_address[1]}/toy.txt", sha256=SHA)
        assert data.path("toy", "toy.txt").read_bytes() == CONTENT
    finally:
        server.shutdown()
        server.server_close()


def test_download_checksum_mismatch_keeps_nothing(toy):
    register, tmp = toy
    wrong = "0" * 64
    register(url=(tmp / "remote" / "toy.txt").as_uri(), sha256=wrong)
    with pytest.raises(data.ChecksumError, match=rf"toy\.txt.*expected sha256 {wrong}, got {SHA}"):
        data.path("toy", "toy.txt")
    assert data.find("toy", "toy.txt") is None
    assert list((tmp / "cache" / "toy").iterdir()) == []


def test_corrupt_cached_file_is_deleted(toy):
    _, tmp = toy
    bad = _place(tmp / "cache", b"corrupted")
    with pytest.raises(data.ChecksumError, match=rf"{re.escape(str(bad))}.*expected sha256 {SHA}.*deleted"):
        data.path("toy", "toy.txt")
    assert not bad.exists()
    assert data.path("toy", "toy.txt").read_bytes() == CONTENT  # the next call downloads a fresh copy


def test_corrupt_file_in_data_dir_is_reported_and_kept(toy):
    _, tmp = toy
    bad = _place(tmp / "data", b"edited by hand")
    actual = hashlib.sha256(b"edited by hand").hexdigest()
    with pytest.raises(data.ChecksumError, match=rf"expected sha256 {SHA}, got {actual}"):
        data.path("toy", "toy.txt")
    assert bad.read_bytes() == b"edited by hand"


def test_offline_without_copy_names_file_url_and_env_var(toy):
    register, tmp = toy
    url = (tmp / "unreachable" / "toy.txt").as_uri()
    register(url=url, sha256=SHA)
    with pytest.raises(data.DataUnavailableError) as e:
        data.path("toy", "toy.txt")
    assert "toy/toy.txt" in str(e.value) and url in str(e.value) and "SCRATCHLM_DATA_DIR" in str(e.value)
    assert list((tmp / "cache" / "toy").iterdir()) == []


@pytest.mark.parametrize("name", ["nope", "../ptb", "ptb/..", "a\\b", ""])
def test_bad_name_lists_known_names(name):
    with pytest.raises(ValueError, match="unknown data set.*known: tinyshakespeare, names, ptb, chinese-classics"):
        data.get(name)


@pytest.mark.parametrize("filename", ["../ptb.train.txt", "ptb/ptb.train.txt", "..", "input.txt"])
def test_bad_filename_lists_files(filename):
    with pytest.raises(ValueError, match="has no file.*files: ptb.train.txt, ptb.valid.txt, ptb.test.txt"):
        data.path("ptb", filename)
    with pytest.raises(ValueError, match="has no file"):
        data.find("ptb", filename)


def test_bad_split():
    with pytest.raises(ValueError, match="no split 'test'.*splits: train, valid"):
        data.load_text("tinyshakespeare", "test")


def test_registered_urls_are_pinned():
    for ds in data.DATASETS.values():
        for remote in ds.files.values():
            assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+", remote.url)
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256) and remote.size > 0


# --- the real data sets ---------------------------------------------------------------------

def test_registered_checksums_match_the_data(data_dir):
    for name, ds in data.DATASETS.items():
        for filename, remote in ds.files.items():
            p = data.path(name, filename)  # raises on a checksum mismatch
            assert p.stat().st_size == remote.size


def test_tinyshakespeare_split_90_10(data_dir):
    whole = (data_dir / "tinyshakespeare" / "input.txt").read_text()
    train, valid = data.load_text("tinyshakespeare", "train"), data.load_text("tinyshakespeare", "valid")
    assert train + valid == whole and len(train) == int(0.9 * len(whole)) == 1_003_854


def test_names_split_is_a_pinned_partition(data_dir):
    whole = (data_dir / "names" / "names.txt").read_text().splitlines()
    splits = {s: data.load_lines("names", s) for s in ("train", "valid", "test")}
    assert [len(v) for v in splits.values()] == [25_626, 3_204, 3_203]
    assert Counter(splits["train"] + splits["valid"] + splits["test"]) == Counter(whole)
    # pinned: a change in NumPy's permutation would change these
    assert [v[0] for v in splits.values()] == ["cyprus", "ameerah", "mckynna"]
    assert data.load_text("names", "valid") == "".join(n + "\n" for n in splits["valid"])


def test_ptb_lines_and_tokens(data_dir):
    lines = {s: data.load_lines("ptb", s) for s in ("train", "valid", "test")}
    assert [len(v) for v in lines.values()] == [42_068, 3_370, 3_761]
    words = {s: [w for line in v for w in line.split()] for s, v in lines.items()}
    assert [len(v) for v in words.values()] == [887_521, 70_390, 78_669]
    assert len(set(words["train"])) == 9_999 and Counter(words["valid"])["<unk>"] == 3_485
    assert all(line == line.strip() for line in lines["train"])


def test_chinese_classics_one_poem_or_passage_per_line(data_dir):
    lines = data.load_lines("chinese-classics", "all")
    assert len(lines) == 512 + 305 + 320  # 论语 passages + 诗经 poems + 唐詩三百首 poems
    assert lines[0].startswith("子曰：“学而时习之") and lines[512].startswith("关关雎鸠")
    assert not any(c in line for line in lines for c in "[]{}\"\n") and all(lines)
    train, valid = data.load_lines("chinese-classics", "train"), data.load_lines("chinese-classics", "valid")
    assert Counter(train + valid) == Counter(lines) and len(valid) == round(0.1 * len(lines))


# --- labelled sets (Chapter 10) ------------------------------------------------------------

LABELLED = {"sms-spam": ((0.7, 0.1, 0.2), [4_827, 747]), "shijing-sections": ((0.6, 0.2, 0.2), [160, 105, 40])}


@pytest.mark.parametrize("name", LABELLED)
def test_labelled_splits_are_stratified_partitions(data_dir, name):
    fractions, counts = LABELLED[name]
    splits = {s: data.load_labelled(name, s) for s in ("train", "valid", "test")}
    texts = [t for t, _ in splits.values()]
    labels = [y for _, y in splits.values()]
    every = Counter((t, int(y)) for part, ys in zip(texts, labels) for t, y in zip(part, ys))
    assert sum(every.values()) == sum(counts) and np.bincount(np.concatenate(labels)).tolist() == counts
    for a in range(3):                               # disjoint: no text (nor a copy of it) in two splits
        for b in range(a):
            assert not set(texts[a]) & set(texts[b])
    whole = np.array(counts) / sum(counts)
    for part, ys, fraction in zip(texts, labels, fractions):
        assert len(part) == len(ys) and ys.dtype == np.int64
        assert abs(len(ys) / sum(counts) - fraction) < 0.005                      # the split's size
        np.testing.assert_allclose(np.bincount(ys, minlength=len(counts)) / len(ys), whole, atol=0.005)
    assert [len(p) for p in texts] == {"sms-spam": [3_899, 554, 1_121], "shijing-sections": [183, 61, 61]}[name]
    assert data.load_labelled(name, "test")[0] == texts[2]                        # fixed


def test_sms_spam_messages_are_kept_exactly(data_dir):
    lines = (data_dir / "sms-spam" / "SMSSpamCollection").read_bytes().decode().split("\r\n")[:-1]
    whole = Counter((line.split("\t")[1], line.split("\t")[0]) for line in lines)
    names = data.LABEL_NAMES["sms-spam"]
    splits = [data.load_labelled("sms-spam", s) for s in ("train", "valid", "test")]
    assert Counter((t, names[y]) for texts, ys in splits for t, y in zip(texts, ys)) == whole
    train, y = splits[0]
    assert train[0] == ("Go until jurong point, crazy.. Available only in bugis n great world la e buffet... "
                        "Cine there got amore wat...")
    assert y[0] == 0 and names == ("ham", "spam")
    assert any(t.endswith(" ") for t in train) and any("&lt;#&gt;" in t for t in train)   # no stripping, no unescaping
    assert data.load_lines("sms-spam", "valid") == splits[1][0]
    assert data.load_text("sms-spam", "valid") == "".join(t + "\n" for t in splits[1][0])


def test_shijing_sections_labels(data_dir):
    splits = [data.load_labelled("shijing-sections", s) for s in ("train", "valid", "test")]
    poems = {t: int(y) for texts, labels in splits for t, y in zip(texts, labels)}
    assert len(poems) == 305 and data.LABEL_NAMES["shijing-sections"] == ("风", "雅", "颂")
    assert poems["关关雎鸠，在河之洲。窈窕淑女，君子好逑。参差荇菜，左右流之。窈窕淑女，寤寐求之。求之不得，寤寐思服。"
                 "悠哉悠哉，辗转反侧。参差荇菜，左右采之。窈窕淑女，琴瑟友之。参差荇菜，左右芼之。窈窕淑女，钟鼓乐之。"] == 0
    section = {"国风": 0, "小雅": 1, "大雅": 1, "周颂": 2, "商颂": 2, "鲁颂": 2}
    source = json.loads((data_dir / "chinese-classics" / "shijing.json").read_text())
    assert poems == {"".join(poem["content"]): section[poem["chapter"]] for poem in source}
    openings = {"呦呦鹿鸣": 1, "文王在上": 1, "于穆清庙": 2, "猗与那与": 2}   # 小雅, 大雅, 周颂, 商颂
    assert {o: label for o in openings for text, label in poems.items() if text.startswith(o)} == openings
    assert set(poems) <= set(data.load_lines("chinese-classics", "all"))        # the same texts as Chapter 5's


def test_unlabelled_lines_hold_no_valid_or_test_item(data_dir):
    for name in LABELLED:
        held_out = {t for s in ("valid", "test") for t in data.load_labelled(name, s)[0]}
        lines = data.unlabelled_lines(name)
        assert not held_out & set(lines)
        assert set(data.load_labelled(name, "train")[0]) <= set(lines)
    classics = data.load_lines("chinese-classics", "all")
    assert len(data.unlabelled_lines("shijing-sections")) == len(classics) - 61 - 61  # 论语 and 唐诗 all kept
    assert data.unlabelled_lines("sms-spam") == data.load_labelled("sms-spam", "train")[0]


def test_labelled_bad_names_and_splits():
    with pytest.raises(ValueError, match="unknown labelled set 'spam'.*known: sms-spam, shijing-sections"):
        data.load_labelled("spam", "train")
    with pytest.raises(ValueError, match="no split 'all'.*train, valid, test"):
        data.load_labelled("shijing-sections", "all")
    with pytest.raises(ValueError, match="unknown labelled set"):
        data.unlabelled_lines("chinese-classics")


@pytest.mark.parametrize("line", [b"spam no tab here", b"Ham\tcapital label", b"ham\t", b"spam\ttwo\ttabs"])
def test_a_malformed_sms_line_names_the_file_and_line(tmp_path, monkeypatch, line):
    content = b"ham\tfine\r\nspam\tWIN cash\r\n" + line + b"\r\nham\tok\r\n"
    remote = data.RemoteFile("https://example.invalid/x", hashlib.sha256(content).hexdigest(), len(content))
    monkeypatch.setitem(data.DATASETS, "sms-spam", data.Dataset("sms-spam", "damaged", {"SMSSpamCollection": remote}))
    (tmp_path / "sms-spam").mkdir()
    (tmp_path / "sms-spam" / "SMSSpamCollection").write_bytes(content)
    monkeypatch.setenv("SCRATCHLM_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "_verified", {})
    with pytest.raises(ValueError, match=r"SMSSpamCollection, line 3: expected 'ham' or 'spam'"):
        data.load_labelled("sms-spam", "train")


# --- batching -------------------------------------------------------------------------------

def test_get_batch_windows_are_shifted_by_one():
    ids = np.arange(1000, 1100, dtype=np.int32)
    x, y = data.get_batch(ids, 16, 8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (16, 8) and x.dtype == y.dtype == np.int64
    assert np.array_equal(y[:, :-1], x[:, 1:]) and np.array_equal(y[:, -1], x[:, -1] + 1)
    assert x.min() >= 1000 and y.max() <= 1099
    x2, _ = data.get_batch(ids, 16, 8, rng=np.random.default_rng(0))
    assert np.array_equal(x, x2)  # same seed, same batch


def test_get_batch_reaches_both_ends_and_rejects_short_input():
    ids = np.arange(10)
    x, y = data.get_batch(ids, 200, 9, rng=np.random.default_rng(1))
    assert np.array_equal(np.unique(x[:, 0]), [0]) and y[0, -1] == 9
    with pytest.raises(ValueError, match="more than block_size=10"):
        data.get_batch(ids, 1, 10)


def test_iter_batches_predicts_every_full_window_once():
    ids = np.arange(103)
    batches = list(data.iter_batches(ids, batch_size=4, block_size=10))
    assert [x.shape for x, _ in batches] == [(4, 10), (4, 10), (2, 10)]
    ys = np.concatenate([y.ravel() for _, y in batches])
    xs = np.concatenate([x.ravel() for x, _ in batches])
    assert np.array_equal(ys, ids[1:101]) and np.array_equal(xs, ids[:100])


def test_context_windows_pad_each_sentence_with_bos():
    BOS, EOS = 1, 2
    X, Y = data.context_windows([5, 6, EOS, 7, EOS, 8, 9, 10, EOS], context=2, bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(Y, [5, 6, EOS, 7, EOS, 8, 9, 10, EOS])
    np.testing.assert_array_equal(X, [[BOS, BOS], [BOS, 5], [5, 6],       # w1 w2 </s>
                                      [BOS, BOS], [BOS, 7],               # a one-word sentence
                                      [BOS, BOS], [BOS, 8], [8, 9], [9, 10]])
    # makemore's names: one symbol ('.', id 0) both pads the start and ends the name
    X, Y = data.context_windows([1, 2, 0, 3, 0], context=3, bos_id=0, eos_id=0)
    np.testing.assert_array_equal(X, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 3]])


def test_minibatches_cover_the_rows_once_in_the_given_order():
    X, Y = np.arange(14).reshape(7, 2), np.arange(7) * 10
    got = list(data.minibatches(X, Y, 3))
    assert [len(y) for _, y in got] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), X)
    order = np.array([6, 0, 5, 1, 4, 2, 3])
    got = list(data.minibatches(X, Y, 4, order))
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), Y[order])
    np.testing.assert_array_equal(got[0][0], X[order[:4]])


@pytest.mark.parametrize("labels, n", [(np.array([0] * 87 + [1] * 13), 16), (np.array([0, 1, 1, 2] * 10), 5),
                                       (np.array([1, 0, 0, 0, 0, 0, 0, 0]), 2)])
def test_stratified_sample_keeps_every_class_in_its_share(labels, n):
    rows = data.stratified_sample(labels, n, np.random.default_rng(0))
    assert np.all(np.diff(rows) > 0)                                  # ascending, no repeats
    for c in np.unique(labels):
        share = n * np.mean(labels == c)
        assert (labels[rows] == c).sum() == max(1, round(share)), c  # rounded share, at least one
    assert np.array_equal(data.stratified_sample(labels, None, None), np.arange(len(labels)))
    assert np.array_equal(data.stratified_sample(labels, len(labels) + 5, None), np.arange(len(labels)))


def test_stratified_sample_refuses_a_bad_budget():
    with pytest.raises(ValueError, match="n must be an integer >= 1 or None, got 0"):
        data.stratified_sample(np.array([0, 1]), 0, np.random.default_rng(0))
