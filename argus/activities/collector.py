"""Collector: pulls the configured sources on the Monitoring workflow's timer.

Per pull it runs every rule's query on its source (PromQL on Prometheus or the embedded store;
counts and new log templates on Elasticsearch) and every SLO's error ratio over each of its
windows, all concurrently, each bounded by its source's timeout.

A source that is down or slow never stops the loop. Its failures are tracked here, per
source: after a failure the source is left alone for a backoff (2 s, doubling to 60 s) and its
rules report "source down" at once instead of waiting for another timeout, so one dead
source costs the pull nothing. When the backoff ends the next pull tries it again; the first
success clears the failure count: it recovers on its own. Its health (ok, why not, latency,
consecutive failures, last success, and the warnings it gave with its answers, such as
Prometheus's "results truncated") goes back to the workflow for `argus status` and
`/api/v1/sources`, and into the worker's Prometheus metrics (`argus_source_*`).

What counts against a source: connection errors, timeouts, 5xx and other retryable
`IntegrationError`s (an Elasticsearch partial result among them), refused credentials, and a
failed health probe. A query error (the source answered and refused or could not run this
query: PromQL `bad_data`, an unexpected result type, a `PermanentError`) fails only its rule,
with the reason; the source stays healthy and its other rules run.

A slow source starves only itself. Prometheus and Elasticsearch run their blocking clients in a
thread pool of their own, and a timed-out call is not abandoned while its thread still runs
(`asyncio.wait_for` would stop waiting but leave the thread blocked): each source has a gate of
`concurrency` calls in flight,
a timed-out call keeps its place until it really ends, and while one is still stuck the source
is refused at once as slow ("source X is slow: ..."). So a hung source holds at most
`concurrency` threads, and the other sources keep answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from temporalio import activity

from argus.analysis.slo import error_ratios
from argus.integrations.base import IntegrationError, LogSource, MetricsSource, PermanentError
from argus.models import Sample, SourceHealth
from argus.models.agents import CollectRequest, CollectResult, RuleResult
from argus.models.config import RuleConfig
from argus.models.metrics import warnings_of
from argus.models.monitoring import SloConfig

SOURCE_UP = Gauge("argus_source_up", "1 when the source answered its last query", ["source"])
SOURCE_FAILURES = Gauge(
    "argus_source_consecutive_failures", "Failed queries in a row (0 when healthy)", ["source"]
)
SOURCE_LATENCY = Gauge("argus_source_latency_seconds", "Duration of the source's last good query", ["source"])
SOURCE_LAST_SUCCESS = Gauge(
    "argus_source_last_success_timestamp_seconds", "Unix time of the source's last good query", ["source"]
)
SOURCE_WARNINGS = Counter(
    "argus_source_warnings_total",
    "Warnings a source gave with its answers (Prometheus `warnings`)",
    ["source"],
)
METRIC_RULES = ("threshold", "anomaly")
MAX_WARNINGS = 10  # per source and pull, in its health


class SourceDown(Exception):
    """The source is in its backoff after a failure; not asked this time."""


class SourceSlow(SourceDown):
    """Earlier calls to the source are still running after their timeout; not asked this time."""


class Unhealthy(IntegrationError):
    """A health probe answered, but not ok."""


def source_fault(exc: BaseException) -> bool:
    """Does this error count against the source's health (rather than only the rule's)?

    Yes for timeouts, connection errors and retryable `IntegrationError`s (5xx, 429, partial
    results); no for a query error: a `PermanentError` (the source answered and refused this
    query) unless it says the whole source is refused (`source_fault = True`, e.g. credentials),
    or an unexpected result the source could not read (TypeError, ValueError, ...).
    """
    if isinstance(exc, PermanentError):
        return bool(getattr(exc, "source_fault", False))
    return isinstance(exc, SourceDown | TimeoutError | OSError | IntegrationError)


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Unhealthy) else f"{type(exc).__name__}: {exc}"


class SourceGate:
    """Calls in flight to one source (at most `limit`), and those still running after their
    timeout (`stuck`). Lives on one event loop; not thread-safe (it needs not be)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.loop = asyncio.get_running_loop()
        self.running = 0
        self.stuck = 0
        self._waiters: list[asyncio.Future[None]] = []

    def refuse_if_stuck(self, name: str, timeout: float) -> None:
        if self.stuck:
            raise SourceSlow(
                f"source {name} is slow: {self.stuck} earlier call(s) still running after their "
                f"{timeout:g}s timeout; not asked"
            )

    async def acquire(self, check: Callable[[], None]) -> None:
        """A place for one call; `check` (raising) runs first and after every wait."""
        while True:
            check()
            if self.running < self.limit:
                self.running += 1
                return
            fut: asyncio.Future[None] = self.loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def release(self) -> None:
        self.running -= 1
        self._wake()

    def mark_stuck(self) -> None:
        self.stuck += 1
        self._wake()  # those waiting for a place are refused as slow now, not after it ends

    def unstuck(self) -> None:
        self.stuck -= 1


