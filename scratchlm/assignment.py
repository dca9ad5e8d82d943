"""Course assignments from the one codebase: exercise regions, student copies, grading.

The reference solutions are the library code itself. A teacher marks the heart of a function as an
exercise region; a student copy replaces the region's body with a `raise NotImplementedError`, and
the grader runs the tests marked for that exercise. (`scratchlm assignment --help` lists the
commands; the README's "For teachers" section walks through them.)

Region format. Inside a function body, on lines of their own, at the indentation of the code they
enclose:

    def continuation_count(counts):
        \"\"\"Docstring stays visible to students.\"\"\"
        # BEGIN SOLUTION 2.3: Kneser–Ney continuation counts (chapters/ch02_smoothing.py §2.3)
        ...reference solution...
        # END SOLUTION

The BEGIN line is `# BEGIN SOLUTION <id>: <title> (<chapter script> §<section>)` where
  - <id> is `<chapter>.<n>` (both positive, no leading zeros): exercise n of that chapter;
  - <title> is a short phrase without `"` or `\\`;
  - <chapter script> is `chapters/chNN_<name>.py` for the same chapter (it must exist), and
    <section> one of its sections, `2.3`, whose heading comment `# 2.3 ...` (or the notebook-cell
    form `# %% 2.3 ...`) is in that script.
Regions do not nest, ids are unique across the library, and the body must be whole statements of
the one block that the markers' indentation is in. The student copy keeps both marker lines and puts
in between, at that indentation,

        raise NotImplementedError("Exercise 2.3: Kneser–Ney continuation counts — see chapters/ch02_smoothing.py §2.3")

Tests for exercise 2.3 carry `@pytest.mark.ex2_3` (registered in setup.cfg); `check_tests` checks
that every region has one and that no marker is left without a region.

Grading runs `python -m pytest -m "ex2_1 or ex2_3" <the test files marking them>` in the tree being
graded, one process for the exercises whose tests share files (a few at a time); a process that
runs past the timeout or crashes is run again one exercise at a time, so that a hang or a crash
costs only its own exercise (`grade`). This module is a pytest plugin
there (`-p scratchlm.assignment`) that records each test's exercise ids in pytest's JUnit XML, which
is then read back. Each exercise is worth 1 point; a student gets the fraction of its tests that
pass (skipped counts as not passed; a test module that cannot be collected counts as one failed
test, its message naming the file:line of the error). `gradescope_results` turns that into Gradescope's
results.json: {"score": total, "execution_time": seconds, "output": text, "tests": [{"name",
"number", "score", "max_score", "status", "output"}, ...]}, one entry per exercise.
"""

from __future__ import annotations

import ast
import configparser
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scratchlm.chapter import REPO_ROOT
from scratchlm.fileio import read_text

PACKAGES = ("scratchlm",)  # the folders scanned for regions, relative to the project root

_MARKER = re.compile(r"#\s*(BEGIN|END)\s+SOLUTION\b")
_BEGIN = re.compile(r"# BEGIN SOLUTION (?P<id>[^\s:]+): (?P<title>.+?) \((?P<chapter_file>\S+) §(?P<section>\S+)\)")
_ID = re.compile(r"([1-9]\d*)\.([1-9]\d*)")
_MARK_NAME = re.compile(r"ex([1-9]\d*)_([1-9]\d*)")
_BEGIN_FORMAT = "# BEGIN SOLUTION <chapter>.<n>: <title> (chapters/chNN_<name>.py §<section>)"


class AssignmentError(ValueError):
    """Malformed exercise regions (one `file:line: problem` line each), an unknown exercise or
    chapter, an unusable --out folder, a --timeout that is not a positive number of seconds, a --json
    path that cannot be written."""


