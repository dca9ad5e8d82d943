"""The `scratchlm` command: argument handling and its errors (the chapters themselves are tested
one by one in tests/test_chNN.py)."""

import json

import pytest

from scratchlm import chapter, cli


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
