"""`argus up --demo` (or `argus demo`) stopped by a signal during the demo stops everything it
started: the embedded dev server, the gateway process and the sandbox (nothing left running, and
the ports free for the next start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from argus.workers.devserver import free_port, port_open

from .stackkit import e2e_config, write_config

pytestmark = pytest.mark.e2e


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"argus up exited early:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{entry.name}: {cmd}")
    return found


@pytest.mark.parametrize(
    ("command", "sig"),
    [(["up", "--demo"], signal.SIGTERM), (["up", "--demo"], signal.SIGINT), (["demo"], signal.SIGTERM)],
)
def test_a_signal_during_the_demo_stops_everything_argus_started(
    tmp_path: Path, command: list[str], sig: signal.Signals
) -> None:
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    cfg = e2e_config(tmp_path, sandbox_url)
    cfg["sandbox"] = {"url": sandbox_url, "enabled": True}
    path = write_config(tmp_path, cfg)
    log = tmp_path / "up.log"
    state = str(tmp_path / "state")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "argus"), *command, "--config", str(path)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "ARGUS_LINK_SECRET": "argus-up-signal-test-secret-0123"},
        start_new_session=True,
    )
    try:
        _wait_for(log, "ARGUS demo:", proc, timeout=180)
        time.sleep(2)  # into the demo
        assert "Press Ctrl-C to stop." not in log.read_text(errors="replace"), "the demo ended already"
        proc.send_signal(sig)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    # Everything it started is gone: the dev server and the gateway (both name the state dir in
    # their command lines) and the sandbox's port.
    deadline = time.monotonic() + 15
    while _processes_with(state) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_with(state)
    for entry in left:  # a failing run must not leave a dev server behind for the next tests
        os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
    assert "ARGUS stopped." in text, text[-3000:]
    assert code == 130, text[-3000:]
    assert left == []
    assert not port_open("127.0.0.1", cfg["temporal"]["dev_server_port"])
    assert not port_open("127.0.0.1", cfg["gateway"]["port"])
    assert not port_open("127.0.0.1", int(sandbox_url.rsplit(":", 1)[1]))