@dataclass(frozen=True)
class Region:
    id: str              # "2.3"
    title: str           # "Kneser–Ney continuation counts"
    chapter_file: str    # "chapters/ch02_smoothing.py"
    section: str         # "2.3"
    path: Path           # the library file, relative to the project root
    begin: int           # 1-based line of `# BEGIN SOLUTION`
    end: int             # 1-based line of `# END SOLUTION`
    indent: str          # the markers' indentation

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def marker(self) -> str:
        """The pytest marker of this exercise's tests: 2.3 -> ex2_3."""
        return "ex" + self.id.replace(".", "_")

    @property
    def stub_message(self) -> str:
        return f"Exercise {self.id}: {self.title} — see {self.chapter_file} §{self.section}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.begin}"


def id_key(exercise_id: str) -> tuple[int, int]:
    """Sort key: 2.10 after 2.9."""
    chapter, n = exercise_id.split(".")
    return int(chapter), int(n)


# Scanning -------------------------------------------------------------------------------------------

def scan(root: Path = REPO_ROOT, packages: tuple[str, ...] | None = None) -> list[Region]:
    """Every exercise region under root/<package>/**/*.py, sorted by id; AssignmentError lists all problems."""
    root = Path(root)
    regions: list[Region] = []
    errors: list[str] = []
    for package in packages or PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found, problems = _scan_file(root, path.relative_to(root))
            regions += found
            errors += problems
    first: dict[str, Region] = {}
    for r in regions:
        if r.id in first:
            errors.append(f"{r.where}: duplicate exercise id {r.id} (also at {first[r.id].where})")
        first.setdefault(r.id, r)
    if errors:
        raise AssignmentError("\n".join(errors))
    return sorted(regions, key=lambda r: id_key(r.id))


def _scan_file(root: Path, rel: Path) -> tuple[list[Region], list[str]]:
    source = read_text(root / rel)  # invalid UTF-8: a ValueError naming the file and byte offset
    if "SOLUTION" not in source:
        return [], []
    lines = source.splitlines(keepends=True)
    try:
        ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, ValueError, tokenize.TokenError):
        tokens = None  # a student's broken file: find its markers line by line, skip the structure checks
    if tokens is None:
        comments = [(row, len(line) - len(line.lstrip()), line.strip())
                    for row, line in enumerate(lines, 1) if _MARKER.match(line.lstrip())]
    else:
        comments = [(tok.start[0], tok.start[1], tok.string) for tok in tokens
                    if tok.type == tokenize.COMMENT and _MARKER.match(tok.string)]

    # Where each logical line starts (row -> column): the statements a region may not dedent past.
    starts, at_start = {}, True
    for tok in tokens or []:
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if at_start:
            starts[tok.start[0]] = tok.start[1]
        at_start = tok.type == tokenize.NEWLINE

    regions, errors, open_ = [], [], None  # open_: (row, match or None if bad, indent) of the unclosed BEGIN
    for row, col, comment in comments:
        where = f"{rel}:{row}"
        indent = lines[row - 1][:col]
        if indent.strip():
            errors.append(f"{where}: a SOLUTION marker must be on a line of its own")
            continue
        text = comment.rstrip()
        if _MARKER.match(text)[1] == "BEGIN":  # `#BEGIN SOLUTION` too: reported as a malformed BEGIN line
            if open_:
                errors.append(f"{where}: BEGIN SOLUTION inside the region opened at line {open_[0]} "
                              "(regions do not nest; close it with `# END SOLUTION` first)")
                continue
            m = _BEGIN.fullmatch(text)
            if not m:
                errors.append(f"{where}: malformed BEGIN line {text!r}; expected {_BEGIN_FORMAT!r}")
                continue
            problem = _check_begin(root, m)
            if problem:
                errors.append(f"{where}: {problem}")
            open_ = (row, None if problem else m, indent)
        elif text != "# END SOLUTION":
            errors.append(f"{where}: malformed END line {text!r}; expected '# END SOLUTION'")
        elif not open_:
            errors.append(f"{where}: END SOLUTION without a BEGIN SOLUTION before it")
        else:
            begin, m, begin_indent = open_
            open_ = None
            if indent != begin_indent:
                errors.append(f"{where}: END SOLUTION is not indented like its BEGIN SOLUTION "
                              f"(line {begin})")
                continue
            dedented = [r for r, c in starts.items() if begin < r < row and c < len(indent)]
            if dedented:
                errors.append(f"{rel}:{dedented[0]}: statement indented less than the markers of "
                              f"the region at lines {begin}-{row}; a region holds statements of one block")
                continue
            if m is None:  # its BEGIN line's problem is already reported
                continue
            region = Region(m["id"], m["title"], m["chapter_file"], m["section"], rel, begin, row, indent)
            problem = tokens and _check_in_function(source, region)
            if problem:
                errors.append(f"{region.where}: {problem}")
            else:
                regions.append(region)
    if open_:
        errors.append(f"{rel}:{open_[0]}: BEGIN SOLUTION never closed with `# END SOLUTION`")
    return regions, errors


