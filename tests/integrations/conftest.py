"""Shared fixtures for the integration tests: each vendor fake, started on a free loopback port."""

from __future__ import annotations

import sys
from pathlib import Path

# `tests.fakes` is imported by path from the repository root; `python -m pytest` puts the root on
# sys.path, a bare `pytest` may not (no `pythonpath` in the pytest config yet).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
