"""The Collector's bookkeeping of its sources: what counts against a source and what only
against a rule, failed health probes, and a slow source that must starve only itself."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from argus.activities.collector import Collector
from argus.integrations.base import IntegrationError
from argus.integrations.prometheus import PrometheusSource
from argus.models import Sample, SourceHealth
from argus.models.agents import CollectRequest
from argus.models.config import RuleConfig
from tests.fakes.prometheus import FakePrometheus

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
REQ = CollectRequest(scope="s", at=T0)


def rule(name: str, expr: str = "up == 0", source: str | None = None) -> RuleConfig:
    return RuleConfig(name=name, expr=expr, source=source)


class DownSource:
    """A source whose health probe answers "not ok" (as PrometheusSource does when unreachable)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.probes = 0

    async def instant(self, expr: str, at: datetime) -> list[Sample]:
        raise IntegrationError(f"{self.name} unreachable")

    async def range(self, *args: object) -> list:
        return []

    async def health(self) -> SourceHealth:
        self.probes += 1
        return SourceHealth(source=self.name, ok=False, detail=f"{self.name} unreachable: connection refused")


async def test_a_failed_health_probe_is_a_failure_only():
    down = DownSource("probe-down")
    collector = Collector({"probe-down": down}, [], base_backoff=0.05, max_backoff=10)
    tracker = collector.trackers["probe-down"]
    seen = []
    for _ in range(3):
        await asyncio.sleep(max(0.0, tracker.retry_at - time.monotonic()) + 0.01)  # past the backoff
        [health] = (await collector.collect(REQ)).health
        seen.append((health.ok, health.consecutive_failures, health.last_success, tracker.backoffs))
        assert health.detail == "probe-down unreachable: connection refused"
    assert seen == [(False, 1, None, 1), (False, 2, None, 2), (False, 3, None, 3)], (
        "failures and backoff grow"
    )
    assert down.probes == 3
    gauge = REGISTRY.get_sample_value("argus_source_last_success_timestamp_seconds", {"source": "probe-down"})
    assert gauge is None, "the last success never moves while the source is down"
    assert REGISTRY.get_sample_value("argus_source_up", {"source": "probe-down"}) == 0


async def test_a_query_error_fails_its_rule_not_the_source():
    prom = FakePrometheus().start()
    try:
        prom.values["up == 0"] = [{"metric": {"service": "a"}, "value": [T0.timestamp(), "0"]}]
        source = PrometheusSource("prom", prom.url, timeout=2)
        collector = Collector({"prom": source}, [rule("Typo", "rate(x[5m]"), rule("Good")])
        for _ in range(3):  # no backoff: every pull asks, and the good rule always answers
            typo, good = (await collector.collect(REQ)).results
            assert typo.error.startswith("query refused by source prom:")
            assert "unclosed left parenthesis" in typo.error and "is down" not in typo.error
            assert good.error is None and good.samples[0].labels == {"service": "a"}
        [health] = (await collector.collect(REQ)).health
        assert health.ok and health.consecutive_failures == 0 and health.detail == "answering"
        assert len(prom.requests) == 8, "two queries per pull, no extra probe: the source answered"
        prom.fail("GET", r"/api/v1/query", status=503, times=None)  # a 5xx is the source's fault
        typo, good = (await collector.collect(REQ)).results
        assert "503" in good.error
        [health] = (await collector.collect(REQ)).health
        assert not health.ok and "503" in health.detail
    finally:
        prom.stop()


async def test_an_answer_the_source_cannot_read_fails_only_its_rule():
    class Odd:
        name = "odd"

        async def instant(self, expr: str, at: datetime) -> list[Sample]:
            if expr == "scalar(1)":
                raise TypeError("argument of type 'float' is not iterable")  # a result of another shape
            return [Sample(labels={"service": "a"}, value=1.0, ts=T0.timestamp())]

        async def range(self, *args: object) -> list:
            return []

        async def health(self) -> SourceHealth:
            return SourceHealth(source="odd", ok=True)

    collector = Collector({"odd": Odd()}, [rule("Scalar", "scalar(1)"), rule("Good", "up")])
    for _ in range(2):
        result = await collector.collect(REQ)
        scalar, good = result.results
        assert scalar.error == (
            "unexpected answer from source odd: TypeError: argument of type 'float' is not iterable"
        )
        assert good.samples and good.error is None
        assert result.health[0].ok


