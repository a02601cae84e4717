"""Coalesces concurrent alert posts into batched signals.

A request's alerts join the batch being gathered; the batch goes to the scope's
MonitoringWorkflow as one signal-with-start, and every request in it is answered only after
Temporal has persisted that signal. So a 2xx means durable, and ingest costs one Temporal
round trip per flush, not per alert or per request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from argus.models.alert import CompactBatch

SendBatch = Callable[[str, CompactBatch], Awaitable[None]]

FLUSH_SECONDS = Histogram(
    "argus_ingest_flush_seconds",
    "Time to persist one coalesced batch in Temporal",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FLUSH_SIZE = Histogram(
    "argus_ingest_batch_alerts",
    "Alerts per coalesced batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
FLUSH_FAILURES = Counter("argus_ingest_flush_failures_total", "Batches Temporal did not accept")


@dataclass
class _Pending:
    alerts: list[dict] = field(default_factory=list)  # compact records
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class IngestCoalescer:
    def __init__(
        self, send: SendBatch, flush_interval: float = 0.01, max_batch: int = 1000, max_in_flight: int = 16
    ) -> None:
        self.send = send
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="ingest-coalescer")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._runner:
            await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, scope: str, alerts: list[dict]) -> None:
        """Returns once the alerts are durable in Temporal; raises if they could not be."""
        if self._closing:
            raise RuntimeError("the gateway is shutting down")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        p = self._pending.setdefault(scope, _Pending())
        p.alerts.extend(alerts)
        p.waiters.append(fut)
        if len(p.alerts) >= self.max_batch:
            self._flush_scope(scope)
        else:
            self._wake.set()
        await fut

    def _flush_scope(self, scope: str) -> None:
        p = self._pending.pop(scope, None)
        if p is None or not p.waiters:
            return
        task = asyncio.create_task(self._send(scope, p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, scope: str, p: _Pending) -> None:
        batch = CompactBatch.of(uuid.uuid4().hex, p.alerts)
        started = time.perf_counter()
        async with self._in_flight:
            try:
                await self.send(scope, batch)
            except BaseException as exc:
                FLUSH_FAILURES.inc()
                for w in p.waiters:
                    if not w.done():
                        w.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                return
        FLUSH_SECONDS.observe(time.perf_counter() - started)
        FLUSH_SIZE.observe(len(p.alerts))
        for w in p.waiters:
            if not w.done():
                w.set_result(None)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                # Let concurrent requests join this batch before it leaves.
                await asyncio.sleep(self.flush_interval)
            for scope in list(self._pending):
                self._flush_scope(scope)
            if self._closing and not self._pending:
                return
