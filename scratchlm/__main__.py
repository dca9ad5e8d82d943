"""`python -m scratchlm ...`: the `scratchlm` command (scratchlm/cli.py), for when the console script
is not on PATH (a virtual environment not activated, a notebook's kernel)."""

import sys

from scratchlm.cli import main

if __name__ == "__main__":  # not when a tool imports every module of the package
    sys.exit(main())
