"""The simulated microservice system: load, latency, errors and resources, one tick at a time.

Pure code: no I/O, no wall clock, all randomness from one seeded generator, so a seed and the
same sequence of calls give the same numbers. Each tick:

1. request rates flow top-down along the call graph (entry load with a daily wave and noise);
2. latency and errors are computed bottom-up: every service draws a sample of synthetic
   requests (its own processing time plus draws from its callees' samples, cut at the call
   timeout), so tails compose the way they do in real systems and a slow leaf shows up,
   amplified, in every caller;
3. saturation of CPU or of the in-flight pool builds a queue; a full queue sheds load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .faults import DEFAULT_MAGNITUDE, Fault, FaultType, check_magnitude
from .records import LATENCY_BUCKETS, ActionRecord, ChangeEvent, Event, ServiceStats, Snapshot, Totals
from .timefmt import rfc3339
from .topology import DEFAULT_TOPOLOGY, Edge, ServiceSpec, Topology

MIB = 1024 * 1024
_BUCKET_EDGES = np.array(LATENCY_BUCKETS)
DEFAULT_START = 1_735_725_600.0  # 2025-01-01T10:00:00Z, so runs without a clock are reproducible

SAMPLES = 1000  # synthetic requests per service per tick: a p99 with realistic jitter, and fast
OOM_RESTART_S = 8.0
ROLLING_RESTART_S = 5.0
MAX_QUEUE_S = 1.5  # a request that would wait longer than this in a full queue is rejected
MAX_REPLICAS = 100
CORES_PER_REPLICA = 2
_Z99 = 2.326


class UnknownService(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class ActionConflict(Exception):
    """An idempotency key already used for a different action, service or parameters."""


class ActionRefused(Exception):
    """The action cannot be carried out in the current state (nothing was changed)."""


@dataclass
class _Runtime:
    replicas: int
    version: str
    previous_versions: list[str] = field(default_factory=list)
    leaked_mb: float = 0.0
    backlog: float = 0.0
    passthrough: float = 1.0  # share of arriving requests that got as far as calling downstream
    restart_until: float = -math.inf
    restart_kind: str | None = None
    load_noise: float = 0.0
    totals: Totals = field(default_factory=Totals)


@dataclass
class _Effects:
    extra_ms: float = 0.0
    error_ratio: float = 0.0
    cpu_hog: float = 0.0
    leak_mib_s: float = 0.0
    bad_deploy: float = 0.0
    overload: float = 1.0


class World:
    def __init__(
        self,
        topology: Topology | None = None,
        *,
        seed: int = 0,
        start_time: float = DEFAULT_START,
        tick_s: float = 1.0,
    ) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self.topology = topology or DEFAULT_TOPOLOGY
        self.seed = seed
        self.tick_s = tick_s
        self._rng = np.random.default_rng(seed)
        self._rt = {s.name: _Runtime(replicas=s.replicas, version=s.version) for s in self.topology.services}
        self._faults: list[Fault] = []
        self._actions: dict[str, ActionRecord] = {}
        self._events: list[Event] = []
        self.changes: list[ChangeEvent] = []
        self._unsent_changes: list[ChangeEvent] = []
        self._samples: dict[str, np.ndarray] = {}  # this tick's request durations, sorted
        self.tick = 0
        # The first tick covers the interval ending at start_time, so there is always a snapshot.
        self.now = start_time - tick_s
        self.latest = self.step()

    # ---- reading -------------------------------------------------------------------------------

    @property
    def services(self) -> list[str]:
        return self.topology.names

    @property
    def edges(self) -> list[tuple[str, str]]:
        return self.topology.pairs()

    def totals(self, service: str) -> Totals:
        return self._runtime(service).totals

    def version(self, service: str) -> str:
        return self._runtime(service).version

    def faults(self, active_only: bool = False) -> list[Fault]:
        return [f for f in self._faults if f.active or not active_only]

    def fault(self, fault_id: str) -> Fault:
        for f in self._faults:
            if f.id == fault_id:
                return f
        raise KeyError(fault_id)

    def action(self, key: str) -> ActionRecord | None:
        return self._actions.get(key)

    def drain_changes(self) -> list[ChangeEvent]:
        """Change events not yet handed out, for whoever forwards them to ARGUS."""
        out, self._unsent_changes = self._unsent_changes, []
        return out

    def state(self) -> dict[str, Any]:
        snap = self.latest
        services = {}
        for name, s in snap.services.items():
            rt = self._rt[name]
            services[name] = {
                "up": s.up,
                "version": rt.version,
                "previous_versions": list(rt.previous_versions),
                "replicas": rt.replicas,
                "request_rate": s.request_rate,
                "error_ratio": s.error_ratio,
                "latency_p50_seconds": s.latency_p50_s,
                "latency_p99_seconds": s.latency_p99_s,
                "cpu_utilization": s.cpu_utilization,
                "memory_bytes": s.memory_bytes,
                "memory_limit_bytes": s.memory_limit_bytes,
                "restarts_total": rt.totals.restarts,
                "faults": [f.id for f in self._faults if f.active and f.service == name],
            }
        return {
            "time": rfc3339(snap.time),
            "tick": snap.tick,
            "services": services,
            "faults": [f.to_dict() for f in self._faults if f.active],
        }

    # ---- time ----------------------------------------------------------------------------------

    def step(self) -> Snapshot:
        dt = self.tick_s
        t = self.now + dt
        self._expire_faults(t)
        effects = {name: self._effects_at(name) for name in self.services}

        offered: dict[str, float] = {}
        for name in self.topology.order:
            spec = self.topology.spec(name)
            rate = spec.entry_rps * self._load_factor(name, t) if spec.entry_rps else 0.0
            for e in self.topology.calls_to(name):
                # Requests a caller shed or could not take never reach its dependencies.
                rate += offered[e.caller] * self._rt[e.caller].passthrough * e.calls
            offered[name] = rate * effects[name].overload

        stats: dict[str, ServiceStats] = {}
        for name in reversed(self.topology.order):
            stats[name] = self._serve(self.topology.spec(name), offered[name], effects[name], t, dt, stats)

        self.now = t
        self.tick += 1
        events, self._events = self._events, []
        self.latest = Snapshot(t, self.tick, {n: stats[n] for n in self.services}, events)
        return self.latest

    def advance(self, seconds: float) -> Snapshot:
        for _ in range(self._ticks_in(seconds)):
            self.step()
        return self.latest

    def history(self, seconds: float) -> list[Snapshot]:
        """Fast-forward `seconds` of simulated time and return every tick on the way."""
        return [self.step() for _ in range(self._ticks_in(seconds))]

    def _ticks_in(self, seconds: float) -> int:
        return max(0, math.ceil(seconds / self.tick_s - 1e-9))

    # ---- faults --------------------------------------------------------------------------------

    def inject(
        self,
        service: str,
        type: FaultType | str,
        magnitude: float | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        kind = FaultType(type)
        self._runtime(service)
        value = check_magnitude(kind, magnitude)
        if duration_s is not None and duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if kind is FaultType.BAD_DEPLOY:
            version = _next_version(self._rt[service].version, self._all_versions(service))
            _, fault = self._deploy(service, version, bad=True, magnitude=value, duration_s=duration_s)
            assert fault is not None
            return fault
        return self._add_fault(service, kind, value, duration_s)

    def end_fault(self, fault_id: str, reason: str = "cleared") -> Fault:
        fault = self.fault(fault_id)
        if fault.active:
            self._end(fault, reason)
        return fault

    def deploy(
        self, service: str, version: str, *, bad: bool = False, description: str = ""
    ) -> tuple[ChangeEvent, Fault | None]:
        self._runtime(service)
        if not version:
            raise ValueError("version must not be empty")
        if version == self._rt[service].version:
            raise ActionRefused(f"{service} already runs version {version}")
        return self._deploy(service, version, bad=bad, description=description)

    def _deploy(
        self,
        service: str,
        version: str,
        *,
        bad: bool,
        magnitude: float | None = None,
        duration_s: float | None = None,
        description: str = "",
    ) -> tuple[ChangeEvent, Fault | None]:
        rt = self._rt[service]
        previous = rt.version
        rt.previous_versions.append(previous)
        rt.version = version
        for f in self._active(service, FaultType.BAD_DEPLOY):
            self._end(f, "deploy")
        self._replace_processes(service, "deploy")
        fault = None
        if bad:
            fault = self._add_fault(
                service,
                FaultType.BAD_DEPLOY,
                magnitude or DEFAULT_MAGNITUDE[FaultType.BAD_DEPLOY],
                duration_s,
                version=version,
            )
        change = ChangeEvent(
            service, self.now, "deploy", version, description or f"deploy {service} {previous} -> {version}"
        )
        self._record_change(change)
        self._events.append(Event(self.now, service, "deployed", {"version": version, "previous": previous}))
        return change, fault

    # ---- remediation ---------------------------------------------------------------------------

    def restart(self, service: str, key: str) -> tuple[ActionRecord, bool]:
        """Rolling restart: fresh processes drop a CPU hog and leaked memory; the same code and the
        same dependencies come back, so a bad version or a slow dependency stays."""

        def act() -> str:
            rt = self._rt[service]
            cleared = self._replace_processes(service, "restart")
            self._events.append(Event(self.now, service, "restarted", {"replicas": rt.replicas}))
            what = f"; cleared {', '.join(cleared)}" if cleared else "; no process-level fault was present"
            return f"rolling restart of {rt.replicas} replica(s) of {service} at version {rt.version}{what}"

        return self._once(key, "restart", service, {}, act)

    def rollback(self, service: str, key: str) -> tuple[ActionRecord, bool]:
        def act() -> str:
            rt = self._rt[service]
            if not rt.previous_versions:
                raise ActionRefused(f"{service} has no previous version to roll back to (runs {rt.version})")
            bad = rt.version
            rt.version = rt.previous_versions.pop()
            fixed = [f"{f.type.value} {f.id}" for f in self._active(service, FaultType.BAD_DEPLOY)]
            for f in self._active(service, FaultType.BAD_DEPLOY):
                self._end(f, "rollback")
            cleared = self._replace_processes(service, "rollback")
            self._record_change(
                ChangeEvent(
                    service, self.now, "rollback", rt.version, f"rollback {service} {bad} -> {rt.version}"
                )
            )
            self._events.append(
                Event(self.now, service, "rolled_back", {"version": rt.version, "previous": bad})
            )
            ended = fixed + cleared
            what = f"; ended {', '.join(ended)}" if ended else ""
            return f"rolled {service} back from {bad} to {rt.version}{what}"

        return self._once(key, "rollback", service, {}, act)

    def scale(self, service: str, key: str, replicas: int) -> tuple[ActionRecord, bool]:
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {MAX_REPLICAS}, got {replicas}")

        def act() -> str:
            rt = self._rt[service]
            before, rt.replicas = rt.replicas, replicas
            if before == replicas:
                return f"{service} already has {replicas} replica(s); nothing changed"
            self._events.append(Event(self.now, service, "scaled", {"from": before, "to": replicas}))
            return f"scaled {service} from {before} to {replicas} replica(s)"

        return self._once(key, "scale", service, {"replicas": replicas}, act)

    def clear_fault(self, service: str, key: str, fault_id: str | None = None) -> tuple[ActionRecord, bool]:
        """Operator tooling for tests and demos: ends injected faults as if the cause went away."""

        def act() -> str:
            targets = [f for f in self._faults if f.active and f.service == service]
            if fault_id is not None:
                targets = [f for f in targets if f.id == fault_id]
                if not targets:
                    raise ActionRefused(f"no active fault {fault_id} on {service}")
            for f in targets:
                self._end(f, "cleared")
            if not targets:
                return f"no active fault on {service}; nothing changed"
            return "cleared " + ", ".join(f"{f.type.value} {f.id}" for f in targets)

        params = {"fault_id": fault_id} if fault_id else {}
        return self._once(key, "clear_fault", service, params, act)

    def _once(
        self, key: str, action: str, service: str, params: dict[str, Any], act: Callable[[], str]
    ) -> tuple[ActionRecord, bool]:
        """Run `act` at most once per key; a repeat returns the first record and True."""
        self._runtime(service)
        if not key:
            raise ValueError("key must not be empty")
        done = self._actions.get(key)
        if done is not None:
            if (done.action, done.service, done.params) != (action, service, params):
                raise ActionConflict(
                    f"key {key!r} was already used for {done.action} of {done.service}"
                    + (f" with {done.params}" if done.params else "")
                )
            return done, True
        detail = act()
        record = ActionRecord(key, action, service, "done", detail, self.now, params)
        self._actions[key] = record
        return record, False

    # ---- internals -----------------------------------------------------------------------------

    def _runtime(self, service: str) -> _Runtime:
        try:
            return self._rt[service]
        except KeyError:
            raise UnknownService(f"unknown service {service!r} (known: {', '.join(self.services)})") from None

    def _active(self, service: str, kind: FaultType) -> list[Fault]:
        return [f for f in self._faults if f.active and f.service == service and f.type is kind]

    def _add_fault(
        self,
        service: str,
        kind: FaultType,
        magnitude: float,
        duration_s: float | None,
        version: str | None = None,
    ) -> Fault:
        fault = Fault(
            f"f-{len(self._faults) + 1:04d}", service, kind, magnitude, self.now, duration_s, version=version
        )
        self._faults.append(fault)
        self._events.append(
            Event(self.now, service, "fault_started", {"fault": fault.id, "type": kind.value})
        )
        return fault

    def _end(self, fault: Fault, reason: str, at: float | None = None) -> None:
        fault.ended_at = self.now if at is None else at
        fault.ended_by = reason
        self._events.append(
            Event(fault.ended_at, fault.service, "fault_ended", {"fault": fault.id, "by": reason})
        )

    def _expire_faults(self, t: float) -> None:
        for f in self._faults:
            if f.active and f.ends_at is not None and f.ends_at <= t:
                self._end(f, "expired", at=f.ends_at)

    def _replace_processes(self, service: str, why: str) -> list[str]:
        """New processes: leaked memory, a CPU hog and queued requests are gone; a brief blip while
        replicas roll. Returns the faults this ended."""
        rt = self._rt[service]
        ended = []
        for kind in (FaultType.CPU, FaultType.MEMORY_LEAK):
            for f in self._active(service, kind):
                self._end(f, why)
                ended.append(f"{kind.value} {f.id}")
        rt.leaked_mb = 0.0
        rt.backlog = 0.0
        rt.restart_kind = "rolling"
        rt.restart_until = self.now + ROLLING_RESTART_S
        rt.totals.restarts += rt.replicas
        return ended

    def _record_change(self, change: ChangeEvent) -> None:
        self.changes.append(change)
        self._unsent_changes.append(change)

    def _all_versions(self, service: str) -> set[str]:
        rt = self._rt[service]
        return {rt.version, *rt.previous_versions}

    def _effects_at(self, service: str) -> _Effects:
        eff = _Effects()
        ok = 1.0
        for f in self._faults:
            if not f.active or f.service != service:
                continue
            match f.type:
                case FaultType.LATENCY:
                    eff.extra_ms += f.magnitude
                case FaultType.ERRORS:
                    ok *= 1.0 - f.magnitude
                case FaultType.CPU:
                    eff.cpu_hog = min(0.95, eff.cpu_hog + f.magnitude)
                case FaultType.MEMORY_LEAK:
                    eff.leak_mib_s += f.magnitude
                case FaultType.BAD_DEPLOY:
                    eff.bad_deploy = max(eff.bad_deploy, f.magnitude)
                case FaultType.OVERLOAD:
                    eff.overload *= f.magnitude
        eff.error_ratio = 1.0 - ok
        return eff

    def _load_factor(self, service: str, t: float) -> float:
        rt = self._rt[service]
        # Traffic noise is correlated from second to second, as real traffic is.
        rt.load_noise = 0.9 * rt.load_noise + float(self._rng.normal(0.0, 0.02))
        day = (t % 86400.0) / 86400.0
        daily = 1.0 + 0.15 * math.sin(2 * math.pi * (day - 0.375))  # peak at 15:00 UTC
        ripple = 1.0 + 0.04 * math.sin(2 * math.pi * t / 900.0)
        return daily * ripple * math.exp(rt.load_noise)

    def _serve(
        self,
        spec: ServiceSpec,
        offered: float,
        eff: _Effects,
        t: float,
        dt: float,
        callees: dict[str, ServiceStats],
    ) -> ServiceStats:
        rng = self._rng
        rt = self._rt[spec.name]
        events: list[Event] = []

        rt.leaked_mb += eff.leak_mib_s * dt
        if spec.memory_base_mb + rt.leaked_mb >= spec.memory_limit_mb:
            rt.leaked_mb = 0.0
            rt.backlog = 0.0
            rt.restart_kind, rt.restart_until = "oom", t + OOM_RESTART_S
            rt.totals.restarts += rt.replicas
            events.append(Event(t, spec.name, "oom_killed", {"limit_mb": spec.memory_limit_mb}))
        restarting = rt.restart_kind if t <= rt.restart_until else None
        # Replicas leak at the same pace and die together; with one replica nobody answers.
        unavailable = (1.0 if rt.replicas == 1 else 0.5) if restarting == "oom" else 0.0
        heap = (spec.memory_base_mb + rt.leaked_mb) / spec.memory_limit_mb
        gc = min(1.0, max(0.0, (heap - 0.75) / 0.2))  # garbage collection bites past 75% of the heap
        hog = eff.cpu_hog

        own_p50_ms = spec.latency_p50_ms * (1 + 0.5 * hog) * (1 + 2 * gc * gc)
        own_p50_ms *= (1.5 if eff.bad_deploy else 1.0) * (1.3 if restarting == "rolling" else 1.0)
        sigma = math.log(spec.latency_p99_ms / spec.latency_p50_ms) / _Z99
        own = rng.lognormal(math.log(own_p50_ms), sigma, SAMPLES)
        if eff.extra_ms:
            own += eff.extra_ms * rng.lognormal(0.0, 0.1, SAMPLES)
        own /= 1000.0
        total = own.copy()

        timeouts: dict[str, float] = {}
        callee_failures: dict[str, float] = {}
        edge_ok = 1.0
        for e in self.topology.calls_from(spec.name):
            total += self._call(e, rng)
            callee = callees[e.callee]
            slow = np.searchsorted(self._samples[e.callee], e.timeout_s, side="right")
            timed_out = 1.0 - slow / SAMPLES
            fail = 1.0 - (1.0 - callee.error_ratio) * (1.0 - timed_out)
            whole = int(e.calls)
            part = e.calls - whole
            reaches = 1.0 - (1.0 - fail) ** whole * (1.0 - part * fail)
            timeouts[e.callee] = float(timed_out)
            callee_failures[e.callee] = float(e.error_share * reaches)
            edge_ok *= 1.0 - callee_failures[e.callee]

        live_replicas = rt.replicas * (1.0 - unavailable)
        service_s = float(total.mean())
        if live_replicas <= 0:
            samples = rng.uniform(0.0005, 0.002, SAMPLES)  # connection refused comes back at once
            saturation = processed = cpu = 0.0
            shed = 0.0
        else:
            live = offered * (1.0 - unavailable)
            cpu_capacity = live_replicas * spec.capacity_rps * (1.0 - hog) * (1.0 - 0.3 * gc)
            # Little's law: requests waiting on slow dependencies hold threads without using CPU.
            pool_capacity = live_replicas * spec.concurrency / max(service_s, 1e-6)
            capacity = min(cpu_capacity, pool_capacity)
            saturation = live / capacity
            rt.backlog = max(0.0, rt.backlog + (live - capacity) * dt)
            shed = 0.0
            if rt.backlog > capacity * MAX_QUEUE_S:
                rt.backlog = capacity * MAX_QUEUE_S
                shed = max(0.0, 1.0 - capacity / live)
            cores = live_replicas * CORES_PER_REPLICA
            steady_wait = max(
                _queue_wait(live / cpu_capacity, cores, cores / cpu_capacity),
                _queue_wait(live / pool_capacity, live_replicas * spec.concurrency, service_s),
            )
            samples = total + steady_wait * rng.exponential(1.0, SAMPLES)
            if rt.backlog > 0:
                samples += rt.backlog / capacity * rng.uniform(0.8, 1.2, SAMPLES)
            if shed > 0:
                # Rejected requests have waited out the queue first.
                n = round(shed * SAMPLES)
                samples[:n] = MAX_QUEUE_S * rng.uniform(0.95, 1.05, n)
            processed = min(live, capacity)
            busy = processed / (live_replicas * spec.capacity_rps)
            cpu = (hog + busy) * (1.0 + float(rng.normal(0.0, 0.02))) + 0.25 * gc
            if live >= cpu_capacity:
                cpu = max(cpu, 0.99)  # noise on the work, not on the ceiling: saturated reads ~100%
        samples.sort()
        self._samples[spec.name] = samples
        rt.passthrough = processed / offered if offered > 0 else 1.0

        causes = {
            "base": spec.base_error_ratio,
            "injected": eff.error_ratio,
            "bad_deploy": eff.bad_deploy,
            "restart": 0.02 if restarting == "rolling" else 0.0,
            "unavailable": unavailable,
            "shed": shed,
        }
        ok = edge_ok
        for ratio in causes.values():
            ok *= 1.0 - ratio
        error_ratio = 0.0 if offered <= 0 else min(1.0, max(0.0, 1.0 - ok))

        p50, p99 = samples[SAMPLES // 2], samples[int(SAMPLES * 0.99)]
        inflight = processed * service_s / max(rt.replicas, 1)
        memory_mb = spec.memory_base_mb + rt.leaked_mb + 0.5 * inflight + float(rng.normal(0.0, 2.0))
        if unavailable >= 1.0:
            memory_mb = spec.memory_base_mb * 0.3  # processes still starting

        self._account(rt.totals, samples, offered * dt, error_ratio, unavailable)
        self._events.extend(events)
        return ServiceStats(
            name=spec.name,
            version=rt.version,
            replicas=rt.replicas,
            up=live_replicas > 0,
            request_rate=offered,
            error_ratio=error_ratio,
            latency_p50_s=float(p50),
            latency_p99_s=float(p99),
            cpu_utilization=min(1.0, max(0.0, cpu)),
            memory_bytes=max(0.0, memory_mb) * MIB,
            memory_limit_bytes=spec.memory_limit_mb * MIB,
            served_rate=processed,
            own_latency_p50_s=own_p50_ms / 1000.0 + eff.extra_ms / 1000.0,
            saturation=saturation,
            queue_depth=rt.backlog,
            gc_pressure=gc,
            cpu_hog=hog,
            restarting=restarting,
            error_causes={k: v for k, v in causes.items() if v > 0},
            timeouts=timeouts,
            callee_failures=callee_failures,
        )

    def _call(self, e: Edge, rng: np.random.Generator) -> np.ndarray:
        """Time each synthetic request spends in calls to one callee, cut at the call timeout."""
        callee = self._samples[e.callee]
        spent = np.zeros(SAMPLES)
        whole = int(e.calls)
        for _ in range(whole):
            spent += np.minimum(callee[rng.integers(0, SAMPLES, SAMPLES)], e.timeout_s)
        part = e.calls - whole
        if part > 0:
            made = rng.random(SAMPLES) < part
            spent += np.where(made, np.minimum(callee[rng.integers(0, SAMPLES, SAMPLES)], e.timeout_s), 0.0)
        return spent

    @staticmethod
    def _account(
        totals: Totals, samples: np.ndarray, requests: float, error_ratio: float, refused: float
    ) -> None:
        """`samples` must be sorted."""
        totals.requests += requests
        totals.errors += requests * error_ratio
        # Requests refused while replicas are down answer in about a millisecond: first bucket.
        answered = requests * (1.0 - refused)
        shares = np.searchsorted(samples, _BUCKET_EDGES, side="right") / SAMPLES
        for i, share in enumerate(shares.tolist()):
            totals.bucket_counts[i] += answered * share + requests * refused
        totals.duration_count += requests
        totals.duration_sum += answered * float(samples.mean()) + requests * refused * 0.001


def _queue_wait(rho: float, servers: float, service_s: float) -> float:
    """Mean wait in an M/M/c queue (Sakasegawa's approximation). Past rho ~1 the backlog takes over,
    so rho is held just below 1 here."""
    rho = min(rho, 0.97)
    if rho <= 0 or servers <= 0:
        return 0.0
    return service_s * rho ** (math.sqrt(2 * (servers + 1)) - 1) / (servers * (1 - rho))


def _next_version(version: str, taken: set[str]) -> str:
    """The next patch version not used before at this service (1.4.2 -> 1.4.3)."""
    head, _, last = version.rpartition(".")
    n = int(last) if last.isdigit() else 0
    prefix = f"{head}." if head else ""
    while True:
        n += 1
        candidate = f"{prefix}{n}" if last.isdigit() else f"{version}.{n}"
        if candidate not in taken:
            return candidate
