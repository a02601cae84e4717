"""The gateway's audit log writer: every state-changing request recorded, off the request path.

Writing one SQLite transaction per request in the request path cost the gateway a fifth of its
time under the alert-ingest benchmark. Here a request only appends its entry to a bounded
in-memory queue; one background task writes what has queued up in one transaction, every
`interval` (200 ms) or as soon as `max_batch` entries wait, and once more on shutdown.

Trade-offs, on purpose:
* Nothing is dropped while the process lives. When the queue is full (`capacity`) a request
  waits for the next flush instead of losing its entry: back-pressure, not loss.
* A crash (SIGKILL, power) loses the entries of the last flush interval, at most ~200 ms of
  requests. The previous, synchronous design could already lose the entry of a request that
  had been answered when the process died before its write; this widens that window from one
  request to one interval. A clean shutdown (the gateway's lifespan) flushes everything.
* Order is kept: entries are written in the order their requests finished, one flush at a
  time, so the log's ids follow that order.
* A failed write is logged with every entry it held (as the synchronous design did), so the
  record survives in the process log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from argus.models.security import AuditEntry

log = logging.getLogger("argus.auth")

Write = Callable[[list[AuditEntry]], None]


class AuditLog:
    def __init__(
        self, write: Write, interval: float = 0.2, max_batch: int = 256, capacity: int = 10_000
    ) -> None:
        if interval <= 0 or max_batch < 1 or capacity < max_batch:
            raise ValueError("audit log: need interval > 0 and 1 <= max_batch <= capacity")
        self._write = write
        self.interval = interval
        self.max_batch = max_batch
        self.capacity = capacity
        self._pending: deque[AuditEntry] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0  # entries written since start (for tests and /metrics-minded people)

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer on the running loop (also done by the first `put`)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._closed = False
        # Made here, not in __init__: they belong to the loop that runs the writer.
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._flushing = asyncio.Lock()
        if self._pending:
            self._has_items.set()
        self._task = self._loop.create_task(self._run(), name="audit-log-writer")

    async def close(self) -> None:
        """Write everything still queued, then stop the writer."""
        self._closed = True
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            self._has_items.set()
            self._full.set()  # no waiting out the interval: write now and stop
            await task  # entries queued meanwhile are written by it too, in order
        self._task = None
        if self._pending:  # never started, or closed from another loop than the writer's
            batch = list(self._pending)
            self._pending.clear()
            await asyncio.to_thread(self._write_batch, batch)

    # --- the request path ---------------------------------------------------------------------
    async def put(self, entry: AuditEntry) -> None:
        """Queue one entry; waits only when `capacity` entries are already waiting."""
        if self._closed and self._task is None:
            await asyncio.to_thread(self._write_batch, [entry])  # after shutdown: still recorded
            return
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self.start()
        elif loop is not self._loop:  # a second event loop (tests): no shared queue, write now
            await asyncio.to_thread(self._write_batch, [entry])
            return
        while len(self._pending) >= self.capacity:
            self._full.set()
            self._space.clear()
            await self._space.wait()
        self._pending.append(entry)
        self._has_items.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- writing ------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write everything queued now, in one transaction; returns how many entries."""
        if self._task is None and self._loop is None:
            self.start()
        async with self._flushing:  # one flush at a time keeps the order
            if not self._pending:
                return 0
            batch = list(self._pending)
            self._pending.clear()
            self._has_items.clear()
            self._full.clear()
            self._space.set()
            await asyncio.to_thread(self._write_batch, batch)
            return len(batch)

    def _write_batch(self, batch: list[AuditEntry]) -> None:
        try:
            self._write(batch)
            self.written += len(batch)
        except Exception:  # the actions already happened; say loudly that their records did not
            log.exception("audit write failed; %d record(s) lost:", len(batch))
            for entry in batch:
                log.error("audit record lost: %s", entry.model_dump_json())

    async def _run(self) -> None:
        while True:
            await self._has_items.wait()
            if not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.interval)
            try:
                await self.flush()
            except Exception:  # never let the writer die: the next round tries again
                log.exception("audit log writer round failed")
            if self._closed and not self._pending:
                return
