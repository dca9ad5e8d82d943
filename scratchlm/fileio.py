"""Writing files so that a crash never leaves a half-written one (used by every writer in scratchlm).

    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(...)

The bytes go to a temporary file in the same folder; only when the block ends without an error is
it flushed to disk and renamed over `path` (a rename within one file system is atomic). On an error
the temporary file is deleted and whatever was at `path` before is untouched. A process killed
mid-write cannot delete its temporary file (`.<name>.<random>.tmp`); the next write to the same
path does.

    read_text(path)    a UTF-8 text file, with an error naming the file and the byte offset of the
                       first invalid byte instead of a bare UnicodeDecodeError
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Yield a file object open for writing; on success it replaces `path` (permissions 0644)."""
    path = Path(path)
    if not path.parent.is_dir():  # named here: mkstemp's own error would name the temporary file
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed write
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; ours are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, obj) -> Path:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return Path(path)


def decode_utf8(data: bytes, path) -> str:
    """`data` (the bytes of file `path`) as text; invalid UTF-8 is an error naming the file and offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} "
                         f"({e.reason}); scratchlm reads text files as UTF-8") from None


def read_text(path) -> str:
    """The contents of the UTF-8 text file `path` (universal newlines, as open() reads them)."""
    text = decode_utf8(Path(path).read_bytes(), path)
    return text.replace("\r\n", "\n").replace("\r", "\n")
