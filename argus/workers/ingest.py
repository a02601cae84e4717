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
# (scope, sender) -> (alerts the workflow holds unrouted, the sender's highest batch seq it received)
ProbeBacklog = Callable[[str, str], Awaitable[tuple[int, int]]]

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


BACKLOG = Histogram(
    "argus_ingest_scope_backlog_alerts",
    "Alerts a scope had accepted but not yet routed, as last probed",
    buckets=(0, 1000, 5000, 10000, 25000, 50000, 100000, 250000),
)


class ScopeBehind(Exception):
    """The scope's workflow is this far behind: refuse new alerts until it catches up."""

    def __init__(self, scope: str, backlog: int, limit: int) -> None:
        super().__init__(f"scope {scope!r} has {backlog} alerts not yet routed (limit {limit})")
        self.scope, self.backlog, self.limit = scope, backlog, limit


@dataclass
class _Pending:
    alerts: list[dict] = field(default_factory=list)  # compact records
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class IngestCoalescer:
    def __init__(
        self,
        send: SendBatch,
        flush_interval: float = 0.01,
        max_batch: int = 1000,
        max_in_flight: int = 16,
        probe: ProbeBacklog | None = None,
        max_backlog: int | None = None,
        probe_every: float = 1.0,
    ) -> None:
        self.send = send
        # Backpressure: a scope whose workflow routes slower than alerts arrive builds a queue
        # that must travel through continue-as-new in one payload; past a point it no longer
        # fits and the scope wedges. So the backlog is probed (at most every `probe_every`
        # seconds, after a flush) and new alerts are refused while it is over `max_backlog`:
        # senders retry, and what was acknowledged stays durable. The backlog is what the
        # workflow holds unrouted plus what this gateway had acknowledged beyond the last batch
        # the workflow received (signals Temporal holds while the workflow is busy): every batch
        # carries this gateway's running count (`seq`). A scope too busy (or a worker too down)
        # to answer is taken to be falling behind: the figure grows with every acknowledgement.
        self.probe = probe
        self.max_backlog = max_backlog
        self.probe_every = probe_every
        self.sender = uuid.uuid4().hex[:12]
        self._seq: dict[str, int] = {}  # alerts batched per scope so far (the next batch's seq)
        self._acked_seq: dict[str, int] = {}  # highest seq Temporal acknowledged
        self._queued: dict[str, int] = {}  # from the last answer
        self._received_seq: dict[str, int] = {}  # from the last answer
        self._probed_at: dict[str, float] = {}
        self._probing: set[str] = set()
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
        backlog = self.backlog(scope)
        if self.max_backlog is not None and backlog >= self.max_backlog:
            self._probe_soon(scope)
            raise ScopeBehind(scope, backlog, self.max_backlog)
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
        seq = self._seq[scope] = self._seq.get(scope, 0) + len(p.alerts)
        batch = CompactBatch.of(uuid.uuid4().hex, p.alerts, sender=self.sender, seq=seq)
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
        self._acked_seq[scope] = max(self._acked_seq.get(scope, 0), seq)
        for w in p.waiters:
            if not w.done():
                w.set_result(None)
        self._probe_soon(scope)

    def backlog(self, scope: str) -> int:
        """Alerts of this gateway's the scope has not routed: held unrouted by the workflow at
        the last answer, plus those acknowledged beyond what it had received then."""
        beyond = self._acked_seq.get(scope, 0) - self._received_seq.get(scope, 0)
        return self._queued.get(scope, 0) + max(0, beyond)

    def _probe_soon(self, scope: str) -> None:
        if self.probe is None or self.max_backlog is None or scope in self._probing:
            return
        if time.monotonic() - self._probed_at.get(scope, float("-inf")) < self.probe_every:
            return
        self._probing.add(scope)
        task = asyncio.create_task(self._probe(scope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self, scope: str) -> None:
        assert self.probe is not None
        try:
            queued, received = await self.probe(scope, self.sender)
        except Exception:  # no answer (worker busy or down): the figure goes on growing
            pass
        else:
            self._queued[scope], self._received_seq[scope] = queued, received
            BACKLOG.observe(self.backlog(scope))
        finally:
            self._probed_at[scope] = time.monotonic()
            self._probing.discard(scope)

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