def _check_begin(root: Path, m: re.Match) -> str | None:
    """What is wrong with a well-formed BEGIN line's id, title and chapter pointer, or None."""
    idm = _ID.fullmatch(m["id"])
    if not idm:
        return f"bad exercise id {m['id']!r}: expected <chapter>.<n> such as 2.3"
    chapter = int(idm[1])
    if '"' in m["title"] or "\\" in m["title"]:
        return f"the title {m['title']!r} may not contain \" or \\"
    if not re.fullmatch(rf"chapters/ch{chapter:02d}_\w+\.py", m["chapter_file"]):
        return (f"exercise {m['id']} points to {m['chapter_file']!r}; expected a chapter {chapter} "
                f"script chapters/ch{chapter:02d}_<name>.py")
    if not re.fullmatch(rf"{chapter}(\.\d+)+", m["section"]):
        return f"section §{m['section']} is not a section of chapter {chapter}"
    script = root / m["chapter_file"]
    if not script.is_file():
        return f"{m['chapter_file']} does not exist"
    # `# 2.3 Kneser-Ney`, or `# %% 2.3 Kneser-Ney` where the sections are notebook cells (jupytext, VS Code)
    heading = re.compile(rf"^#\s*(?:%%\s*)?§?{re.escape(m['section'])}\s", re.MULTILINE)
    if not heading.search(read_text(script)):
        return (f"{m['chapter_file']} has no section heading `# {m['section']} ...` "
                f"(or `# %% {m['section']} ...`)")
    return None


def _check_in_function(source: str, region: Region) -> str | None:
    """Strip the region alone and check that the file still parses with the raise inside a function."""
    try:
        tree = ast.parse(strip(source, [region]))
    except SyntaxError as e:
        return (f"region {region.id} (lines {region.begin}-{region.end}) must hold whole statements of "
                f"one block: without its body the file is not valid Python ({e.msg}, line {e.lineno})")
    line = region.begin + 1
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and n.body[0].lineno <= line <= n.end_lineno]
    innermost = max(scopes, key=lambda n: n.lineno, default=None)
    if not isinstance(innermost, (ast.FunctionDef, ast.AsyncFunctionDef)):
        where = "a class body" if innermost else "module level"
        return f"region {region.id} is at {where}; a region must be inside a function body"
    return None


# Student copies --------------------------------------------------------------------------------------

def strip(source: str, regions: list[Region]) -> str:
    """`source` with each region's body (the lines between its markers) replaced by the stub raise."""
    lines = source.splitlines(keepends=True)
    for r in sorted(regions, key=lambda r: r.begin, reverse=True):
        newline = lines[r.begin - 1][len(lines[r.begin - 1].rstrip("\r\n")):] or "\n"
        lines[r.begin:r.end - 1] = [f'{r.indent}raise NotImplementedError("{r.stub_message}"){newline}']
    return "".join(lines)


