"""`livegate demo` and its sample app."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Where the demo keeps its database, server key and sample registration, relative to the
# directory it runs in (the CLI points at it with LIVEGATE_DATA_DIR).
DEMO_DIR = Path(".livegate-demo")


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cli_invocation() -> str:
    """The running `livegate` as the user can type it again: `livegate` when that is on
    PATH, else its path (`.venv/bin/livegate` under `make demo`)."""
    argv0 = Path(sys.argv[0])
    found = shutil.which("livegate")
    if argv0.name != "livegate" or (found and Path(found).resolve() == argv0.resolve()):
        return "livegate"
    return shown_path(argv0.absolute())
