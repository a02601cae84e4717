"""Collector: pulls the configured sources on the Monitoring workflow's timer.

Per pull it runs every rule's query on its source (PromQL on Prometheus or the embedded store;
counts and new log templates on Elasticsearch) and every SLO's error ratio over each of its
windows, all concurrently, each bounded by its source's timeout.

A source that is down or slow never stops the loop. Its failures are tracked here, per
source: after a failure the source is left alone for a backoff (2 s, doubling to 60 s) and its
rules report "source down" at once instead of waiting for another timeout, so one dead
source costs the pull nothing. When the backoff ends the next pull tries it again; the first
success clears the failure count: it recovers on its own. Its health (ok, why not, latency,
consecutive failures, last success) goes back to the workflow for `argus status` and
`/api/v1/sources`, and into the worker's Prometheus metrics (`argus_source_*`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Gauge
from temporalio import activity

from argus.analysis.slo import error_ratios
from argus.integrations.base import LogSource, MetricsSource
from argus.models import Sample, SourceHealth
from argus.models.agents import CollectRequest, CollectResult, RuleResult
from argus.models.config import RuleConfig
from argus.models.monitoring import SloConfig

SOURCE_UP = Gauge("argus_source_up", "1 when the source answered its last query", ["source"])
SOURCE_FAILURES = Gauge(
    "argus_source_consecutive_failures", "Failed queries in a row (0 when healthy)", ["source"]
)
SOURCE_LATENCY = Gauge("argus_source_latency_seconds", "Duration of the source's last good query", ["source"])
SOURCE_LAST_SUCCESS = Gauge(
    "argus_source_last_success_timestamp_seconds", "Unix time of the source's last good query", ["source"]
)
METRIC_RULES = ("threshold", "anomaly")


class SourceDown(Exception):
    """The source is in its backoff after a failure; not asked this time."""


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

    def check(self) -> None:
        wait = self.retry_at - time.monotonic()
        if self.failures and wait > 0:
            raise SourceDown(f"source {self.name} is down ({self.last_error}); next try in {wait:.0f}s")

    def ok(self, latency: float) -> None:
        self.failures, self.backoffs, self.last_error, self.used = 0, 0, "", True
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
            detail="answering",
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

    # --- sources ---------------------------------------------------------------------------------
    def _metrics_source(self, name: str | None) -> MetricsSource | None:
        if name:
            return self.sources.get(name)
        return next(iter(self.sources.values()), None)

    def _log_source(self, name: str | None) -> LogSource | None:
        if name:
            return self.logs.get(name)
        return next(iter(self.logs.values()), None)

    async def _ask(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One query to a source, with its timeout, backoff and health bookkeeping."""
        tracker = self.trackers.setdefault(name, SourceTracker(name))
        tracker.check()
        timeout = self.timeouts.get(name, self.timeout)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(call(), timeout=timeout)
        except TimeoutError:
            tracker.failed(f"timed out after {timeout:g}s")
            raise
        except Exception as exc:
            tracker.failed(f"{type(exc).__name__}: {exc}")
            raise
        tracker.ok(time.monotonic() - started)
        return result

    # --- rules -----------------------------------------------------------------------------------
    async def run_rule(self, rule: RuleConfig, req: CollectRequest) -> RuleResult:
        metrics = rule.type in METRIC_RULES
        source = self._metrics_source(rule.source) if metrics else self._log_source(rule.source)
        if source is None:
            kind = "metrics" if metrics else "log"
            return RuleResult(rule=rule.name, error=f"no {kind} source configured for rule {rule.name}")
        try:
            samples = await self._ask(source.name, lambda: self._query(rule, source, req))
        except SourceDown as exc:
            return RuleResult(rule=rule.name, error=str(exc))
        except TimeoutError:
            return RuleResult(rule=rule.name, error=f"source {source.name} timed out")
        except Exception as exc:
            return RuleResult(rule=rule.name, error=f"source {source.name}: {exc}")
        return RuleResult(rule=rule.name, samples=samples)

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

        async def both() -> list[Sample]:
            errors, total = await asyncio.gather(
                source.instant(slo.query("errors", window), req.at),
                source.instant(slo.query("total", window), req.at),
            )
            return error_ratios(errors, total)

        try:
            ratios = await self._ask(source.name, both)
        except SourceDown as exc:
            return RuleResult(rule=slo.name, window_seconds=seconds, error=str(exc))
        except TimeoutError:
            return RuleResult(rule=slo.name, window_seconds=seconds, error=f"source {source.name} timed out")
        except Exception as exc:
            return RuleResult(rule=slo.name, window_seconds=seconds, error=f"source {source.name}: {exc}")
        return RuleResult(rule=slo.name, window_seconds=seconds, samples=ratios)

    async def _probe(self, name: str, source: MetricsSource | LogSource) -> SourceHealth:
        """Health of a source no rule used this pull (still honouring its backoff)."""
        tracker = self.trackers.setdefault(name, SourceTracker(name))
        try:
            health = await self._ask(name, source.health)
        except SourceDown:
            return tracker.health()
        except Exception:
            return tracker.health()
        if not health.ok:
            tracker.failed(health.detail)
            return tracker.health()
        return health.model_copy(update={"last_success": tracker.last_success})

    @activity.defn(name="collect")
    async def collect(self, req: CollectRequest) -> CollectResult:
        for t in self.trackers.values():
            t.used = False
        jobs = [self.run_rule(r, req) for r in self.all_rules]
        jobs += [self.run_slo(s, w, req) for s in self.slos for w in s.all_windows()]
        results = await asyncio.gather(*jobs)
        health = []
        for name, source in [*self.sources.items(), *self.logs.items()]:
            tracker = self.trackers[name]
            health.append(tracker.health() if tracker.used else await self._probe(name, source))
        return CollectResult(results=list(results), health=health)
