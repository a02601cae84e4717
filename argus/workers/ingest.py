"""Coalesces concurrent alert posts into batched signals.

A request's alerts join the batch being gathered; the batch goes to the scope's
MonitoringWorkflow as one signal-with-start, and every request in it is answered only after
Temporal has persisted that signal. So a 2xx means durable, and ingest costs one Temporal
round trip per flush, not per alert or per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from argus.models.agents import FingerprintReport
from argus.models.alert import CompactBatch

SendBatch = Callable[[str, CompactBatch], Awaitable[None]]
# (scope, sender) -> the scope's answer: alerts it holds unrouted, the sender's highest batch seq
# it received, and whether it is about to continue as new
ProbeBacklog = Callable[[str, str], Awaitable[FingerprintReport]]

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
HOLDS = Counter(
    "argus_ingest_handover_holds_total", "Times batches for a scope were held while its run continued as new"
)
FLUSH_FAILURES = Counter("argus_ingest_flush_failures_total", "Batches Temporal did not accept")


BACKLOG = Histogram(
    "argus_ingest_scope_backlog_alerts",
    "Alerts a scope had accepted but not yet routed, as last probed",
    buckets=(0, 1000, 5000, 10000, 25000, 50000, 100000, 250000),
)


# Temporal refuses a payload over 2 MiB (and the SDK warns past 512 KiB): a coalesced batch
# whose compressed data would pass MAX_SIGNAL_BYTES goes as several signals. One alert may be
# at most MAX_ALERT_BYTES as JSON (the gateway refuses larger ones), so it always fits one.
MAX_SIGNAL_BYTES = 500_000
MAX_ALERT_BYTES = 350_000


class AlertTooLarge(ValueError):
    """An alert that does not fit one signal even alone."""


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
        handover_probe_every: float = 0.05,
        max_hold: float = 2.0,
        max_signal_bytes: int = MAX_SIGNAL_BYTES,
    ) -> None:
        self.send = send
        self.max_signal_bytes = max_signal_bytes
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
        # Hand-overs: a scope's run continues as new when Temporal suggests it, and the server
        # refuses that if a batch arrives during it (the SDK then replays the whole run, seconds
        # of stall). A scope about to hand over is probed every `handover_probe_every`; one that
        # says it is handing over gets no batch until its next run answers, or `max_hold` passed
        # (what was acknowledged stays durable either way; requests wait meanwhile).
        self.handover_probe_every = handover_probe_every
        self.max_hold = max_hold
        self._soon: set[str] = set()  # scopes that said a hand-over is near
        self._hold_until: dict[str, float] = {}  # scope -> monotonic time the hold ends
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

    def held(self, scope: str) -> bool:
        until = self._hold_until.get(scope)
        if until is None or self._closing:
            return False
        if time.monotonic() >= until:
            del self._hold_until[scope]
            return False
        return True

    def _flush_scope(self, scope: str) -> None:
        if self.held(scope):
            return
        p = self._pending.pop(scope, None)
        if p is None or not p.waiters:
            return
        task = asyncio.create_task(self._send(scope, p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, scope: str, p: _Pending) -> None:
        seq = self._seq[scope] = self._seq.get(scope, 0) + len(p.alerts)
        started = time.perf_counter()
        async with self._in_flight:
            try:
                # Built in here: a batch that cannot be built (fingerprints are computed now)
                # fails its requests like a failed send, instead of leaving them waiting.
                for batch in self._signals(p.alerts, seq):
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

    def _signals(self, records: list[dict], seq: int) -> list[CompactBatch]:
        """The batch as signals Temporal takes: one, or halves of it (and halves of those) while
        a part's data is over `max_signal_bytes`. Each part has its own id and the running count
        up to its last alert; all are sent, in order, before any request is answered."""
        parts: list[CompactBatch] = []
        first = seq - len(records)

        def build(lo: int, hi: int) -> None:
            batch = CompactBatch.of(uuid.uuid4().hex, records[lo:hi], sender=self.sender, seq=first + hi)
            if len(batch.data) <= self.max_signal_bytes:
                parts.append(batch)
            elif hi - lo == 1:
                raise AlertTooLarge(
                    f"an alert of {len(batch.data)} bytes (compressed) does not fit one signal"
                )
            else:
                build(lo, (lo + hi) // 2)
                build((lo + hi) // 2, hi)

        build(0, len(records))
        return parts

    def backlog(self, scope: str) -> int:
        """Alerts of this gateway's the scope has not routed: held unrouted by the workflow at
        the last answer, plus those acknowledged beyond what it had received then."""
        beyond = self._acked_seq.get(scope, 0) - self._received_seq.get(scope, 0)
        return self._queued.get(scope, 0) + max(0, beyond)

    def _probe_soon(self, scope: str) -> None:
        if self.probe is None or scope in self._probing:
            return
        every = self.handover_probe_every if scope in self._soon else self.probe_every
        if time.monotonic() - self._probed_at.get(scope, float("-inf")) < every:
            return
        self._probing.add(scope)
        task = asyncio.create_task(self._probe(scope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self, scope: str) -> None:
        assert self.probe is not None
        try:
            report = await self.probe(scope, self.sender)
        except Exception:  # no answer (worker busy or down): the figure goes on growing
            pass
        else:
            self._queued[scope], self._received_seq[scope] = report.queued, report.received_seq
            BACKLOG.observe(self.backlog(scope))
            if report.handover_soon or report.handing_over:
                self._soon.add(scope)
            else:
                self._soon.discard(scope)
            if report.handing_over:
                if scope not in self._hold_until:
                    HOLDS.inc()
                    self._hold_until[scope] = time.monotonic() + self.max_hold
            elif self._hold_until.pop(scope, None) is not None:
                self._wake.set()  # the next run answers: what was held leaves now
        finally:
            self._probed_at[scope] = time.monotonic()
            self._probing.discard(scope)

    async def _run(self) -> None:
        while True:
            held = [scope for scope in list(self._hold_until) if self.held(scope)]
            for scope in held:
                self._probe_soon(scope)
            if held:  # ask again soon, and flush when the hold ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.handover_probe_every)
            else:
                await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                # Let concurrent requests join this batch before it leaves.
                await asyncio.sleep(self.flush_interval)
            for scope in list(self._pending):
                self._flush_scope(scope)
            if self._closing and not self._pending:
                return
