"""scratchlm.data: the registry (lookup order, checksums, downloads, errors), splits and batching.

Registry tests register a toy data set whose URL is a local file or a local HTTP server: they never
touch the internet. Split tests use the real data sets (skipped without $SCRATCHLM_DATA_DIR).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
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
