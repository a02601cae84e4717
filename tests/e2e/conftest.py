"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import pytest

from argus.sandbox.server import start_sandbox


@pytest.fixture
def sandbox(tmp_path):
    """The sandbox (the simulated system under watch) on a free port, with 5 minutes of past."""
    server = start_sandbox(port=0, warmup_s=300, log_file=tmp_path / "sandbox.log")
    yield server
    server.stop()