async def test_a_hung_source_starves_only_itself():
    """40 rules on a Prometheus that never answers (more than the event loop's shared threads,
    6 on 2 cores and never more than 32), one on a healthy one. The hung one's HTTP timeout (3 s)
    is longer than the Collector's (1 s), as when a thread is stuck."""
    hung, good = FakePrometheus().start(), FakePrometheus().start()
    try:
        hung.slow("GET", r"/api/v1/query", delay=30, times=None)
        good.values["up == 0"] = [{"metric": {"service": "a"}, "value": [T0.timestamp(), "0"]}]
        sources = {
            "hung": PrometheusSource("hung", hung.url, timeout=3),
            "good": PrometheusSource("good", good.url, timeout=3),
        }
        rules = [rule(f"Hung{i}", source="hung") for i in range(40)] + [rule("GoodRule", source="good")]
        collector = Collector(sources, rules, timeouts={"hung": 1, "good": 1}, base_backoff=0.1)
        started = time.monotonic()
        first = await collector.collect(REQ)
        assert time.monotonic() - started < 2.5
        results = {r.rule: r for r in first.results}
        assert results["GoodRule"].error is None and results["GoodRule"].samples
        assert "timed out" in results["Hung0"].error
        health = {h.source: h for h in first.health}
        assert health["good"].ok and not health["hung"].ok
        assert len(hung.requests) <= 2, "at most two calls in flight to one source"
        await asyncio.sleep(0.15)  # past the backoff; its calls are still stuck in their threads
        started = time.monotonic()
        second = await collector.collect(REQ)
        assert time.monotonic() - started < 0.5, "a stuck source is refused at once"
        results = {r.rule: r for r in second.results}
        assert results["GoodRule"].samples
        assert "source hung is slow: 2 earlier call(s) still running after their 1s timeout" in (
            results["Hung0"].error
        )
        assert {h.source: h.ok for h in second.health} == {"hung": False, "good": True}
        assert len(hung.requests) <= 2, "not asked again while stuck"
    finally:
        hung.stop()
        good.stop()


async def test_a_call_stuck_in_a_coroutine_is_abandoned_and_the_source_asked_again():
    release = asyncio.Event()

    class Hangs:
        name = "hangs"
        calls = 0

        async def instant(self, expr: str, at: datetime) -> list[Sample]:
            Hangs.calls += 1
            if not release.is_set():
                await asyncio.sleep(3600)
            return [Sample(labels={}, value=1.0, ts=T0.timestamp())]

        async def range(self, *args: object) -> list:
            return []

        async def health(self) -> SourceHealth:
            return SourceHealth(source="hangs", ok=True)

    collector = Collector(
        {"hangs": Hangs()}, [rule("R")], timeout=0.1, base_backoff=0.05, max_backoff=0.05, abandon_after=0.4
    )
    assert "timed out" in (await collector.collect(REQ)).results[0].error
    await asyncio.sleep(0.1)
    assert "is slow" in (await collector.collect(REQ)).results[0].error
    assert Hangs.calls == 1
    release.set()
    await asyncio.sleep(0.5)  # the stuck call is cancelled after abandon_after: its place is free
    result = await collector.collect(REQ)
    assert result.results[0].error is None and Hangs.calls == 2
    assert result.health[0].ok and result.health[0].consecutive_failures == 0


async def test_many_rules_on_a_healthy_source_all_answer_through_its_gate():
    prom = FakePrometheus().start()
    try:
        prom.values["up == 0"] = [{"metric": {"service": "a"}, "value": [T0.timestamp(), "0"]}]
        prom.slow("GET", r"/api/v1/query", delay=0.05, times=None)
        collector = Collector({"prom": PrometheusSource("prom", prom.url, timeout=2)}, [], timeout=1)
        collector.all_rules = [rule(f"R{i}") for i in range(30)]
        result = await collector.collect(REQ)
        assert all(r.error is None and r.samples for r in result.results), "waiting for a place is no timeout"
    finally:
        prom.stop()
