"""Shared test set-up.

The data sets come from `$SCRATCHLM_DATA_DIR` (CI sets it to ../shared/data); when it is unset
and that folder sits beside the checkout, it is used. Tests that need a real corpus take the
`data_dir` fixture and skip with the reason when there is none; unit tests make their own data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
if "SCRATCHLM_DATA_DIR" not in os.environ and _SHARED_DATA.is_dir():
    os.environ["SCRATCHLM_DATA_DIR"] = str(_SHARED_DATA)


@pytest.fixture
def data_dir() -> Path:
    d = os.environ.get("SCRATCHLM_DATA_DIR")
    if not d or not Path(d).is_dir():
        pytest.skip("no data: set SCRATCHLM_DATA_DIR to a folder holding the data sets (../shared/data)")
    return Path(d)


@pytest.fixture
def run_chapter(tmp_path, data_dir):
    """Run `chapters/<script>.py --quick --out <tmp>` and return (out_dir, {json name: parsed})."""

    def run(script: str, *extra: str, timeout: float = 300):
        out = tmp_path / script
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "chapters" / f"{script}.py"), "--quick",
                               "--out", str(out), *extra],
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{script} --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
        return out, results

    return run
