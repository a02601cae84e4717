"""The world as Prometheus sees it. The metric names here are a contract with ARGUS's default rules."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .records import GAUGE_FIELDS, LATENCY_BUCKETS
from .world import World

_HELP = {
    "sandbox_up": "1 when at least one replica of the service answers",
    "sandbox_request_rate": "Requests per second arriving at the service",
    "sandbox_error_ratio": "Share of requests that failed (0..1)",
    "sandbox_latency_p50_seconds": "Median request duration",
    "sandbox_latency_p99_seconds": "99th percentile request duration",
    "sandbox_cpu_utilization": "CPU used over CPU available across replicas (0..1)",
    "sandbox_memory_bytes": "Resident memory per replica",
    "sandbox_memory_limit_bytes": "Memory limit per replica; reaching it is an OOM kill",
    "sandbox_replicas": "Running replicas",
}


class WorldCollector:
    """Reads the latest tick on every scrape; the caller holds whatever lock guards the world."""

    def __init__(self, world: World) -> None:
        self.world = world

    def describe(self) -> list[Metric]:
        return []  # registering must not run a collection

    def collect(self) -> Iterator[Metric]:
        snap = self.world.latest
        for metric, read in GAUGE_FIELDS.items():
            family = GaugeMetricFamily(metric, _HELP[metric], labels=["service"])
            for name, stats in snap.services.items():
                family.add_metric([name], float(read(stats)))
            yield family

        info = GaugeMetricFamily(
            "sandbox_version_info", "Running version (value is always 1)", labels=["service", "version"]
        )
        for name, stats in snap.services.items():
            info.add_metric([name, stats.version], 1.0)
        yield info

        requests = CounterMetricFamily("sandbox_requests", "Requests received", labels=["service"])
        errors = CounterMetricFamily("sandbox_errors", "Requests that failed", labels=["service"])
        restarts = CounterMetricFamily(
            "sandbox_restarts", "Replica restarts (OOM kills, restarts, deploys)", labels=["service"]
        )
        duration = HistogramMetricFamily(
            "sandbox_request_duration_seconds", "Request duration", labels=["service"]
        )
        for name in snap.services:
            totals = self.world.totals(name)
            requests.add_metric([name], round(totals.requests))
            errors.add_metric([name], round(totals.errors))
            restarts.add_metric([name], totals.restarts)
            # Rounding each cumulative count keeps buckets monotonic in `le` and over time.
            buckets = [
                (_le(le), round(c)) for le, c in zip(LATENCY_BUCKETS, totals.bucket_counts, strict=True)
            ]
            buckets.append(("+Inf", round(totals.duration_count)))
            duration.add_metric([name], buckets, sum_value=totals.duration_sum)
        yield from (requests, errors, restarts, duration)


def _le(bound: float) -> str:
    return repr(float(bound))


def render(world: World) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorldCollector(world))
    return generate_latest(registry)
