"""The log stream: a few JSON records per service per tick, shaped like what real services print.

Normal traffic gives INFO lines whose numbers vary (paths, ids, durations), so a template miner
learns a stable baseline. Faults add WARN/ERROR lines whose templates tell the cause: the root-cause
service logs its own trouble (slow queries, GC, OutOfMemoryError, an exception in a new version),
its callers log upstream timeouts and refused connections that name it. Line counts grow with the
number of affected requests, so the templates surge as well as appear.

Pure: its own seeded generator, separate from the world's so logging does not change metrics.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .records import Event, ServiceStats, Snapshot
from .timefmt import rfc3339
from .topology import ServiceSpec, Topology

MAX_LINES_PER_CAUSE = 6

_PATHS: dict[str, list[str]] = {
    "frontend": ["GET /", "GET /products/{id}", "GET /cart", "POST /cart/items/{id}", "POST /checkout",
                 "GET /search?q={word}"],
    "checkout": ["POST /api/checkout/{id}", "GET /api/checkout/{id}/status"],
    "catalog": ["GET /api/products/{id}", "GET /api/categories/{word}", "GET /api/products?page={n}"],
    "payments": ["POST /api/charge", "POST /api/refund/{id}", "GET /api/payments/{id}"],
    "inventory": ["GET /api/stock/{id}", "POST /api/reservations/{id}"],
}  # fmt: skip
_TABLES: dict[str, list[str]] = {
    "payments-db": ["payments", "ledger_entries", "cards"],
    "inventory-db": ["stock", "reservations", "warehouses"],
}
_WORDS = ["shoes", "lamp", "coffee", "desk", "jacket", "camera", "tent", "kettle", "chair", "socks"]
_BAD_DEPLOY_ERRORS = [
    'NullPointerException: Cannot invoke "Money.getCurrency()" because "amount" is null',
    "IllegalArgumentException: unknown field 'currency_code' in request",
    "ClassCastException: class java.lang.String cannot be cast to class java.math.BigDecimal",
]


class LogGenerator:
    def __init__(self, topology: Topology, seed: int = 0) -> None:
        self.topology = topology
        self._rng = random.Random(seed * 7919 + 17)
        self._pid = {s.name: 1000 + i * 97 for i, s in enumerate(topology.services)}

    def records(self, snap: Snapshot, tick_s: float) -> list[dict[str, Any]]:
        """Log records for one tick, in time order."""
        out: list[tuple[float, str, str, str]] = []
        start = snap.time - tick_s
        for name, stats in snap.services.items():
            spec = self.topology.spec(name)
            lines: list[tuple[str, str]] = []
            for ev in (e for e in snap.events if e.service == name):
                lines += self._event_lines(spec, stats, ev)
            lines += self._traffic_lines(spec, stats)
            lines += self._trouble_lines(spec, stats, snap, tick_s)
            for level, message in lines:
                out.append((start + self._rng.random() * tick_s, name, level, message))
        out.sort(key=lambda r: r[0])
        return [{"@timestamp": rfc3339(ts), "service": s, "level": lv, "message": m} for ts, s, lv, m in out]

    # ---- normal operation ----------------------------------------------------------------------

    def _traffic_lines(self, spec: ServiceSpec, stats: ServiceStats) -> list[tuple[str, str]]:
        r = self._rng
        if not stats.up or stats.request_rate <= 0:
            return []
        lines = []
        for _ in range(2):
            ms = stats.latency_p50_s * 1000 * math.exp(r.gauss(0.0, 0.4))
            if spec.kind == "db":
                lines.append(("INFO", f"duration: {ms:.3f} ms  statement: {self._statement(spec.name)}"))
            else:
                lines.append(("INFO", f"{self._path(spec.name)} 200 {max(1, round(ms))}ms"))
        if r.random() < 0.1:
            n = round(stats.request_rate * 10)
            lines.append(("INFO", f"stats: {n} requests in last 10s, p99={stats.latency_p99_s * 1000:.0f}ms"))
        if r.random() < 0.02:  # the odd slow request or retry happens on healthy days too
            if self.topology.calls_from(spec.name):
                callee = r.choice(self.topology.calls_from(spec.name)).callee
                lines.append(("WARN", f"retrying call to {callee} (attempt 2 of 3)"))
            else:
                lines.append(("WARN", f"slow request took {r.randint(300, 900)}ms"))
        return lines

    # ---- events ---------------------------------------------------------------------------------

    def _event_lines(self, spec: ServiceSpec, stats: ServiceStats, ev: Event) -> list[tuple[str, str]]:
        r = self._rng
        name, d = spec.name, ev.detail
        started = f"{name} {stats.version} started in {r.randint(800, 4000)}ms (pid {self._next_pid(name)})"
        ready = f"{stats.replicas}/{stats.replicas} replicas ready"
        match ev.kind:
            case "oom_killed":
                limit = int(d.get("limit_mb", spec.memory_limit_mb))
                if spec.kind == "db":
                    first = f"server process (PID {self._pid[name]}) was terminated by signal 9: Killed"
                else:
                    first = "java.lang.OutOfMemoryError: Java heap space"
                return [
                    ("ERROR", first),
                    ("ERROR", f"container {name} OOMKilled (exit code 137, memory limit {limit}Mi)"),
                    ("INFO", started),
                ]
            case "restarted":
                return [
                    ("INFO", f"received SIGTERM, draining {r.randint(3, 40)} in-flight requests"),
                    ("INFO", started),
                ]
            case "deployed":
                return [
                    ("INFO", f"deploy {d['version']} started (replacing {d['previous']})"),
                    ("INFO", f"deploy {d['version']} finished: {ready}"),
                    ("INFO", started),
                ]
            case "rolled_back":
                return [
                    ("INFO", f"rollback to {d['version']} started (replacing {d['previous']})"),
                    ("INFO", f"rollback to {d['version']} finished: {ready}"),
                ]
            case "scaled":
                return [("INFO", f"replica count changed from {d['from']} to {d['to']}")]
        return []  # fault bookkeeping is ground truth, not something a service would log

    # ---- trouble --------------------------------------------------------------------------------

    def _trouble_lines(
        self, spec: ServiceSpec, stats: ServiceStats, snap: Snapshot, tick_s: float
    ) -> list[tuple[str, str]]:
        requests = stats.request_rate * tick_s
        lines: list[tuple[str, str]] = []
        for cause, ratio in stats.error_causes.items():
            for _ in range(self._line_count(requests * ratio)):
                line = self._failure_line(cause, spec, stats)
                if line is not None:
                    lines.append(line)
        for e in self.topology.calls_from(spec.name):
            callee = snap.services[e.callee]
            failed = requests * stats.callee_failures.get(e.callee, 0.0)
            timed_out = stats.timeouts.get(e.callee, 0.0)
            share = timed_out / max(timed_out + callee.error_ratio, 1e-9)
            for _ in range(self._line_count(failed * share)):
                timeout_ms = e.timeout_s * 1000
                path = self._path(spec.name)
                lines.append(
                    ("ERROR", f"upstream timeout calling {e.callee} after {timeout_ms:.0f}ms on {path}")
                )
            for _ in range(self._line_count(failed * (1 - share))):
                lines.append(("ERROR", self._callee_error(e.callee, callee)))
        return lines + self._symptom_lines(spec, stats, requests)

    def _failure_line(self, cause: str, spec: ServiceSpec, stats: ServiceStats) -> tuple[str, str] | None:
        """One line for a batch of requests this service failed itself, worded by the cause."""
        r = self._rng
        db = spec.kind == "db"
        path = self._path(spec.name)
        match cause:
            case "base":
                return "WARN", f"client closed connection before response: {path}"
            case "injected" if db:
                pid, xid = r.randint(2000, 9000), r.randint(10**6, 10**7)
                return (
                    "ERROR",
                    f"ERROR: deadlock detected; process {pid} waits for ShareLock on transaction {xid}",
                )
            case "injected":
                return "ERROR", f"request {path} failed: internal error (trace_id={r.getrandbits(64):016x})"
            case "bad_deploy":
                error = _BAD_DEPLOY_ERRORS[sum(map(ord, stats.version)) % len(_BAD_DEPLOY_ERRORS)]
                return "ERROR", f"unhandled exception in {path} [version {stats.version}]: {error}"
            case "restart":
                return "WARN", f"request {path} aborted: server shutting down"
            case "shed" if db:
                return "ERROR", "FATAL: sorry, too many clients already"
            case "shed":
                return (
                    "ERROR",
                    f"rejected {path} with 503: request queue full ({stats.queue_depth:.0f} waiting)",
                )
        return None  # unavailable: a dead process writes nothing; its callers say so

    def _symptom_lines(
        self, spec: ServiceSpec, stats: ServiceStats, requests: float
    ) -> list[tuple[str, str]]:
        """What a struggling process says about itself. Resource complaints come about once or twice
        per tick whatever the load, as a runtime's own warnings do."""
        r = self._rng
        db = spec.kind == "db"
        lines: list[tuple[str, str]] = []
        base_p50 = spec.latency_p50_ms / 1000.0
        if stats.own_latency_p50_s > 3 * base_p50:
            slow = requests * min(1.0, stats.own_latency_p50_s / (10 * base_p50))
            for _ in range(self._line_count(slow)):
                ms = stats.own_latency_p50_s * 1000 * r.uniform(0.8, 1.6)
                if db:
                    lines.append(
                        (
                            "WARN",
                            f"slow query: duration: {ms:.3f} ms  statement: {self._statement(spec.name)}",
                        )
                    )
                else:
                    lines.append(("WARN", f"slow request {self._path(spec.name)} took {ms:.0f}ms"))
        if stats.cpu_hog > 0:
            for _ in range(min(2, self._line_count(requests * stats.cpu_hog))):
                if db:
                    lines.append(
                        (
                            "WARN",
                            f"checkpoints are occurring too frequently ({r.randint(2, 9)} seconds apart)",
                        )
                    )
                else:
                    lines.append(
                        ("WARN", f"event loop blocked for {r.randint(150, 900)}ms: worker starved of CPU")
                    )
        if stats.gc_pressure > 0:
            heap, limit = stats.memory_bytes / 2**20, stats.memory_limit_bytes / 2**20
            for _ in range(min(2, self._line_count(requests * stats.gc_pressure))):
                share = min(98.0, 20 + 75 * stats.gc_pressure) * r.uniform(0.9, 1.0)
                lines.append(
                    ("WARN", f"GC overhead {share:.0f}% of time, heap {heap:.0f}MB of {limit:.0f}MB")
                )
        if stats.saturation > 1.0 and stats.queue_depth > 1:
            lines.append((
                "WARN",
                f"request queue depth {stats.queue_depth:.0f}: {stats.request_rate:.0f} req/s arriving, "
                f"{stats.served_rate:.0f} req/s served",
            ))  # fmt: skip
        return lines

    def _callee_error(self, callee: str, stats: ServiceStats) -> str:
        spec = self.topology.spec(callee)
        causes = stats.error_causes
        if not stats.up or causes.get("unavailable", 0) > 0:
            return f"connection refused to {callee}:{spec.port}"
        if causes.get("shed", 0) > 0.5 * stats.error_ratio:
            if spec.kind == "db":
                return f"cannot acquire connection to {callee}: FATAL: sorry, too many clients already"
            return f"call to {callee} failed: 503 Service Unavailable"
        if spec.kind == "db":
            return (
                f"query to {callee} failed: ERROR: could not complete transaction ({self._statement(callee)})"
            )
        return f"call to {callee} failed: 500 Internal Server Error on {self._path(callee)}"

    # ---- helpers -------------------------------------------------------------------------------

    def _line_count(self, affected: float) -> int:
        """A handful of lines for a batch: grows with the log of the affected requests; a fraction
        of one request becomes a line that often."""
        if affected <= 0:
            return 0
        if affected < 1:
            return 1 if self._rng.random() < affected else 0
        return min(MAX_LINES_PER_CAUSE, 1 + int(math.log2(1 + affected)))

    def _path(self, service: str) -> str:
        r = self._rng
        template = r.choice(_PATHS.get(service) or [f"GET /api/{service}/{{id}}"])
        return template.format(id=r.randint(1000, 99999), word=r.choice(_WORDS), n=r.randint(1, 40))

    def _statement(self, service: str) -> str:
        r = self._rng
        table = r.choice(_TABLES.get(service) or ["items"])
        if r.random() < 0.7:
            return f"SELECT * FROM {table} WHERE id = {r.randint(1, 10**6)}"
        return f"UPDATE {table} SET updated_at = now() WHERE id = {r.randint(1, 10**6)}"

    def _next_pid(self, service: str) -> int:
        self._pid[service] += self._rng.randint(1, 50)
        return self._pid[service]
