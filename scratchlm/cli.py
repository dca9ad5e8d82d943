"""The `scratchlm` command.

    scratchlm figures [--quick] [--chapter N ...]   run the chapter scripts, writing figures/
    scratchlm data list                             the registered data sets and where they are
    scratchlm data path NAME [FILE]                 the local path of a data file (downloads it)
    scratchlm assignment list                       the exercise regions (course assignments)
    scratchlm assignment student (--exercises 2.1,2.3 | --chapter N | --all) --out DIR [--force]
                                                    a student copy with those exercises stripped
    scratchlm assignment grade [--exercises ... | --chapter N] [--json results.json] [--root DIR]
                               [--timeout S]        run their tests and print a score table

`python -m scratchlm ...` is the same command. `figures` and `assignment` work on the project that
contains the current folder (a student copy, say), or else on the one this library was installed
from; `assignment --root DIR` names another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from scratchlm.chapter import REPO_ROOT

CHAPTERS_DIR = REPO_ROOT / "chapters"


def project_root(package: str = "scratchlm") -> Path:
    """The project containing the current folder, else the one this library was installed from."""
    from scratchlm.project import find_project

    return find_project(Path.cwd(), package) or REPO_ROOT


def chapter_scripts(root: Path = REPO_ROOT) -> dict[int, Path]:
    """{chapter number: script} for every `chapters/chNN_*.py` of the project at root."""
    chapters = Path(root) / "chapters"
    if not chapters.is_dir():
        raise SystemExit(f"error: no chapters/ folder at {chapters}; the chapter scripts live in "
                         "the source tree, so install it editable: python -m pip install -e .")
    return {int(p.name[2:4]): p for p in sorted(chapters.glob("ch[0-9][0-9]_*.py"))}


def cmd_figures(args) -> int:
    from scratchlm.project import library_warning

    root = project_root()
    scripts = chapter_scripts(root)
    wanted = args.chapter or sorted(scripts)
    unknown = [n for n in wanted if n not in scripts]
    if unknown:
        raise SystemExit(f"error: no chapter {unknown[0]}; chapters: {sorted(scripts)}")
    env = None
    if library_warning(root):
        # The chapters of another tree (a student copy): run them on that tree's own library, not on
        # the one installed, which `import scratchlm` in the script's folder would find.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        print(f"== running the chapters of {root} with its own library (PYTHONPATH={root})", flush=True)
    failed = []
    for n in wanted:
        cmd = [sys.executable, str(scripts[n])] + (["--quick"] if args.quick else [])
        if args.out:
            cmd += ["--out", str(args.out)]
        print(f"== chapter {n}: {scripts[n].name}{' --quick' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env)
        print(f"== chapter {n}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0:
            failed.append(n)
    if failed:
        print(f"failed chapters: {failed}", file=sys.stderr)
        return 1
    return 0


def cmd_data(args) -> int:
    from scratchlm import data

    if args.action == "list":
        for name, ds in data.DATASETS.items():
            print(f"{name:18s} {ds.description}")
            for filename in ds.files:
                where = data.find(name, filename)
                print(f"    {filename:28s} {where if where else '(not downloaded)'}")
        return 0
    if args.name is None:
        raise SystemExit("error: `scratchlm data path` needs a data set name; see `scratchlm data list`")
    files = [args.file] if args.file else list(data.get(args.name).files)
    for filename in files:
        print(data.path(args.name, filename))
    return 0


def cmd_assignment(args) -> int:
    from scratchlm import assignment as asg
    from scratchlm.chapter import write_json
    from scratchlm.project import library_warning

    # By default the project this command is run in (a student copy), not the library's own tree.
    root = args.root.resolve() if args.root is not None else project_root(asg.PACKAGES[0])
    try:
        if args.action == "grade":
            # Everything that can fail without the tests fails before them (they may take minutes).
            asg.check_timeout(args.timeout)
            if args.json is not None and (not args.json.parent.resolve().is_dir() or args.json.is_dir()):
                raise asg.AssignmentError(
                    f"--json {args.json}: " + (f"{args.json} is a folder; give a file name such as "
                                               f"{args.json / 'results.json'}" if args.json.is_dir() else
                                               f"the folder {args.json.parent} does not exist"))
        regions = asg.scan(root)
        if args.action == "list":
            print(f"exercises in {root}:" if regions else f"no exercise regions in {root}", file=sys.stderr)
            for r in regions:
                print(f"{r.id:6s} {r.title:44s} {str(r.path) + ':' + str(r.begin):40s} "
                      f"{r.chapter_file} §{r.section}")
            return 0
        exercises = args.exercises.split(",") if args.exercises else None
        chosen = asg.select(regions, [e.strip() for e in exercises] if exercises else None, args.chapter)
        if args.action == "student":
            n = asg.student_copy(root, args.out, chosen, force=args.force)
            print(f"wrote {n} files of {root} to {args.out} with exercises "
                  f"{', '.join(r.id for r in chosen)} stripped")
            return 0
        print(f"grading {root}", flush=True)
        problem = library_warning(root)
        if problem:
            print(f"warning: {problem} (the tests graded here run in {root} and import its own library)",
                  file=sys.stderr)
        g = asg.grade(root, chosen, timeout=args.timeout)
    except asg.AssignmentError as e:
        raise SystemExit(f"error: {e}")
    print(asg.format_table(g))
    if args.json:
        write_json(args.json, asg.gradescope_results(g))
    return 0 if g.score == len(g.exercises) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchlm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("figures", help="reproduce the book's figures by running the chapters")
    p.add_argument("--quick", action="store_true", help="smoke run (seconds per chapter), into figures/quick/")
    p.add_argument("--chapter", type=int, action="append", metavar="N", help="only chapter N (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="write figures here instead")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("data", help="the data set registry")
    p.add_argument("action", choices=["list", "path"])
    p.add_argument("name", nargs="?")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("assignment", help="course assignments: exercise regions, student copies, grading",
                       description='See the README\'s "For teachers" section and the docstring of '
                                   'scratchlm/assignment.py.')
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="exercise id, title, file:line, chapter section")
    student = actions.add_parser("student", help="write a student copy with the chosen exercises stripped")
    grade = actions.add_parser("grade", help="run the chosen exercises' tests and print a score table "
                                             "(exit 0 only with full marks)")
    for q in (student, grade):
        which = q.add_mutually_exclusive_group(required=q is student)
        which.add_argument("--exercises", metavar="IDS", help="comma-separated ids, e.g. 2.1,2.3")
        which.add_argument("--chapter", type=int, action="append", metavar="N",
                           help="every exercise of chapter N (repeatable)")
        if q is student:
            which.add_argument("--all", action="store_true", help="every exercise")
    student.add_argument("--out", type=Path, required=True, help="folder for the copy (empty or new)")
    student.add_argument("--force", action="store_true", help="write into a non-empty --out")
    grade.add_argument("--json", type=Path, metavar="PATH", help="also write Gradescope's results.json here")
    grade.add_argument("--timeout", type=float, metavar="S",
                       help="stop an exercise's tests after S seconds (it scores 0, \"timed out\")")
    for q in actions.choices.values():
        q.add_argument("--root", type=Path, default=None,
                       help="the project tree (default: the one containing the current folder, "
                            "else the one scratchlm is installed from)")
    p.set_defaults(func=cmd_assignment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:  # bad names, missing data, offline: the message says it all
        print(f"scratchlm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
