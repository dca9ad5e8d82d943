"""The `scratchlm` command (and `python -m scratchlm`): argument handling and its errors, which project
tree it works on (scratchlm/project.py); the chapters themselves are tested one by one in
tests/test_chNN.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm import chapter, cli, project

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_every_chapter_script_is_found():
    scripts = cli.chapter_scripts()
    assert scripts, "no chapters/chNN_*.py found"
    for n, path in scripts.items():
        assert path.name.startswith(f"ch{n:02d}_")


def test_unknown_chapter_is_a_clear_error():
    with pytest.raises(SystemExit, match="no chapter 99"):
        cli.main(["figures", "--chapter", "99"])


def test_parse_args_defaults_quick_runs_away_from_committed_figures(tmp_path):
    run = chapter.parse_args("t", ["--quick"])
    assert run.quick and run.out == chapter.FIGURES_DIR / "quick"
    run = chapter.parse_args("t", ["--out", str(tmp_path / "x"), "--seed", "3"])
    assert not run.quick and run.seed == 3 and (tmp_path / "x").is_dir()


def test_write_results_is_json_with_run_settings(tmp_path):
    run = chapter.ChapterRun(quick=True, out=tmp_path, seed=7)
    path = chapter.write_results(run, "ch00_results", {"ppl": 1.5, "name": "测试"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"quick": True, "seed": 7, "ppl": 1.5, "name": "测试"}
    assert [p.name for p in tmp_path.iterdir()] == ["ch00_results.json"]  # no temp file left behind


def test_python_dash_m_scratchlm_is_the_scratchlm_command():
    proc = subprocess.run([sys.executable, "-m", "scratchlm", "figures", "--chapter", "99"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no chapter 99" in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "scratchlm", "assignment", "--help"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: scratchlm assignment"), proc.stderr
    assert "README's \"For teachers\" section" in proc.stdout and "docs/teachers.md" not in proc.stdout


def fake_project(root: Path) -> Path:
    """A project with its own (empty) scratchlm package and a chapter that says which scratchlm it imports."""
    (root / "scratchlm").mkdir(parents=True)
    (root / "scratchlm/__init__.py").write_text("")
    (root / "setup.cfg").write_text("[metadata]\nname = scratchlm\n")
    (root / "chapters").mkdir()
    (root / "chapters/ch01_which.py").write_text("import scratchlm\nprint('imports', scratchlm.__file__)\n")
    return root


def test_find_project_walks_up_to_the_folder_with_the_package_and_its_config(tmp_path):
    assert project.find_project(REPO_ROOT / "tests") == REPO_ROOT
    assert project.find_project(REPO_ROOT / "chapters" / "ch01_ngrams.py") == REPO_ROOT
    assert project.find_project(tmp_path) is None
    (tmp_path / "scratchlm").mkdir()
    (tmp_path / "scratchlm/__init__.py").write_text("")
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = scratchlm-notes\n")
    assert project.find_project(tmp_path / "scratchlm") is None, "a config naming another package"
    assert project.find_project(fake_project(tmp_path / "copy") / "chapters") == tmp_path / "copy"


def test_a_chapter_in_another_project_warns_that_it_runs_the_installed_library(tmp_path, capsys):
    copy = fake_project(tmp_path / "copy")
    project.warn_if_library_elsewhere(copy / "chapters/ch01_which.py")
    err = capsys.readouterr().err
    assert err.startswith(f"warning: the scratchlm library imported here is {REPO_ROOT / 'scratchlm'}, "
                          f"not the one in {copy}") and f"python -m pip install -e {copy}" in err, err
    project.warn_if_library_elsewhere(REPO_ROOT / "chapters/ch01_ngrams.py")
    project.warn_if_library_elsewhere(tmp_path)  # in no project
    assert capsys.readouterr().err == ""


def test_figures_runs_the_chapters_of_the_project_it_is_run_in_on_its_library(tmp_path, monkeypatch, capfd):
    copy = fake_project(tmp_path / "copy")
    monkeypatch.chdir(copy / "chapters")
    with pytest.raises(SystemExit, match=r"no chapter 2; chapters: \[1\]"):
        cli.main(["figures", "--chapter", "2"])
    assert cli.main(["figures", "--chapter", "1", "--out", str(tmp_path / "out")]) == 0
    out = capfd.readouterr().out
    assert f"running the chapters of {copy} with its own library" in out
    assert f"imports {copy / 'scratchlm' / '__init__.py'}" in out, out