@dataclass
class SourceTracker:
    """Failure count and backoff of one source, in this worker's memory."""

    name: str
    base_backoff: float = 2.0
    max_backoff: float = 60.0
    failures: int = 0
    backoffs: int = 0
    last_error: str = ""
    last_success: float | None = None
    last_latency: float | None = None
    retry_at: float = 0.0  # monotonic
    used: bool = False
    warnings: list[str] = field(default_factory=list)  # what it warned about this pull

    def check(self) -> None:
        wait = self.retry_at - time.monotonic()
        if self.failures and wait > 0:
            raise SourceDown(f"source {self.name} is down ({self.last_error}); next try in {wait:.0f}s")

    def ok(self, latency: float, warnings: Sequence[str] = ()) -> None:
        self.failures, self.backoffs, self.last_error, self.used = 0, 0, "", True
        if warnings:
            SOURCE_WARNINGS.labels(self.name).inc(len(warnings))
            self.warnings = list(dict.fromkeys([*self.warnings, *warnings]))[-MAX_WARNINGS:]
        self.last_success, self.last_latency = time.time(), latency
        SOURCE_UP.labels(self.name).set(1)
        SOURCE_FAILURES.labels(self.name).set(0)
        SOURCE_LATENCY.labels(self.name).set(latency)
        SOURCE_LAST_SUCCESS.labels(self.name).set(self.last_success)

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error, self.used = error, True
        now = time.monotonic()
        if now >= self.retry_at:  # queries of one pull failing together lengthen the backoff once
            self.backoffs += 1
            self.retry_at = now + min(self.max_backoff, self.base_backoff * 2 ** (self.backoffs - 1))
        SOURCE_UP.labels(self.name).set(0)
        SOURCE_FAILURES.labels(self.name).set(self.failures)

    def health(self) -> SourceHealth:
        if self.failures:
            return SourceHealth(
                source=self.name,
                ok=False,
                detail=self.last_error,
                consecutive_failures=self.failures,
                last_success=self.last_success,
            )
        return SourceHealth(
            source=self.name,
            ok=True,
            detail="answering" if not self.warnings else f"answering, with {len(self.warnings)} warning(s)",
            warnings=self.warnings,
            latency_ms=self.last_latency * 1000 if self.last_latency is not None else None,
            last_success=self.last_success,
        )