def select(regions: list[Region], exercises: list[str] | None = None,
           chapters: list[int] | None = None) -> list[Region]:
    """The regions named by id or by chapter; all of them when neither is given."""
    if not regions:
        raise AssignmentError("there are no exercise regions in this project")
    known = {r.id: r for r in regions}
    if exercises:
        unknown = [e for e in exercises if e not in known]
        if unknown:
            raise AssignmentError(f"no exercise {unknown[0]}; the exercises are {', '.join(known)}")
        return [known[e] for e in sorted(set(exercises), key=id_key)]
    if chapters:
        have = sorted({r.chapter for r in regions})
        missing = [c for c in chapters if c not in have]
        if missing:
            raise AssignmentError(f"chapter {missing[0]} has no exercises; chapters with exercises: {have}")
        return [r for r in regions if r.chapter in chapters]
    return list(regions)


_SKIP_DIRS = {".git", ".hg", ".venv", "venv", ".ci-venv", "__pycache__", ".pytest_cache", ".hypothesis",
              "build", "dist"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".nbi", ".nbc", ".egg-info")


def project_files(root: Path) -> list[Path]:
    """The project's files, relative to root: what git would commit (tracked, plus untracked files
    that .gitignore does not exclude); outside a git work tree, every file but version control,
    virtual environments, caches and build outputs. Never .git or bytecode: both hold the solutions."""
    root = Path(root)
    try:
        proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              cwd=root, capture_output=True)
        listed = proc.stdout.decode("utf-8", "surrogateescape").split("\0") if proc.returncode == 0 else None
    except FileNotFoundError:  # no git installed
        listed = None
    if listed is not None:
        return sorted({Path(p) for p in listed if p and (root / p).is_file()})
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(_SKIP_SUFFIXES))
        files += [Path(dirpath, f).relative_to(root) for f in filenames if not f.endswith(_SKIP_SUFFIXES)]
    return sorted(files)


