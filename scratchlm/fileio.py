"""Writing files so that a crash never leaves a half-written one (used by every writer in scratchlm).

    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(...)

The bytes go to a temporary file in the same folder; only when the block ends without an error is
it flushed to disk and renamed over `path` (a rename within one file system is atomic). On an error
the temporary file is deleted and whatever was at `path` before is untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Yield a file object open for writing; on success it replaces `path` (permissions 0644)."""
    path = Path(path)
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
