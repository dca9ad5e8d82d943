"""Which project tree a command works on, and whether the library Python imports is that tree's.

A student copy (`scratchlm assignment student`, README "For teachers") is a whole project: its own
`scratchlm/` package, chapters and tests. But `import scratchlm` finds whichever tree was installed
(`pip install -e`), which may be the teacher's reference, not the copy. Then the chapter scripts
run in the copy execute the reference solutions, and a student sees full marks for work not done.
So commands work on the project that contains the current folder, say which one, and warn when the
imported library lives somewhere else.

A project root is the nearest folder, walking up from a start folder, that holds `<package>/__init__.py`
and a `pyproject.toml` or `setup.cfg` naming the package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = "scratchlm"


def find_project(start: Path, package: str = PACKAGE) -> Path | None:
    """The root of the project containing `start` (a folder or file), or None when there is none."""
    start = Path(start).resolve()
    for folder in [start, *start.parents]:
        if (folder / package / "__init__.py").is_file() and any(
                _names(folder / config, package) for config in ("pyproject.toml", "setup.cfg")):
            return folder
    return None


def _names(config: Path, package: str) -> bool:
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:  # absent or unreadable: not this project's configuration
        return False
    return re.search(rf"(?<![\w.-]){re.escape(package)}(?![\w-])", text) is not None


def imported_library() -> Path:
    """The folder of the `scratchlm` package this Python process runs."""
    import scratchlm

    return Path(scratchlm.__file__).resolve().parent


def library_warning(tree: Path) -> str | None:
    """Why code run from `tree` would not run `tree`'s own library, or None when it would."""
    library, tree = imported_library(), Path(tree).resolve()
    if tree in library.parents:
        return None
    return (f"the scratchlm library imported here is {library}, not the one in {tree}: chapter scripts "
            f"run from {tree} use {library}. To use {tree}'s own library, install it: "
            f"python -m pip install -e {tree}")


def warn_if_library_elsewhere(path: Path) -> None:
    """Print a warning to stderr when `path` (a chapter script) is in a project whose library is not
    the one imported; nothing when it is, or when `path` is in no project."""
    tree = find_project(Path(path))
    problem = tree and library_warning(tree)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
