"""Course assignments (scratchlm/assignment.py): region scanning and its errors, student copies,
grading and Gradescope's results.json -- on a tiny fake project built in a temp folder -- and the
checks over the real tree: ids unique, every exercise tested, and the end-to-end student copy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scratchlm import assignment as asg
from scratchlm import cli

REPO_ROOT = Path(__file__).resolve().parent.parent

# The fake project: package `toylib` with exercises 1.1 and 1.2 (in functions) and 2.1 (in a method),
# chapter scripts they point to, tests with markers, an untouched function with its own test.
TOY = {
    "setup.cfg": """
        [metadata]
        name = toylib
        version = 0.0.1

        [options]
        packages = find:

        [tool:pytest]
        testpaths = tests
        addopts = --strict-markers
        markers =
            ex1_1: exercise 1.1
            ex1_2: exercise 1.2
            ex2_1: exercise 2.1
        """,
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        """,
    "toylib/__init__.py": "",
    "toylib/counting.py": '''
        """Counting (Chapter 1)."""


        def unigram_counts(tokens):
            """{token: count}."""
            counts = {}
            # BEGIN SOLUTION 1.1: Unigram counts (chapters/ch01_counting.py §1.1)
            for t in tokens:
                counts[t] = counts.get(t, 0) + 1
            # END SOLUTION
            return counts


        def bigram_counts(tokens):
            """{(previous, token): count}."""
            # BEGIN SOLUTION 1.2: Bigram counts (chapters/ch01_counting.py §1.2)
            pairs = list(zip(tokens, tokens[1:]))
            return unigram_counts(pairs)
            # END SOLUTION


        def vocabulary(tokens):
            return sorted(set(tokens))
        ''',
    "toylib/smoothing.py": '''
        """Smoothing (Chapter 2)."""


        class AddOne:
            def __init__(self, counts, vocab_size):
                self.counts, self.vocab_size = counts, vocab_size

            def prob(self, token):
                total = sum(self.counts.values())
                if total >= 0:
                    # BEGIN SOLUTION 2.1: Add-one (Laplace) estimate (chapters/ch02_smoothing.py §2.1)
                    return (self.counts.get(token, 0) + 1) / (total + self.vocab_size)
                    # END SOLUTION
                return 0.0
        ''',
    "chapters/ch01_counting.py": """
        # 1.1 Unigrams
        # 1.2 Bigrams
        """,
    "chapters/ch02_smoothing.py": """
        # 2.1 Add-one
        """,
    "tests/test_counting.py": """
        import pytest

        from toylib.counting import bigram_counts, unigram_counts, vocabulary


        @pytest.mark.ex1_1
        def test_unigram_counts():
            assert unigram_counts("abca") == {"a": 2, "b": 1, "c": 1}


        @pytest.mark.ex1_1
        @pytest.mark.parametrize("text", ["", "zzz"])
        def test_unigram_counts_sum_to_length(text):
            assert sum(unigram_counts(text).values()) == len(text)


        @pytest.mark.ex1_2
        def test_bigram_counts():
            assert bigram_counts("abab") == {("a", "b"): 2, ("b", "a"): 1}


        def test_vocabulary():
            assert vocabulary("cab") == ["a", "b", "c"]
        """,
    "tests/test_smoothing.py": """
        import pytest

        from toylib.smoothing import AddOne

        pytestmark = pytest.mark.ex2_1


        def test_add_one_sums_to_one():
            m = AddOne({"a": 3, "b": 1}, vocab_size=3)
            assert sum(m.prob(t) for t in "abc") == pytest.approx(1.0)
        """,
}
TOY_IDS = ["1.1", "1.2", "2.1"]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    """The fake project; `scratchlm assignment` scans its package `toylib`."""
    monkeypatch.setattr(asg, "PACKAGES", ("toylib",))
    return write_tree(tmp_path / "toy", TOY)


def run_python(root: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)


# Scanning -----------------------------------------------------------------------------------------

