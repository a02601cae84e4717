"""What the world hands out: per-tick statistics, events, action records, change events and
the cumulative totals behind the Prometheus counters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .timefmt import rfc3339

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ServiceStats:
    """One service over one tick. The first block is what /metrics shows; the rest is
    simulation detail for logs and tests, never exported."""

    name: str
    version: str
    replicas: int
    up: bool
    request_rate: float
    error_ratio: float
    latency_p50_s: float
    latency_p99_s: float
    cpu_utilization: float
    memory_bytes: float
    memory_limit_bytes: float
    served_rate: float = 0.0
    own_latency_p50_s: float = 0.0
    saturation: float = 0.0
    queue_depth: float = 0.0
    gc_pressure: float = 0.0
    cpu_hog: float = 0.0
    restarting: str | None = None  # "oom" | "rolling"
    error_causes: dict[str, float] = field(default_factory=dict)  # cause -> ratio of all requests
    timeouts: dict[str, float] = field(default_factory=dict)  # callee -> share of calls timed out
    callee_failures: dict[str, float] = field(default_factory=dict)  # callee -> ratio of requests failed


GAUGE_FIELDS = {
    "sandbox_up": lambda s: 1.0 if s.up else 0.0,
    "sandbox_request_rate": lambda s: s.request_rate,
    "sandbox_error_ratio": lambda s: s.error_ratio,
    "sandbox_latency_p50_seconds": lambda s: s.latency_p50_s,
    "sandbox_latency_p99_seconds": lambda s: s.latency_p99_s,
    "sandbox_cpu_utilization": lambda s: s.cpu_utilization,
    "sandbox_memory_bytes": lambda s: s.memory_bytes,
    "sandbox_memory_limit_bytes": lambda s: s.memory_limit_bytes,
    "sandbox_replicas": lambda s: float(s.replicas),
}


@dataclass
class Event:
    """Something that happened at a service, for the log stream: oom_killed, restarted, deployed,
    rolled_back, scaled, fault_started, fault_ended."""

    at: float
    service: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    time: float
    tick: int
    services: dict[str, ServiceStats]
    events: list[Event]

    def rows(self) -> Iterator[tuple[float, str, str, float]]:
        """(unix seconds, service, metric, value) in the gauge names of /metrics: the long
        format of RCA cases."""
        for name, stats in self.services.items():
            for metric, read in GAUGE_FIELDS.items():
                yield self.time, name, metric, float(read(stats))


@dataclass
class ActionRecord:
    key: str
    action: str
    service: str
    status: str
    detail: str
    at: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, duplicate: bool = False) -> dict[str, Any]:
        body = {
            "key": self.key,
            "action": self.action,
            "service": self.service,
            "status": self.status,
            "detail": self.detail,
            "at": rfc3339(self.at),
            "duplicate": duplicate,
        }
        body.update(self.params)
        return body


@dataclass
class ChangeEvent:
    service: str
    at: float
    kind: str  # deploy | rollback
    version: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The body ARGUS's gateway takes at POST /api/v1/changes."""
        return {
            "service": self.service,
            "at": rfc3339(self.at),
            "kind": self.kind,
            "version": self.version,
            "description": self.description,
        }


@dataclass
class Totals:
    """Cumulative counters, as Prometheus counters and the histogram need them."""

    requests: float = 0.0
    errors: float = 0.0
    restarts: float = 0.0
    bucket_counts: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    duration_count: float = 0.0
    duration_sum: float = 0.0
