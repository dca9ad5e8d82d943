"""Plumbing shared by the chapter scripts in `chapters/`: their flags and their results JSON.

Every chapter takes the same flags:

    --quick       a smoke run that takes seconds (tests and CI use it)
    --out DIR     where figures and JSON go; default `figures/` for a full run and
                  `figures/quick/` for a quick one, so a smoke run never overwrites the
                  committed figures
    --seed N      the random seed (default 0); same seed -> same numbers

Each numbered section of a chapter starts a cell, `# %% 6.1 one head of causal self-attention`
(the "percent" format of Jupytext and VS Code), so a script opens as a notebook and runs cell by
cell while staying a plain script. A notebook kernel's command line is the kernel's own, not the
chapter's, so there the flags come from the environment variable SCRATCHLM_CHAPTER_ARGS instead
(e.g. SCRATCHLM_CHAPTER_ARGS="--quick").
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from scratchlm.fileio import write_json
from scratchlm.project import warn_if_library_elsewhere
from scratchlm.rng import manual_seed

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = REPO_ROOT / "figures"


@dataclass(frozen=True)
class ChapterRun:
    quick: bool
    out: Path
    seed: int


def parse_args(description: str | None, argv: list[str] | None = None) -> ChapterRun:
    """Parse the common chapter flags, seed the library, and create the output folder."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run that takes seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for figures and JSON (default: figures/, or figures/quick/ with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    if argv is None and "ipykernel" in sys.modules:  # run as a notebook: sys.argv is the kernel's
        argv = shlex.split(os.environ.get("SCRATCHLM_CHAPTER_ARGS", ""))
    elif argv is None:  # run as a script: warn if it imports another tree's scratchlm (a student copy's
        warn_if_library_elsewhere(Path(sys.argv[0]))  # chapter running the installed reference library)
    args = parser.parse_args(argv)
    out = args.out or (FIGURES_DIR / "quick" if args.quick else FIGURES_DIR)
    out.mkdir(parents=True, exist_ok=True)
    manual_seed(args.seed)
    return ChapterRun(quick=args.quick, out=out, seed=args.seed)


def write_results(run: ChapterRun, name: str, results: dict) -> Path:
    """Save the numbers behind a chapter's figures as `<out>/<name>.json` (e.g. ch03_results)."""
    results = {"quick": run.quick, "seed": run.seed, **results}
    return write_json(run.out / f"{name}.json", results)