def test_scan_finds_regions_with_their_title_pointer_and_lines(toy):
    regions = asg.scan(toy)
    assert [r.id for r in regions] == TOY_IDS
    r = regions[2]  # in a method, under an `if`; a title with parentheses
    assert (r.title, r.chapter_file, r.section, r.path, r.begin, r.end, r.indent) == (
        "Add-one (Laplace) estimate", "chapters/ch02_smoothing.py", "2.1",
        Path("toylib/smoothing.py"), 11, 13, " " * 12)
    assert regions[0].marker == "ex1_1" and regions[0].chapter == 1
    assert regions[0].stub_message == "Exercise 1.1: Unigram counts — see chapters/ch01_counting.py §1.1"
    assert (regions[1].path, regions[1].begin, regions[1].end) == (Path("toylib/counting.py"), 16, 19)


def test_cli_list_prints_every_exercise(toy, capsys):
    assert cli.main(["assignment", "list", "--root", str(toy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == TOY_IDS
    assert "Bigram counts" in lines[1] and "toylib/counting.py:16" in lines[1]
    assert lines[1].rstrip().endswith("chapters/ch01_counting.py §1.2")


def test_region_ids_sort_numerically(toy):
    src = toy / "toylib/counting.py"
    src.write_text(src.read_text().replace("SOLUTION 1.2:", "SOLUTION 1.10:"))
    assert [r.id for r in asg.scan(toy)] == ["1.1", "1.10", "2.1"]


GOOD = "    # BEGIN SOLUTION 1.1: Unigram counts (chapters/ch01_counting.py §1.1)\n"

# (what to put in toylib/bad.py, the file:line and the words the error must contain)
BAD_REGIONS = {
    "unclosed": ("def f():\n" + GOOD + "    return 1\n", "bad.py:2", "never closed"),
    "end without begin": ("def f():\n    return 1\n    # END SOLUTION\n", "bad.py:3", "without a BEGIN"),
    "nested": ("def f():\n" + GOOD + GOOD.replace("1.1", "1.2") + "    return 1\n    # END SOLUTION\n",
               "bad.py:3", "do not nest"),
    "bad id": ("def f():\n" + GOOD.replace("1.1:", "1.x:") + "    return 1\n    # END SOLUTION\n",
               "bad.py:2", "bad exercise id '1.x'"),
    "id with leading zero": ("def f():\n" + GOOD.replace("1.1:", "1.01:") + "    return 1\n    # END SOLUTION\n",
                             "bad.py:2", "bad exercise id '1.01'"),
    "no space after #": ("def f():\n" + GOOD.replace("# BEGIN", "#BEGIN") + "    return 1\n    # END SOLUTION\n",
                         "bad.py:2", "malformed BEGIN line '#BEGIN SOLUTION 1.1"),
    "no pointer": ("def f():\n    # BEGIN SOLUTION 1.3: Counts\n    return 1\n    # END SOLUTION\n",
                   "bad.py:2", "malformed BEGIN line"),
    "pointer to another chapter": ("def f():\n" + GOOD.replace("SOLUTION 1.1", "SOLUTION 3.1")
                                   + "    return 1\n    # END SOLUTION\n", "bad.py:2", "expected a chapter 3 script"),
    "missing chapter script": ("def f():\n" + GOOD.replace("ch01_counting", "ch01_nothere")
                               + "    return 1\n    # END SOLUTION\n", "bad.py:2", "does not exist"),
    "missing section": ("def f():\n" + GOOD.replace("§1.1", "§1.7") + "    return 1\n    # END SOLUTION\n",
                        "bad.py:2", "no section heading `# 1.7"),
    "title with backslash": ("def f():\n" + GOOD.replace("Unigram", "Uni\\gram")
                             + "    return 1\n    # END SOLUTION\n", "bad.py:2", "may not contain"),
    "malformed end": ("def f():\n" + GOOD + "    return 1\n    # END SOLUTION 1.1\n", "bad.py:4",
                      "malformed END line"),
    "marker after code": ("def f():\n    x = 1  " + GOOD.strip() + "\n    return x\n", "bad.py:2",
                          "on a line of its own"),
    "module level": (GOOD.strip() + "\nX = 1\n# END SOLUTION\n", "bad.py:1", "at module level"),
    "class body": ("class C:\n" + GOOD + "    x = 1\n    # END SOLUTION\n", "bad.py:2", "at a class body"),
    "end indented differently": ("def f():\n" + GOOD + "    return 1\n        # END SOLUTION\n", "bad.py:4",
                                 "not indented like its BEGIN"),
    "swallows an outer statement": ("def f(xs):\n    for x in xs:\n    " + GOOD + "        y = x\n"
                                    "    return y\n        # END SOLUTION\n", "bad.py:5", "indented less"),
    "splits a block": ("def f(x):\n" + GOOD + "    if x:\n        return 1\n    # END SOLUTION\n"
                       "    else:\n        return 2\n", "bad.py:2", "whole statements"),
}


@pytest.mark.parametrize("case", list(BAD_REGIONS))
def test_malformed_regions_are_clear_errors_with_file_and_line(toy, case):
    source, where, words = BAD_REGIONS[case]
    (toy / "toylib/bad.py").write_text(source, encoding="utf-8")
    with pytest.raises(asg.AssignmentError) as info:
        asg.scan(toy)
    message = str(info.value)
    assert f"toylib/{where}:" in message and words in message, message


@pytest.mark.parametrize("heading", ["# 1.2 Bigrams", "# %% 1.2 Bigrams", "#%% 1.2 Bigrams"])
def test_section_headings_may_be_notebook_cells(toy, heading):
    """Chapter sections marked as cells for Jupyter (jupytext) and VS Code still count as headings."""
    (toy / "chapters/ch01_counting.py").write_text(f"# %% 1.1 Unigrams\n{heading}\n", encoding="utf-8")
    assert [r.id for r in asg.scan(toy)] == TOY_IDS
    (toy / "chapters/ch01_counting.py").write_text("# %% 1.1 Unigrams\n# %% 1.20 Bigrams\n", encoding="utf-8")
    with pytest.raises(asg.AssignmentError, match="has no section heading `# 1.2 ...` "
                                                  "\\(or `# %% 1.2 ...`\\)"):
        asg.scan(toy)


def test_a_library_file_that_is_not_utf8_is_named_with_its_offset(toy, capsys):
    (toy / "toylib/latin1.py").write_bytes(b"# caf\xe9\n")
    assert cli.main(["assignment", "list", "--root", str(toy)]) == 2
    assert "toylib/latin1.py: not UTF-8 text: byte 0xe9 at offset 5" in capsys.readouterr().err


def test_duplicate_ids_name_both_places(toy):
    (toy / "toylib/dup.py").write_text("def g():\n" + GOOD.replace("1.1:", "1.2:") + "    return 1\n"
                                       "    # END SOLUTION\n", encoding="utf-8")
    with pytest.raises(asg.AssignmentError, match=r"toylib/dup.py:2: duplicate exercise id 1.2 "
                                              r"\(also at toylib/counting.py:16\)"):
        asg.scan(toy)


def test_every_problem_is_reported_at_once(toy):
    (toy / "toylib/bad.py").write_text("def f():\n    # END SOLUTION\n\n" + GOOD.strip() + "\n",
                                       encoding="utf-8")
    message = str(pytest.raises(asg.AssignmentError, asg.scan, toy).value)
    assert "bad.py:2:" in message and "bad.py:4:" in message


def test_marker_text_inside_strings_is_not_a_region(toy):
    (toy / "toylib/doc.py").write_text('"""Write\n    # BEGIN SOLUTION <id>: <title>\nin your code."""\n',
                                       encoding="utf-8")
    assert [r.id for r in asg.scan(toy)] == TOY_IDS


def test_select_by_ids_chapter_or_all_and_its_errors(toy):
    regions = asg.scan(toy)
    assert [r.id for r in asg.select(regions, ["2.1", "1.1"])] == ["1.1", "2.1"]
    assert [r.id for r in asg.select(regions, chapters=[1])] == ["1.1", "1.2"]
    assert [r.id for r in asg.select(regions)] == TOY_IDS
    with pytest.raises(asg.AssignmentError, match="no exercise 1.9; the exercises are 1.1, 1.2, 2.1"):
        asg.select(regions, ["1.9"])
    with pytest.raises(asg.AssignmentError, match=r"chapter 5 has no exercises; chapters with exercises: \[1, 2\]"):
        asg.select(regions, chapters=[5])
    with pytest.raises(asg.AssignmentError, match="no exercise regions"):
        asg.select([], None)


# Student copies -----------------------------------------------------------------------------------

def test_student_copy_strips_the_chosen_regions_and_nothing_else(toy, tmp_path, capsys):
    (toy / "toylib/__pycache__").mkdir()
    (toy / "toylib/__pycache__/counting.cpython-311.pyc").write_bytes(b"solutions in bytecode")
    (toy / ".git").mkdir()
    (toy / ".git/HEAD").write_text("solutions in history")
    out = tmp_path / "student"
    assert cli.main(["assignment", "student", "--exercises", "1.2,2.1", "--root", str(toy), "--out", str(out)]) == 0
    assert "stripped" in capsys.readouterr().out

    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert copied == sorted(TOY)  # no .git, no bytecode
    for name in TOY:
        if name not in ("toylib/counting.py", "toylib/smoothing.py"):
            assert (out / name).read_bytes() == (toy / name).read_bytes(), name
    original = (toy / "toylib/counting.py").read_text().splitlines()
    stripped = (out / "toylib/counting.py").read_text().splitlines()
    # Region 1.1 (lines 8-11) is not chosen and stays; 1.2's two body lines become one raise.
    assert stripped[:16] == original[:16] and stripped[17:] == original[18:]
    assert stripped[16] == ('    raise NotImplementedError("Exercise 1.2: Bigram counts — '
                            'see chapters/ch01_counting.py §1.2")')
    assert (out / "toylib/smoothing.py").read_text().splitlines()[11] == (
        '            raise NotImplementedError("Exercise 2.1: Add-one (Laplace) estimate — '
        'see chapters/ch02_smoothing.py §2.1")')
    assert [r.id for r in asg.scan(out)] == TOY_IDS  # the markers stay, so the copy can be graded

    proc = run_python(out, "from toylib.counting import unigram_counts, bigram_counts, vocabulary\n"
                           "from toylib.smoothing import AddOne\n"
                           "assert unigram_counts('aab') == {'a': 2, 'b': 1} and vocabulary('ba') == ['a', 'b']\n"
                           "for call in (lambda: bigram_counts('ab'), lambda: AddOne({}, 1).prob('a')):\n"
                           "    try:\n        call()\n    except NotImplementedError as e:\n        print(e)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "Exercise 1.2: Bigram counts — see chapters/ch01_counting.py §1.2",
        "Exercise 2.1: Add-one (Laplace) estimate — see chapters/ch02_smoothing.py §2.1"]


def test_student_copy_refuses_a_non_empty_folder_unless_forced(toy, tmp_path):
    out = tmp_path / "student"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    regions = asg.scan(toy)
    with pytest.raises(SystemExit, match="is not empty; pass --force"):
        cli.main(["assignment", "student", "--all", "--root", str(toy), "--out", str(out)])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    asg.student_copy(toy, out, regions, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "toylib/counting.py").is_file()
    assert "NotImplementedError" in (out / "toylib/counting.py").read_text()
    with pytest.raises(asg.AssignmentError, match="inside the project"):
        asg.student_copy(toy, toy / "student", regions)
    (tmp_path / "file").write_text("x")
    with pytest.raises(asg.AssignmentError, match="is not a folder"):
        asg.student_copy(toy, tmp_path / "file", regions, force=True)


def test_student_command_needs_a_choice_of_exercises(toy, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["assignment", "student", "--root", str(toy), "--out", str(tmp_path / "s")])
    with pytest.raises(SystemExit, match="no exercise 7.1"):
        cli.main(["assignment", "student", "--exercises", "7.1", "--root", str(toy), "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_in_a_git_work_tree_the_copy_is_what_git_would_commit(toy, tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=toy, check=True)
    (toy / ".gitignore").write_text("*.npz\n")
    (toy / "model.npz").write_bytes(b"ignored")
    subprocess.run(git + ["add", "setup.cfg", "toylib"], cwd=toy, check=True)  # the rest untracked
    (toy / "toylib/__init__.py").unlink()  # deleted but still in the index: skipped
    assert asg.project_files(toy) == sorted(Path(p) for p in [*TOY, ".gitignore"] if p != "toylib/__init__.py")


# Grading ------------------------------------------------------------------------------------------

def validate_gradescope(results: dict) -> None:
    """Gradescope's results.json fields as its autograder specification documents them: top-level
    score (number), optional execution_time (number), output (string); tests: a list of objects with
    name (string), score and max_score (numbers, 0 <= score <= max_score), optional number (string),
    status ("passed" or "failed"), output (string); the total is the sum of the test scores."""
    allowed = {"score", "execution_time", "output", "tests", "visibility", "stdout_visibility", "extra_data"}
    assert set(results) <= allowed, set(results) - allowed
    assert isinstance(results["score"], (int, float)) and isinstance(results["tests"], list)
    assert isinstance(results.get("execution_time", 0), (int, float))
    assert isinstance(results.get("output", ""), str)
    for t in results["tests"]:
        assert set(t) <= {"name", "score", "max_score", "number", "status", "output", "tags", "visibility"}, t
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"]
        assert isinstance(t.get("number", ""), str) and t.get("status", "passed") in ("passed", "failed")
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]), abs=1e-9)


def test_grading_the_reference_scores_full_marks(toy, tmp_path, capsys):
    results = tmp_path / "results.json"
    rc = cli.main(["assignment", "grade", "--root", str(toy), "--json", str(results)])
    table = capsys.readouterr().out
    assert rc == 0, table
    assert "total" in table and "3.00 / 3" in table and "not passed" not in table
    data = json.loads(results.read_text(encoding="utf-8"))
    validate_gradescope(data)
    assert data["score"] == 3.0
    assert [(t["number"], t["score"], t["max_score"]) for t in data["tests"]] == [(i, 1.0, 1.0) for i in TOY_IDS]
    assert data["tests"][0]["output"].count("PASSED") == 3  # test_unigram_counts + two parametrized


def test_grading_a_student_copy_scores_zero_on_stripped_exercises(toy, tmp_path, capsys):
    out = tmp_path / "student"
    asg.student_copy(toy, out, asg.select(asg.scan(toy), ["1.1", "2.1"]))
    results = tmp_path / "results.json"
    rc = cli.main(["assignment", "grade", "--root", str(out), "--json", str(results)])
    table = capsys.readouterr().out
    assert rc == 1
    data = json.loads(results.read_text(encoding="utf-8"))
    validate_gradescope(data)
    # 1.2 calls 1.1's unigram_counts, so it fails too: with 1.1's message, which tells the student why.
    assert [t["score"] for t in data["tests"]] == [0.0, 0.0, 0.0] and data["score"] == 0.0
    assert "NotImplementedError: Exercise 1.1: Unigram counts" in data["tests"][0]["output"]
    assert "NotImplementedError: Exercise 2.1:" in data["tests"][2]["output"]
    assert "FAILED [1.1] tests.test_counting.test_unigram_counts: NotImplementedError: Exercise 1.1" in table


def test_partial_credit(toy):
    src = toy / "toylib/counting.py"
    src.write_text(src.read_text().replace("counts[t] = counts.get(t, 0) + 1", "counts[t] = 1"))
    g = asg.grade(toy, asg.select(asg.scan(toy), ["1.1", "2.1"]))
    by_id = {e.region.id: e for e in g.exercises}
    assert (by_id["1.1"].passed, len(by_id["1.1"].tests), by_id["1.1"].score) == (1, 3, 0.3333)  # "" passes
    assert by_id["2.1"].score == 1.0 and g.score == 1.3333


# A student's mistake that stops toylib/counting.py from importing (appended at its line 25), and
# the error the grader must show for it.
BROKEN_MODULES = {
    "syntax error": ("def broken(:\n", "toylib/counting.py:25: SyntaxError: invalid syntax"),
    "error at import": ("X = undefined_name\n",
                        "toylib/counting.py:25: NameError: name 'undefined_name' is not defined"),
}


@pytest.mark.parametrize("case", list(BROKEN_MODULES))
def test_a_module_that_does_not_import_is_named_with_its_line(toy, case):
    code, error = BROKEN_MODULES[case]
    src = toy / "toylib/counting.py"
    src.write_text(src.read_text() + "\n" + code)
    g = asg.grade(toy, asg.scan(toy))
    by_id = {e.region.id: e for e in g.exercises}
    assert by_id["2.1"].score == 1.0  # the other test file still ran
    for exercise in ("1.1", "1.2"):  # their test module did not import: one error each, naming file:line
        (failure,) = by_id[exercise].tests
        assert (failure.name, failure.outcome, by_id[exercise].score) == ("tests.test_counting", "error", 0.0)
        assert failure.message == f"could not be collected: {error}"
    assert f"  ERROR [1.1] tests.test_counting: could not be collected: {error}" in asg.format_table(g).splitlines()
    report = asg.gradescope_results(g)["tests"][0]["output"]
    assert error in report and code.strip() in report


def test_a_hanging_exercise_costs_only_that_exercise(toy, tmp_path, capsys):
    """A student copy where exercise 1.1 is right and 1.2, tested in the same file, loops forever:
    1.1 scores in full, 1.2 "timed out", and 2.1, left as the stub, fails as usual."""
    out = tmp_path / "student"
    asg.student_copy(toy, out, asg.scan(toy))
    src = out / "toylib/counting.py"
    # (It sleeps as it loops, so as not to slow the other exercise's run on a busy machine.)
    src.write_text("import time\n" + re.sub(
        r'raise NotImplementedError\("Exercise 1.2.*', "while True:\n        time.sleep(0.01)",
        re.sub(r'raise NotImplementedError\("Exercise 1.1.*', "counts = {t: tokens.count(t) for t in tokens}",
               src.read_text())))
    results = tmp_path / "results.json"
    rc = cli.main(["assignment", "grade", "--root", str(out), "--timeout", "5", "--json", str(results)])
    table = capsys.readouterr().out
    assert rc == 1
    rows = {line.split()[0]: line for line in table.splitlines() if line[:1].isdigit()}
    assert rows["1.1"].split()[-2:] == ["3/3", "1.00"], table
    assert rows["1.2"].endswith("timed out after 5 s   0.00"), table
    assert rows["2.1"].split()[-2:] == ["0/1", "0.00"], table
    assert "  NOT RUN [1.2]: timed out after 5 s" in table and "1.00 / 3" in table
    assert "FAILED [2.1] tests.test_smoothing.test_add_one_sums_to_one: NotImplementedError: Exercise 2.1" in table
    data = json.loads(results.read_text(encoding="utf-8"))
    validate_gradescope(data)
    assert [(t["number"], t["score"]) for t in data["tests"]] == [("1.1", 1.0), ("1.2", 0.0), ("2.1", 0.0)]
    assert data["tests"][1]["output"].startswith("timed out after 5 s")
    assert data["output"] == "1 of 3 exercises passed in full; 1.2 timed out after 5 s"


def test_a_crash_costs_only_that_exercise(toy):
    """An exercise whose test kills pytest (as a segfault in a Numba kernel would) leaves no report:
    it scores 0 saying so, and the exercise tested in the same file is graded as usual."""
    src = toy / "toylib/counting.py"
    src.write_text(src.read_text().replace("    pairs = list(zip(tokens, tokens[1:]))",
                                           "    import os\n    os._exit(3)"))
    g = asg.grade(toy, asg.select(asg.scan(toy), ["1.1", "1.2"]), jobs=1)
    one, two = g.exercises
    assert (one.region.id, one.score, one.problem) == ("1.1", 1.0, "")
    assert (two.region.id, two.score, two.tests) == ("1.2", 0.0, [])
    assert two.problem.startswith("pytest stopped without a report (exit 3"), two.problem


# (the arguments after `assignment grade --root <toy>`, the words the error must contain); {tmp} is a
# temp folder. Each must fail before any test runs.
BAD_GRADE_ARGS = {
    "timeout zero": (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
    "timeout negative": (["--timeout", "-2.5"], "--timeout must be a positive number of seconds, got -2.5"),
    "timeout nan": (["--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
    "json into a missing folder": (["--json", "{tmp}/missing/results.json"],
                                   "--json {tmp}/missing/results.json: the folder {tmp}/missing does not exist"),
    "json is a folder": (["--json", "{tmp}"], "--json {tmp}: {tmp} is a folder; give a file name such as "
                                              "{tmp}/results.json"),
}


@pytest.mark.parametrize("case", list(BAD_GRADE_ARGS))
def test_bad_grade_arguments_fail_before_the_tests_run(toy, tmp_path, monkeypatch, case):
    args, words = BAD_GRADE_ARGS[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]

    def no_tests(*a, **k):
        raise AssertionError("the tests ran")

    monkeypatch.setattr(asg, "run_tests", no_tests)
    with pytest.raises(SystemExit) as info:
        cli.main(["assignment", "grade", "--root", str(toy), *args])
    assert str(info.value.code) == "error: " + words.replace("{tmp}", str(tmp_path))
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_grade_refuses_a_timeout_that_is_not_positive(toy, timeout):
    with pytest.raises(asg.AssignmentError, match=f"--timeout must be a positive number of seconds, got {timeout:g}"):
        asg.grade(toy, asg.scan(toy), timeout=timeout)


def test_grade_inside_a_student_copy_grades_that_copy_and_says_so(toy, tmp_path, monkeypatch, capsys):
    """No --root: the project containing the current folder, not the library's own tree."""
    out = tmp_path / "student"
    asg.student_copy(toy, out, asg.select(asg.scan(toy), ["2.1"]))
    monkeypatch.chdir(out / "tests")
    rc = cli.main(["assignment", "grade", "--exercises", "1.1,2.1"])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out.splitlines()[0] == f"grading {out}", captured.out
    rows = {line.split()[0]: line.split()[-2:] for line in captured.out.splitlines() if line[:1].isdigit()}
    assert rows == {"1.1": ["3/3", "1.00"], "2.1": ["0/1", "0.00"]}  # the copy's stub, not the reference
    # The scratchlm running this command is not the copy's (the toy has none): said, with the fix.
    assert f"warning: the scratchlm library imported here is {REPO_ROOT / 'scratchlm'}, not the one in {out}" \
        in captured.err and f"python -m pip install -e {out}" in captured.err
    assert cli.main(["assignment", "list"]) == 0
    assert capsys.readouterr().err == f"exercises in {out}:\n"


def test_check_tests_finds_untested_unregistered_and_orphan_markers(toy):
    assert asg.check_tests(toy, asg.scan(toy)) == []
    cfg = toy / "setup.cfg"
    cfg.write_text(cfg.read_text().replace("    ex1_2: exercise 1.2\n", "    ex3_1: gone\n"))
    tests = toy / "tests/test_counting.py"
    tests.write_text(tests.read_text().replace("@pytest.mark.ex1_1\ndef test_unigram_counts",
                                               "@pytest.mark.ex4_4\ndef test_unigram_counts")
                     .replace("@pytest.mark.ex1_2\n", "") + "\nNOTE = 'pytest.mark.ex9_9 in a string'\n")
    assert asg.check_tests(toy, asg.scan(toy)) == [
        "exercise 1.2 (toylib/counting.py:16) has no test marked @pytest.mark.ex1_2 in tests/",
        "marker ex1_2 of exercise 1.2 is not registered in setup.cfg ([tool:pytest] markers)",
        "tests/test_counting.py:6: marker ex4_4 names no exercise region",
        "setup.cfg registers marker ex3_1 but there is no such exercise",
    ]


# The real tree ------------------------------------------------------------------------------------

def test_real_tree_regions_are_well_formed_with_unique_ids():
    regions = asg.scan(REPO_ROOT)  # raises AssignmentError naming file:line for any malformed region
    assert len({r.id for r in regions}) == len(regions)


def test_real_tree_every_exercise_has_a_registered_marker_and_a_test():
    assert asg.check_tests(REPO_ROOT, asg.scan(REPO_ROOT)) == []


def test_real_tree_reference_solutions_score_full_marks(tmp_path, capsys):
    results = tmp_path / "results.json"
    rc = cli.main(["assignment", "grade", "--root", str(REPO_ROOT), "--json", str(results)])
    table = capsys.readouterr().out
    assert rc == 0, table
    data = json.loads(results.read_text(encoding="utf-8"))
    validate_gradescope(data)
    n = len(asg.scan(REPO_ROOT))
    assert data["score"] == n and f"{n:.2f} / {n}" in table, table
    assert all(t["score"] == t["max_score"] == 1.0 for t in data["tests"]), table


def assert_student_copy_works(root: Path, out: Path) -> None:
    """Strip every exercise of the project at root into out and check the copy: every module imports
    and every test file collects; each exercise's tests fail with the NotImplementedError naming that
    exercise; every other test in the files holding exercise tests (the ones most likely to lean on
    stripped code; `slow` ones left out) passes, or fails only on a stripped exercise. Running the
    rest of the suite a second time would take minutes, and outside the regions the copy is the
    original byte for byte (test_student_copy_strips_the_chosen_regions_and_nothing_else)."""
    regions = asg.scan(root)
    asg.student_copy(root, out, regions)

    proc = run_python(out, "import importlib, pkgutil, scratchlm\n"
                           "assert scratchlm.__file__.startswith(%r), scratchlm.__file__\n"
                           "for m in pkgutil.walk_packages(scratchlm.__path__, 'scratchlm.'):\n"
                           "    importlib.import_module(m.name)\n" % str(out))
    assert proc.returncode == 0, f"the student copy does not import:\n{proc.stderr[-3000:]}"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
                          cwd=out, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"tests do not collect in the student copy:\n{proc.stdout[-3000:]}"

    uses = asg.marker_uses(out)  # the test files that mark exercise tests (markers in strings don't count)
    test_files = sorted({str(path) for r in regions for path, _ in uses.get(r.marker, [])})
    expr = " or ".join(r.marker for r in regions) + " or not slow"
    run = asg.run_tests(out, expr, test_files, timeout=400)
    results = run.results
    assert results and not run.problem, run.output[-3000:]
    problems = []
    for t in results:
        # The exercises whose stub raised, as the failure's own message: what the student reads. (Not
        # "DID NOT WARN" with the NotImplementedError only further down the traceback.)
        named = set(re.findall(r"^NotImplementedError: Exercise (\d+\.\d+):", t.message))
        if t.exercises and not (t.outcome == "failed" and named & set(t.exercises)):
            problems.append(f"{t.name} [{', '.join(t.exercises)}]: {t.outcome} {t.message[:200]}")
        named |= set(re.findall(r"NotImplementedError: Exercise (\d+\.\d+):", t.details))
        if not t.exercises and t.outcome in ("failed", "error") and not named:
            problems.append(f"{t.name} (no exercise) broke in the student copy: {t.outcome} {t.message[:200]}")
    assert not problems, "\n".join(problems)
    untested = {r.id for r in regions} - {e for t in results for e in t.exercises}
    assert not untested, f"exercises whose tests did not run: {sorted(untested, key=asg.id_key)}"


def test_real_tree_student_copy_with_every_exercise_stripped(tmp_path):
    if not asg.scan(REPO_ROOT):
        pytest.skip("the library has no exercise regions yet (# BEGIN SOLUTION ... # END SOLUTION)")
    assert_student_copy_works(REPO_ROOT, tmp_path / "student")
