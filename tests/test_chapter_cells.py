"""Chapter scripts are notebooks too: numbered sections are `# %% N.M title` cells (Jupytext's and
VS Code's percent format), and a chapter run cell by cell in one namespace, as a notebook kernel
runs it, gives the same numbers as the script."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from scratchlm import chapter

CHAPTERS = sorted((chapter.REPO_ROOT / "chapters").glob("ch*_*.py"))
CELL = re.compile(r"^# %% (\d+)\.(\d+) \S", re.M)


def cells(source: str) -> list[str]:
    """The script split where Jupytext's percent format splits it: before each `# %%` line."""
    return re.split(r"^(?=# %%)", source, flags=re.M)


@pytest.mark.parametrize("script", CHAPTERS, ids=lambda p: p.stem)
def test_every_numbered_section_is_a_cell_in_order(script):
    source = script.read_text(encoding="utf-8")
    number = int(script.stem[2:4])
    sections = [(int(c), int(s)) for c, s in CELL.findall(source)]
    assert sections, f"{script.name}: no '# %% {number}.1 ...' cells"
    assert all(c == number for c, _ in sections), f"{script.name}: cells of another chapter: {sections}"
    assert [s for _, s in sections] == sorted(set(s for _, s in sections)), f"{script.name}: {sections}"
    # no section heading left in the old form, which would not start a cell
    assert not re.search(r"^# \d+\.\d+ .*-{3,}$", source, re.M), f"{script.name}: a heading is not a cell"


def test_a_notebook_kernel_takes_the_flags_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ipykernel", object())   # as inside Jupyter or VS Code's kernel
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel-1.json"])
    monkeypatch.setenv("SCRATCHLM_CHAPTER_ARGS", f"--quick --seed 3 --out '{tmp_path / 'a b'}'")
    run = chapter.parse_args(None)
    assert (run.quick, run.seed, run.out) == (True, 3, tmp_path / "a b")


def test_chapter_3_run_cell_by_cell_equals_the_script(tmp_path, data_dir):
    script = chapter.REPO_ROOT / "chapters" / "ch03_autograd.py"
    assert len(cells(script.read_text(encoding="utf-8"))) >= 5
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path / "script")],
                   check=True, capture_output=True)
    kernel = textwrap.dedent(f"""
        import re, sys, types
        sys.modules["ipykernel"] = types.ModuleType("ipykernel")   # what a notebook kernel has loaded
        sys.argv = ["ipykernel_launcher.py", "-f", "kernel.json"]
        namespace = {{"__name__": "__main__"}}
        source = open({str(script)!r}, encoding="utf-8").read()
        for i, cell in enumerate(re.split(r"^(?=# %%)", source, flags=re.M)):
            exec(compile(cell, f"cell {{i}}", "exec"), namespace)
    """)
    env = {**os.environ, "SCRATCHLM_CHAPTER_ARGS": f"--quick --out '{tmp_path / 'cells'}'"}
    subprocess.run([sys.executable, "-c", kernel], check=True, capture_output=True, env=env)
    a, b = (json.loads((tmp_path / d / "ch03_results.json").read_text()) for d in ("script", "cells"))
    assert a == b