class Collector:
    def __init__(
        self,
        sources: dict[str, MetricsSource],
        rules: list[RuleConfig],
        timeout: float = 10.0,
        *,
        logs: dict[str, LogSource] | None = None,
        slos: list[SloConfig] | None = None,
        timeouts: dict[str, float] | None = None,
        base_backoff: float = 2.0,
        max_backoff: float = 60.0,
        concurrency: int = 2,
        abandon_after: float = 120.0,
    ) -> None:
        self.sources = sources
        self.logs = logs or {}
        self.all_rules = rules
        # What the Closer re-checks on recovery: rules whose query returns only breaching series.
        self.rules = [r for r in rules if r.type == "threshold"]
        self.slos = slos or []
        self.timeout = timeout
        self.timeouts = timeouts or {}
        self.trackers = {
            name: SourceTracker(name, base_backoff, max_backoff) for name in [*self.sources, *self.logs]
        }
        # Calls in flight per source. 2: a hung source holds at most 2 threads (of its own pool)
        # while its calls run out their timeout, then is refused until they end.
        self.concurrency = concurrency
        # A call still running this long after its timeout is cancelled and its place freed (a
        # coroutine stops; a thread, which cannot be stopped, then no longer counts).
        self.abandon_after = abandon_after
        self.gates: dict[str, SourceGate] = {}

    # --- sources ---------------------------------------------------------------------------------
    def _metrics_source(self, name: str | None) -> MetricsSource | None:
        if name:
            return self.sources.get(name)
        return next(iter(self.sources.values()), None)

    def _log_source(self, name: str | None) -> LogSource | None:
        if name:
            return self.logs.get(name)
        return next(iter(self.logs.values()), None)

    def _gate(self, name: str) -> SourceGate:
        gate = self.gates.get(name)
        if gate is None or gate.loop is not asyncio.get_running_loop():
            gate = self.gates[name] = SourceGate(self.concurrency)
        return gate

    async def _ask(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One query to a source, with its timeout, backoff, gate and health bookkeeping.

        Raises `SourceDown` (backoff), `SourceSlow` (earlier calls stuck), `TimeoutError`, or
        the call's own error. Only errors that are the source's fault (`source_fault`) count
        as its failures; a query error that it answered counts as an answer.
        """
        tracker = self.trackers.setdefault(name, SourceTracker(name))
        timeout = self.timeouts.get(name, self.timeout)
        gate = self._gate(name)

        def check() -> None:
            tracker.check()
            try:
                gate.refuse_if_stuck(name, timeout)
            except SourceSlow as exc:
                tracker.failed(str(exc).removeprefix(f"source {name} is "))
                raise

        await gate.acquire(check)
        started = time.monotonic()
        try:
            task = asyncio.ensure_future(call())
        except BaseException:
            gate.release()
            raise
        task.add_done_callback(lambda _: gate.release())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            # Its thread may still be blocked: keep its place until it really ends.
            gate.mark_stuck()
            abandon = gate.loop.call_later(self.abandon_after, task.cancel)

            def ended(t: asyncio.Future[Any]) -> None:
                gate.unstuck()
                abandon.cancel()
                if not t.cancelled():
                    t.exception()  # retrieved: it was reported as a timeout already

            task.add_done_callback(ended)
            tracker.failed(f"timed out after {timeout:g}s")
            raise TimeoutError(f"source {name} timed out after {timeout:g}s")
        if task.cancelled():  # the call cancelled itself: a failure, never the activity's cancellation
            tracker.failed("the call was cancelled")
            raise IntegrationError(f"source {name}: the call was cancelled")
        exc = task.exception()
        if exc is None:
            result = task.result()
            tracker.ok(time.monotonic() - started, warnings_of(result))
            return result
        if source_fault(exc):
            tracker.failed(describe(exc))
        elif isinstance(exc, PermanentError):
            tracker.ok(time.monotonic() - started)  # it answered: refusing this query is not being down
        raise exc

    @staticmethod
    def _error(name: str, exc: Exception) -> str:
        """What a rule reports when its query failed."""
        if isinstance(exc, SourceDown):
            return str(exc)
        if isinstance(exc, TimeoutError):
            return f"source {name} timed out"
        if source_fault(exc):
            return f"source {name}: {exc}"
        if isinstance(exc, PermanentError):
            return f"query refused by source {name}: {exc}"
        return f"unexpected answer from source {name}: {type(exc).__name__}: {exc}"

    # --- rules -----------------------------------------------------------------------------------
    async def run_rule(self, rule: RuleConfig, req: CollectRequest) -> RuleResult:
        metrics = rule.type in METRIC_RULES
        source = self._metrics_source(rule.source) if metrics else self._log_source(rule.source)
        if source is None:
            kind = "metrics" if metrics else "log"
            return RuleResult(rule=rule.name, error=f"no {kind} source configured for rule {rule.name}")
        try:
            samples = await self._ask(source.name, lambda: self._query(rule, source, req))
        except Exception as exc:
            return RuleResult(rule=rule.name, error=self._error(source.name, exc))
        return RuleResult(rule=rule.name, samples=samples, warnings=warnings_of(samples))

    async def _query(self, rule: RuleConfig, source: Any, req: CollectRequest) -> list[Sample]:
        at = req.at
        ts = at.timestamp()
        if rule.type in METRIC_RULES:
            return await source.instant(rule.expr, at)
        if rule.type == "log_errors":
            counts = await source.counts(at - rule.window, at, rule.expr)
            return [
                Sample(labels={"service": svc}, value=float(n), ts=ts) for svc, n in sorted(counts.items())
            ]
        found = await source.new_patterns(at - rule.window, at, at - rule.window - rule.baseline, rule.expr)
        return [
            Sample(labels={"service": svc, "template": t.template}, value=float(t.count), ts=ts)
            for svc, templates in sorted(found.items())
            for t in templates
        ]

    async def run_slo(self, slo: SloConfig, window: timedelta, req: CollectRequest) -> RuleResult:
        seconds = window.total_seconds()
        source = self._metrics_source(slo.source)
        if source is None:
            return RuleResult(rule=slo.name, window_seconds=seconds, error="no metrics source configured")

        def one(kind: str) -> Awaitable[list[Sample]]:
            return self._ask(source.name, lambda: source.instant(slo.query(kind, window), req.at))

        try:
            # Two calls, each through the source's gate (one call, one thread).
            errors, total = await asyncio.gather(one("errors"), one("total"))
        except Exception as exc:
            return RuleResult(rule=slo.name, window_seconds=seconds, error=self._error(source.name, exc))
        return RuleResult(
            rule=slo.name,
            window_seconds=seconds,
            samples=error_ratios(errors, total),
            warnings=warnings_of(errors, total),
        )

    async def _probe(self, name: str, source: MetricsSource | LogSource) -> SourceHealth:
        """Health of a source no rule used this pull (still honouring its backoff)."""
        tracker = self.trackers.setdefault(name, SourceTracker(name))

        async def probe() -> SourceHealth:
            try:
                health = await source.health()
            except Exception as exc:  # whatever it is, a probe that fails is the source's failure
                raise Unhealthy(describe(exc)) from exc
            if not health.ok:  # a failed probe is a failure only: never an answer first
                raise Unhealthy(health.detail or "health check failed")
            return health

        try:
            health = await self._ask(name, probe)
        except Exception:
            return tracker.health()
        return health.model_copy(update={"last_success": tracker.last_success})

    @activity.defn(name="collect")
    async def collect(self, req: CollectRequest) -> CollectResult:
        for t in self.trackers.values():
            t.used, t.warnings = False, []
        jobs = [self.run_rule(r, req) for r in self.all_rules]
        jobs += [self.run_slo(s, w, req) for s in self.slos for w in s.all_windows()]
        results = await asyncio.gather(*jobs)
        health = []
        for name, source in [*self.sources.items(), *self.logs.items()]:
            tracker = self.trackers[name]
            health.append(tracker.health() if tracker.used else await self._probe(name, source))
        return CollectResult(results=list(results), health=health)