def student_copy(root: Path, out: Path, chosen: list[Region], force: bool = False) -> int:
    """Write the project at `root` to `out` with the chosen regions stripped; returns the file count.

    Refuses a non-empty `out` unless `force` (then files are overwritten, none deleted), and an `out`
    inside the project. The copy is written beside `out` first and moved into place."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out == root or root in out.parents:
        raise AssignmentError(f"{out} is inside the project {root}; write the student copy elsewhere")
    if out.exists() and not out.is_dir():
        raise AssignmentError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise AssignmentError(f"{out} is not empty; pass --force to write into it anyway")
    by_file: dict[Path, list[Region]] = {}
    for r in chosen:
        by_file.setdefault(r.path, []).append(r)
    files = project_files(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    try:
        shutil.copymode(root, staging)  # mkdtemp makes it private; the copy gets the project's mode
        for rel in files:
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in by_file:
                with open(root / rel, encoding="utf-8", newline="") as f:
                    source = f.read()
                with open(dst, "w", encoding="utf-8", newline="") as f:
                    f.write(strip(source, by_file[rel]))
            else:
                shutil.copy2(root / rel, dst)
        if out.exists() and any(out.iterdir()):  # --force: move file by file over what is there
            for rel in files:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, out / rel)
        else:
            if out.exists():
                out.rmdir()
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(files)


# Tests per exercise -----------------------------------------------------------------------------------

def marker_uses(root: Path) -> dict[str, list[tuple[Path, int]]]:
    """Exercise marker -> where tests use it, as (test file relative to root, line): every
    `<...>.mark.exN_M` in the code of tests/ (in code, not in strings, found through the syntax tree).
    A test file that is not valid Python is an AssignmentError naming its file and line."""
    used, broken = _marker_uses(root)
    if broken:
        raise AssignmentError("\n".join(f"{where}: not valid Python, so its markers cannot be read"
                                        for where in broken))
    return used


def _marker_uses(root: Path) -> tuple[dict[str, list[tuple[Path, int]]], list[str]]:
    """(marker_uses, the test files that do not parse, as `file:line: error`)."""
    root = Path(root)
    used: dict[str, list[tuple[Path, int]]] = {}
    broken = []
    for path in sorted((root / "tests").rglob("*.py")):
        rel = path.relative_to(root)
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError) as e:
            broken.append(f"{rel}:{getattr(e, 'lineno', None) or 1}: {getattr(e, 'msg', e)}")
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _MARK_NAME.fullmatch(node.attr)
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"):
                used.setdefault(node.attr, []).append((rel, node.lineno))
    return used, broken


def check_tests(root: Path, regions: list[Region]) -> list[str]:
    """Problems linking regions to tests: an exercise without a test marked for it, a test marker or a
    registered marker without an exercise, an exercise marker not registered in setup.cfg."""
    root = Path(root)
    used = {m: f"{where[0][0]}:{where[0][1]}" for m, where in marker_uses(root).items()}  # first use
    registered = set()
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(root / "setup.cfg", encoding="utf-8")
    for line in cfg.get("tool:pytest", "markers", fallback="").splitlines():
        name = line.split(":")[0].strip()
        if _MARK_NAME.fullmatch(name):
            registered.add(name)
    problems = []
    markers = {r.marker: r for r in regions}
    for marker, r in markers.items():
        if marker not in used:
            problems.append(f"exercise {r.id} ({r.where}) has no test marked @pytest.mark.{marker} in tests/")
        if marker not in registered:
            problems.append(f"marker {marker} of exercise {r.id} is not registered in setup.cfg "
                            f"([tool:pytest] markers)")
    problems += [f"{where}: marker {m} names no exercise region" for m, where in used.items() if m not in markers]
    problems += [f"setup.cfg registers marker {m} but there is no such exercise"
                 for m in sorted(registered - set(markers))]
    return problems


# Grading ---------------------------------------------------------------------------------------------

def pytest_collection_modifyitems(items):
    """pytest hook (this module is loaded with `-p scratchlm.assignment` when grading): record each
    test's exercise ids, from its `exN_M` markers, as JUnit properties named "exercise"."""
    for item in items:
        for mark in item.iter_markers():
            m = _MARK_NAME.fullmatch(mark.name)
            if m:
                item.user_properties.append(("exercise", f"{m[1]}.{m[2]}"))


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class

    name: str                    # "tests.test_counts.test_bigram_counts[3]", or the test module
    exercises: tuple[str, ...]   # the ids of its exN_M markers (none for a module that did not collect)
    outcome: str                 # "passed", "failed", "error" or "skipped"
    message: str                 # the failure's one-line message ("" when passed)
    details: str                 # the traceback or skip reason pytest reported


@dataclass(frozen=True)
class TestRun:
    __test__ = False

    results: list[TestResult]    # one per test, and one per test module that could not be collected
    output: str                  # pytest's output
    problem: str = ""            # why there are no results: "timed out after 3 s", a crash


