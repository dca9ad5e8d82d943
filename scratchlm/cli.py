"""The `scratchlm` command.

    scratchlm figures [--quick] [--chapter N ...]   run the chapter scripts, writing figures/
    scratchlm data list                             the registered data sets and where they are
    scratchlm data path NAME [FILE]                 the local path of a data file (downloads it)
    scratchlm assignment list                       the exercise regions (course assignments)
    scratchlm assignment student (--exercises 2.1,2.3 | --chapter N | --all) --out DIR [--force]
                                                    a student copy with those exercises stripped
    scratchlm assignment grade [--exercises ... | --chapter N] [--json results.json] [--root DIR]
                                                    run their tests and print a score table
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from scratchlm.chapter import REPO_ROOT

CHAPTERS_DIR = REPO_ROOT / "chapters"


def chapter_scripts() -> dict[int, Path]:
    """{chapter number: script} for every `chapters/chNN_*.py`."""
    if not CHAPTERS_DIR.is_dir():
        raise SystemExit(f"error: no chapters/ folder at {CHAPTERS_DIR}; the chapter scripts live in "
                         "the source tree, so install it editable: python -m pip install -e .")
    return {int(p.name[2:4]): p for p in sorted(CHAPTERS_DIR.glob("ch[0-9][0-9]_*.py"))}


def cmd_figures(args) -> int:
    scripts = chapter_scripts()
    wanted = args.chapter or sorted(scripts)
    unknown = [n for n in wanted if n not in scripts]
    if unknown:
        raise SystemExit(f"error: no chapter {unknown[0]}; chapters: {sorted(scripts)}")
    failed = []
    for n in wanted:
        cmd = [sys.executable, str(scripts[n])] + (["--quick"] if args.quick else [])
        if args.out:
            cmd += ["--out", str(args.out)]
        print(f"== chapter {n}: {scripts[n].name}{' --quick' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
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

    root = args.root.resolve()
    try:
        regions = asg.scan(root)
        if args.action == "list":
            if not regions:
                print(f"no exercise regions in {root}")
            for r in regions:
                print(f"{r.id:6s} {r.title:44s} {str(r.path) + ':' + str(r.begin):40s} "
                      f"{r.chapter_file} §{r.section}")
            return 0
        exercises = args.exercises.split(",") if args.exercises else None
        chosen = asg.select(regions, [e.strip() for e in exercises] if exercises else None, args.chapter)
        if args.action == "student":
            n = asg.student_copy(root, args.out, chosen, force=args.force)
            print(f"wrote {n} files to {args.out} with exercises {', '.join(r.id for r in chosen)} stripped")
            return 0
        g = asg.grade(root, chosen, timeout=args.timeout)
    except (asg.AssignmentError, asg.GradingError) as e:
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
                       description="See docs/teachers.md and the docstring of scratchlm/assignment.py.")
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
    grade.add_argument("--timeout", type=float, metavar="S", help="stop the tests after S seconds")
    for q in actions.choices.values():
        q.add_argument("--root", type=Path, default=REPO_ROOT,
                       help="the project tree (default: the one scratchlm runs from)")
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
