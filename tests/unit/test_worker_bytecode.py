"""The worker writes the bytecode cache the sandbox's per-run imports need (PYTHONDONTWRITEBYTECODE)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from argus.workers.worker import PACKAGE_DIR, ensure_bytecode


def _cached(path: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(path)))


def test_without_the_interpreters_cache_the_worker_compiles_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "workflows").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    module = pkg / "workflows" / "incident.py"
    module.write_text("class IncidentWorkflow:\n    pass\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)

    ensure_bytecode(pkg)

    assert _cached(module).is_file()
    assert _cached(pkg / "__init__.py").is_file()


def test_an_interpreter_that_writes_its_cache_is_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text("X = 1\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)

    ensure_bytecode(module.parent)

    assert not _cached(module).exists()


def test_the_package_compiled_is_argus() -> None:
    assert (PACKAGE_DIR / "workflows" / "incident.py").is_file()
