"""The embedded Temporal stack: the dev server from the `temporal` binary on a SQLite file.

It registers ARGUS's namespace and search attributes on every start (idempotent) and raises
the namespace's retention to the configured value, since the dev server keeps closed
workflows for only a day by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from argus.workflows import search_attributes as sa

from .binaries import find_binary

_SA_TYPES = {"KEYWORD": "Keyword", "BOOL": "Bool", "INT": "Int", "TEXT": "Text", "DATETIME": "Datetime"}


def search_attribute_flags() -> list[str]:
    flags = []
    for key in sa.ALL:
        kind = _SA_TYPES[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags


def port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


START_ATTEMPTS = 3  # launches of the dev server when one of the ports it picks itself was taken


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevServer:
    def __init__(
        self,
        state_dir: Path,
        namespace: str,
        port: int = 7233,
        ui_port: int | None = 8233,
        retention: timedelta = timedelta(days=30),
        db_file: Path | None = None,
        extra_args: list[str] | None = None,
        ui_codec_endpoint: str | None = None,
        sqlite_synchronous: str = "normal",
    ) -> None:
        self.state_dir = state_dir
        self.namespace = namespace
        self.port = port
        self.ui_port = ui_port
        self.retention = retention
        self.db_file = db_file or state_dir / "temporal.db"
        self.extra_args = extra_args or []
        self.sqlite_synchronous = sqlite_synchronous
        # With payload encryption on, the Web UI decodes through the gateway's codec endpoint.
        self.ui_codec_endpoint = ui_codec_endpoint
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir / "temporal.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://localhost:{self.ui_port}" if self.ui_port else None

    def command(self) -> list[str]:
        cmd = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-n",
            self.namespace,
            "--log-level",
            "warn",
            # WAL: one sequential append per commit instead of a rollback journal. Measured on 2
            # cores, 50 new incidents at 20/s: alert -> incident started p50 6.5 s / p99 28 s with
            # the default journal, 0.26 s / 0.58 s with WAL + synchronous=normal (docs/monitoring.md).
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            f"synchronous={self.sqlite_synchronous}",
            *search_attribute_flags(),
            # The dev server re-reads its search attributes from SQLite on every use (so that one
            # added at run time works at once). ARGUS's are all created by the flags above, before
            # the first request: with the cache on, the 20 new incidents a second of the ingest
            # bench no longer cost ~190 GetCurrentClusterMetadata reads a second, a third of the
            # database's busy time (docs/monitoring.md).
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=false",
            *self.extra_args,
        ]
        if self.ui_port:
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
            if self.ui_codec_endpoint:
                cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        else:
            cmd.append("--headless")
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: another Temporal server? "
                f"Use `argus up --temporal 127.0.0.1:{self.port}` to use it instead"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        for attempt in range(1, START_ATTEMPTS + 1):
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            if self._launched(deadline):
                self.set_retention()
                return
            # The server picks its other ports (HTTP API, metrics) itself, and another process may
            # take one between its pick and its bind: launched again, it picks another.
            said = self.log_path.read_bytes()[logged:]
            if b"address already in use" not in said or attempt == START_ATTEMPTS:
                raise RuntimeError(
                    f"the Temporal dev server exited with {self.proc.returncode if self.proc else '?'};"
                    f" see {self.log_path}"
                )

    def _launched(self, deadline: float) -> bool:
        """Start the server and wait for its port; False if it exited first."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Temporal dev server did not open port {self.port} in time")
            time.sleep(0.1)
        return True

    def set_retention(self) -> None:
        days = max(1, int(self.retention.total_seconds() // 86400))
        cmd = [
            find_binary("temporal"),
            "operator",
            "namespace",
            "update",
            "-n",
            self.namespace,
            "--retention",
            f"{days * 24}h",
            "--address",
            self.address,
        ]
        for _ in range(50):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                return
            time.sleep(0.2)  # the namespace may not be registered yet right after start
        raise RuntimeError(f"could not set retention on namespace {self.namespace}: {out.stderr.strip()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, for durability tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def wait_for_namespace(address: str, namespace: str, timeout: float = 30.0) -> None:
    from .client import connect

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await connect(address, namespace)
            await client.count_workflows()
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.3)
    raise RuntimeError(f"Temporal at {address} namespace {namespace} not ready: {last}")
