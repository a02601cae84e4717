"""The world brought to life: a lock, a real-time clock, the log file and the change feed to ARGUS.

Everything that touches the outside (files, HTTP, wall time) lives here so that `world.py` stays pure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from .logs import LogGenerator
from .records import ChangeEvent, Snapshot
from .world import World

log = logging.getLogger("argus.sandbox")

MAX_CATCH_UP_TICKS = 100  # after a long stall (suspended laptop) skip ahead rather than replay hours


class ChangeForwarder:
    """Fire-and-forget POSTs of change events to ARGUS's gateway, on a thread of its own so neither
    the clock nor an HTTP handler waits for a slow or absent gateway."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.sent: list[dict[str, Any]] = []
        self.failed: list[tuple[dict[str, Any], str]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sandbox-changes", daemon=True)
        self._thread.start()

    def send(self, change: ChangeEvent) -> None:
        self._queue.put(change.to_dict())

    def close(self, timeout_s: float = 3.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while (body := self._queue.get()) is not None:
                try:
                    response = client.post(self.url, json=body)
                    response.raise_for_status()
                    self.sent.append(body)
                except httpx.HTTPError as exc:
                    self.failed.append((body, str(exc)))
                    log.warning("could not forward change %s to %s: %s", body, self.url, exc)


class SandboxRuntime:
    def __init__(
        self,
        world: World,
        *,
        speed: float = 1.0,
        log_file: str | Path | None = None,
        changes_url: str | None = None,
        keep_logs: int = 5000,
        keep_history_s: float = 1800.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.world = world
        self.speed = speed
        # Re-entrant: an HTTP handler holding it may trigger a step that takes it again.
        self.lock = threading.RLock()
        self.recent_logs: deque[dict[str, Any]] = deque(maxlen=keep_logs)
        # The recent past (warm-up included), so a fresh metrics store can be given a baseline.
        self.recent: deque[Snapshot] = deque(maxlen=max(1, int(keep_history_s / world.tick_s)))
        self._logs = LogGenerator(world.topology, world.seed)
        self.log_path = Path(log_file) if log_file else None
        self._log_fh = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = self.log_path.open("a", encoding="utf-8")
        self.forwarder = ChangeForwarder(changes_url) if changes_url else None
        # Remediation requests as they arrived ((action, key) per POST), and a test hook that makes
        # the next action answer late after it has been applied: a reply lost in a crash.
        self.action_requests: list[tuple[str, str]] = []
        self._hold_next: list[float] = []

    def hold_next_action(self, seconds: float) -> None:
        """Apply the next remediation action at once but answer it only after `seconds`."""
        with self.lock:
            self._hold_next.append(seconds)

    def after_action(self, action: str, key: str) -> None:
        """Called by the HTTP handler once an action is applied, outside the world lock."""
        with self.lock:
            self.action_requests.append((action, key))
            hold = self._hold_next.pop(0) if self._hold_next else 0.0
        if hold:
            time.sleep(hold)

    @property
    def tick_s(self) -> float:
        return self.world.tick_s

    def step(self) -> Snapshot:
        with self.lock:
            snap = self.world.step()
            self.recent.append(snap)
            self._write_logs(self._logs.records(snap, self.world.tick_s))
            self.forward_changes()
            return snap

    def history(self, seconds: float) -> list[Snapshot]:
        """Snapshots of the last `seconds` of simulated time (at most what is kept)."""
        with self.lock:
            if not self.recent:
                return []
            since = self.recent[-1].time - seconds
            return [s for s in self.recent if s.time > since]

    def advance(self, seconds: float) -> Snapshot:
        """Run `seconds` of simulated time at once (warm-up, or tests that do not wait for the clock)."""
        with self.lock:
            for _ in range(max(0, math.ceil(seconds / self.world.tick_s - 1e-9))):
                self.step()
            return self.world.latest

    def forward_changes(self) -> None:
        with self.lock:
            changes = self.world.drain_changes()
        if self.forwarder is not None:
            for change in changes:
                self.forwarder.send(change)

    async def run_clock(self) -> None:
        """Advance one tick every tick_s / speed real seconds until cancelled."""
        interval = self.world.tick_s / self.speed
        next_at = time.monotonic() + interval
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            due = 1 + int(max(0.0, time.monotonic() - next_at) / interval)
            try:
                for _ in range(min(due, MAX_CATCH_UP_TICKS)):
                    self.step()
            except Exception:
                # A dead clock would freeze every metric while /healthz still says ok: keep ticking.
                log.exception("sandbox tick failed")
            next_at += due * interval

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
        with self.lock:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None

    def _write_logs(self, records: list[dict[str, Any]]) -> None:
        self.recent_logs.extend(records)
        if self._log_fh is not None and records:
            self._log_fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
            self._log_fh.flush()