def run_tests(root: Path, marker_expr: str, paths: list[str] | None = None,
              timeout: float | None = None) -> TestRun:
    """Run `python -m pytest -m marker_expr [paths]` in root, as a process of its own.

    Collection errors do not stop the run (a student's broken module costs only the tests that import
    it); each comes back as an "error" result for its module, whose message names the file:line of the
    error. A run past `timeout` seconds is killed, and a run that crashes (a segfault in a kernel) or
    cannot start leaves no report: both come back with no results and the problem said."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "scratchlm.assignment", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "--junitxml", str(junit), "-m", marker_expr, *(paths or [])]
        # pytest runs in a session of its own, so that on a timeout the whole process tree it may have
        # started (a test that runs pytest itself) is killed with it, not only pytest.
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            return TestRun([], stdout + stderr, f"timed out after {timeout:g} s")
        output = stdout + stderr
        if not junit.is_file():
            last = output.strip().splitlines()[-1:] or ["no output"]
            return TestRun([], output, f"pytest stopped without a report (exit {proc.returncode}: {last[0][:200]})")
        return TestRun(_read_junit(junit, Path(root)), output)


def _read_junit(path: Path, root: Path) -> list[TestResult]:
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        exercises = tuple(p.get("value") for p in case.iter("property") if p.get("name") == "exercise")
        outcome, message, details = "passed", "", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message, details = child.get("message", ""), (child.text or "")
                break
        name = f"{case.get('classname')}.{case.get('name')}" if case.get("classname") else case.get("name", "")
        if outcome == "error" and message == "collection failure" and not case.get("classname"):
            message = f"could not be collected: {_where_it_broke(details, root)}"
        results.append(TestResult(name, exercises, outcome, message, details))
    return results


_FILE_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')   # a SyntaxError's own location
_FRAME = re.compile(r"^(?P<file>\S+\.py):(?P<line>\d+): in ", re.MULTILINE)  # pytest's short traceback


def _where_it_broke(details: str, root: Path) -> str:
    """`file:line: error` of a collection failure, from pytest's traceback: where a SyntaxError is, or
    else the innermost frame of the error (the test module's import, or the module it imports)."""
    errors = [line[1:].strip() for line in details.splitlines() if line.startswith("E ")]
    error = next((e for e in reversed(errors) if re.match(r"[\w.]+(Error|Exception|Exit)\b", e)),
                 errors[-1] if errors else "unknown error")
    located = list(_FILE_LINE.finditer(details)) or list(_FRAME.finditer(details))
    if not located:
        return error
    file, line = located[-1]["file"], located[-1]["line"]
    try:
        file = str(Path(file).resolve().relative_to(Path(root).resolve()))
    except ValueError:  # outside the tree: keep it absolute
        pass
    return f"{file}:{line}: {error}"


@dataclass(frozen=True)
class ExerciseScore:
    region: Region
    tests: list[TestResult]      # its tests, and its test modules that could not be collected
    problem: str = ""            # why none of its tests ran: "timed out after 3 s", a crash, no tests
    output: str = ""             # pytest's output for this exercise's run

    @property
    def passed(self) -> int:
        return sum(t.outcome == "passed" for t in self.tests)

    @property
    def score(self) -> float:
        """1 point per exercise, shared equally by its tests; nothing when no test ran."""
        return round(self.passed / len(self.tests), 4) if self.tests else 0.0

    @property
    def status(self) -> str:
        """What the table shows: "3/4" tests passed, or the problem."""
        return self.problem or f"{self.passed}/{len(self.tests)}"


@dataclass(frozen=True)
class Grade:
    exercises: list[ExerciseScore]
    seconds: float

    @property
    def score(self) -> float:
        return round(sum(e.score for e in self.exercises), 4)

    @property
    def output(self) -> str:
        """pytest's output of every run (exercises that share their test files share a run)."""
        return "\n".join(dict.fromkeys(e.output for e in self.exercises if e.output))


def check_timeout(timeout: float | None) -> None:
    """AssignmentError unless timeout is None or a positive, finite number of seconds."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise AssignmentError(f"--timeout must be a positive number of seconds, got {timeout:g}")


def grade(root: Path, chosen: list[Region], timeout: float | None = None, jobs: int | None = None) -> Grade:
    """Run the chosen exercises' tests in the tree at root and score them, so that a hang or a crash
    costs only the exercise it is in.

    The exercises whose tests are in the same files run in one pytest process, on those files. When
    that process runs past `timeout` seconds (it is killed) or crashes, each of its exercises runs
    again in a process of its own: the one that hangs or crashes scores 0 ("timed out after S s"),
    the others are graded as usual. Up to `jobs` processes run at once (default: the CPU count)."""
    if not chosen:
        raise AssignmentError("no exercises to grade")
    check_timeout(timeout)
    root = Path(root)
    used, broken = _marker_uses(root)
    # A test file that does not parse may hold any exercise's tests: every run collects it, so that
    # pytest's error for it (with its file:line) is reported under every exercise.
    unparsable = {where.split(":")[0] for where in broken}
    groups: dict[tuple[str, ...], list[Region]] = {}
    for r in chosen:
        files = tuple(sorted({str(path) for path, _ in used.get(r.marker, [])} | unparsable))
        groups.setdefault(files, []).append(r)

    def run(files: tuple[str, ...], regions: list[Region]) -> list[ExerciseScore]:
        if not files:
            return [ExerciseScore(r, [], f"no test in tests/ is marked @pytest.mark.{r.marker}") for r in regions]
        result = run_tests(root, " or ".join(r.marker for r in regions), list(files), timeout=timeout)
        if result.problem and len(regions) > 1:  # find the exercise that hangs or crashes
            return [score for r in regions for score in run(files, [r])]
        return [_score(r, result) for r in regions]

    t0 = time.perf_counter()
    workers = max(1, min(len(groups), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # threads only wait for their pytest processes
        scores = {s.region.id: s for group in pool.map(run, groups, groups.values()) for s in group}
    return Grade([scores[r.id] for r in chosen], time.perf_counter() - t0)


def _score(r: Region, run: TestRun) -> ExerciseScore:
    if run.problem:
        return ExerciseScore(r, [], run.problem, run.output)
    # Its tests, and any test module that could not be collected: it may hold some of them.
    tests = [t for t in run.results if r.id in t.exercises or (t.outcome == "error" and not t.exercises)]
    return ExerciseScore(r, tests, "" if tests else f"no test marked {r.marker} was collected", run.output)


def _exercise_report(e: ExerciseScore) -> str:
    if e.problem:
        return f"{e.problem}\n\n{e.output[-2000:]}".rstrip()
    lines = []
    for t in e.tests:
        lines.append(f"{t.outcome.upper()} {t.name}" + (f": {t.message}" if t.message else ""))
        if t.outcome != "passed" and t.details:
            lines.append(t.details[-1500:].rstrip() + "\n")
    return "\n".join(lines)


def format_table(g: Grade) -> str:
    """The score table `scratchlm assignment grade` prints, failures listed under it."""
    width = max([len(e.region.title) for e in g.exercises] + [5])
    status = max([len(e.status) for e in g.exercises] + [12])
    rows = [f"{'exercise':9s} {'title':{width}s} {'tests passed':>{status}s} {'score':>6s}"]
    for e in g.exercises:
        rows.append(f"{e.region.id:9s} {e.region.title:{width}s} {e.status:>{status}s} {e.score:6.2f}")
    rows.append(f"{'total':9s} {'':{width}s} {'':{status}s} {g.score:6.2f} / {len(g.exercises)}")
    failures = []
    for e in g.exercises:
        failures += [f"  {t.outcome.upper()} [{e.region.id}] {t.name}: {t.message}"
                     for t in e.tests if t.outcome != "passed"]
        if e.problem:
            failures.append(f"  NOT RUN [{e.region.id}]: {e.problem}")
    return "\n".join(rows + (["", "not passed:"] + failures if failures else []))


def gradescope_results(g: Grade) -> dict:
    """Gradescope's results.json: one test entry per exercise, the total score, a summary line."""
    full = sum(e.score == 1.0 for e in g.exercises)
    problems = [f"{e.region.id} {e.problem}" for e in g.exercises if e.problem]
    return {
        "score": g.score,
        "execution_time": round(g.seconds, 1),
        "output": f"{full} of {len(g.exercises)} exercises passed in full"
                  + (f"; {'; '.join(problems)}" if problems else ""),
        "tests": [{"name": f"Exercise {e.region.id}: {e.region.title}",
                   "number": e.region.id,
                   "score": e.score,
                   "max_score": 1.0,
                   "status": "passed" if e.score == 1.0 else "failed",
                   "output": _exercise_report(e)} for e in g.exercises],
    }
