"""The shape of the simulated system: its services, what each can bear, and who calls whom."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ServiceKind = Literal["web", "app", "db"]


@dataclass(frozen=True)
class ServiceSpec:
    """A service at rest. Capacities are per replica, so scaling is the only lever the world needs."""

    name: str
    kind: ServiceKind = "app"
    latency_p50_ms: float = 20.0
    latency_p99_ms: float = 80.0
    capacity_rps: float = 50.0  # requests/s one replica serves at 100% CPU
    concurrency: int = 32  # requests one replica can hold in flight (threads, connections)
    replicas: int = 2
    memory_base_mb: float = 256.0
    memory_limit_mb: float = 512.0
    base_error_ratio: float = 0.001
    version: str = "1.0.0"
    entry_rps: float = 0.0  # traffic arriving from outside the graph

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a service needs a name")
        if self.latency_p99_ms <= self.latency_p50_ms or self.latency_p50_ms <= 0:
            raise ValueError(f"{self.name}: need 0 < latency_p50_ms < latency_p99_ms")
        if self.capacity_rps <= 0 or self.concurrency < 1 or self.replicas < 1:
            raise ValueError(f"{self.name}: capacity_rps, concurrency and replicas must be positive")
        if self.memory_limit_mb <= self.memory_base_mb:
            raise ValueError(f"{self.name}: memory_limit_mb must exceed memory_base_mb")

    @property
    def port(self) -> int:
        return {"web": 8080, "app": 8080, "db": 5432}[self.kind]


@dataclass(frozen=True)
class Edge:
    """A dependency. `calls` is calls per caller request (0.3: three requests in ten make the call)."""

    caller: str
    callee: str
    calls: float = 1.0
    timeout_s: float = 1.0
    # Callers often degrade instead of failing outright (cached prices, "stock unknown"),
    # so only this share of failed calls turns into a failed caller request.
    error_share: float = 0.9

    def __post_init__(self) -> None:
        if self.caller == self.callee:
            raise ValueError(f"{self.caller} cannot call itself")
        if not 0 < self.calls <= 5:
            raise ValueError(f"{self.caller}->{self.callee}: calls must be in (0, 5]")
        if self.timeout_s <= 0 or not 0 <= self.error_share <= 1:
            raise ValueError(f"{self.caller}->{self.callee}: need timeout_s > 0 and error_share in [0, 1]")


@dataclass(frozen=True)
class Topology:
    services: tuple[ServiceSpec, ...]
    edges: tuple[Edge, ...]
    order: tuple[str, ...] = field(init=False)  # callers before callees

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        known = set(names)
        seen: set[tuple[str, str]] = set()
        for e in self.edges:
            for end in (e.caller, e.callee):
                if end not in known:
                    raise ValueError(f"edge {e.caller}->{e.callee}: unknown service {end!r}")
            if (e.caller, e.callee) in seen:
                raise ValueError(f"edge {e.caller}->{e.callee} appears twice")
            seen.add((e.caller, e.callee))
        object.__setattr__(self, "order", _topological_order(names, self.edges))
        if not any(s.entry_rps > 0 for s in self.services):
            raise ValueError("no service receives outside traffic (set entry_rps on at least one)")

    def spec(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def pairs(self) -> list[tuple[str, str]]:
        return [(e.caller, e.callee) for e in self.edges]

    def calls_from(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.caller == name]

    def calls_to(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.callee == name]

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[str, str] | list[str]],
        specs: Mapping[str, Mapping[str, Any]] | None = None,
        entry_rps: float = 100.0,
    ) -> Topology:
        """Build from (caller, callee) pairs; services missing from `specs` get defaults by name,
        and services nobody calls receive `entry_rps` of outside traffic."""
        edge_list = [Edge(str(a), str(b)) for a, b in pairs]
        specs = specs or {}
        names: list[str] = []
        for e in edge_list:
            for n in (e.caller, e.callee):
                if n not in names:
                    names.append(n)
        names += [n for n in specs if n not in names]
        called = {e.callee for e in edge_list}
        services = []
        for n in names:
            overrides = dict(specs.get(n, {}))
            base = _default_spec(n, entry_rps if n not in called else 0.0)
            services.append(replace(base, **overrides))
        return cls(tuple(services), tuple(edge_list))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """`{"edges": [[a, b] | {"caller", "callee", "calls"?, ...}], "services": {name: {...}}}`."""
        raw_edges = data.get("edges")
        if not raw_edges:
            raise ValueError("topology needs a non-empty 'edges' list")
        pairs = [(e["caller"], e["callee"]) if isinstance(e, Mapping) else tuple(e) for e in raw_edges]
        topo = cls.from_pairs(pairs, data.get("services"), float(data.get("entry_rps", 100.0)))
        extras = {(e["caller"], e["callee"]): e for e in raw_edges if isinstance(e, Mapping)}
        edges = tuple(
            replace(
                e, **{k: v for k, v in extras[e.caller, e.callee].items() if k not in ("caller", "callee")}
            )
            if (e.caller, e.callee) in extras
            else e
            for e in topo.edges
        )
        return cls(topo.services, edges)


def _default_spec(name: str, entry_rps: float) -> ServiceSpec:
    if name.endswith("db") or name.endswith("database"):
        return ServiceSpec(
            name, kind="db", latency_p50_ms=4.0, latency_p99_ms=20.0, capacity_rps=250.0, replicas=1,
            concurrency=100, memory_base_mb=1024.0, memory_limit_mb=2048.0,
        )  # fmt: skip
    kind: ServiceKind = "web" if entry_rps > 0 else "app"
    return ServiceSpec(name, kind=kind, entry_rps=entry_rps)


def _topological_order(names: list[str], edges: tuple[Edge, ...]) -> tuple[str, ...]:
    indegree = {n: 0 for n in names}
    for e in edges:
        indegree[e.callee] += 1
    ready = [n for n in names if indegree[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for e in edges:
            if e.caller == n:
                indegree[e.callee] -= 1
                if indegree[e.callee] == 0:
                    ready.append(e.callee)
    if len(order) != len(names):
        cyclic = sorted(n for n in names if n not in order)
        raise ValueError(f"the call graph has a cycle through {cyclic}")
    return tuple(order)


# Headroom is deliberate: the frontend runs at ~70% CPU so a surge saturates it first, and the
# services behind it absorb a doubled load once the frontend is scaled, even at the daily peak
# (+15%, see World._load_factor); the databases are fast and roomy, so a fault placed there shows
# mostly upstream.
DEFAULT_TOPOLOGY = Topology(
    services=(
        ServiceSpec("frontend", kind="web", latency_p50_ms=12, latency_p99_ms=45, capacity_rps=50,
                    concurrency=64, replicas=3, memory_base_mb=300, memory_limit_mb=768,
                    version="3.8.1", entry_rps=100.0),
        ServiceSpec("checkout", latency_p50_ms=25, latency_p99_ms=90, capacity_rps=60, concurrency=32,
                    replicas=2, version="2.4.0"),
        ServiceSpec("catalog", latency_p50_ms=15, latency_p99_ms=55, capacity_rps=100, concurrency=48,
                    replicas=3, version="5.1.3"),
        ServiceSpec("payments", latency_p50_ms=40, latency_p99_ms=150, capacity_rps=60, concurrency=24,
                    replicas=2, memory_base_mb=384, memory_limit_mb=768, version="1.12.0"),
        ServiceSpec("inventory", latency_p50_ms=10, latency_p99_ms=35, capacity_rps=150, concurrency=48,
                    replicas=2, version="4.0.7"),
        ServiceSpec("payments-db", kind="db", latency_p50_ms=5, latency_p99_ms=25, capacity_rps=200,
                    concurrency=100, replicas=1, memory_base_mb=1024, memory_limit_mb=2048,
                    version="15.4"),
        ServiceSpec("inventory-db", kind="db", latency_p50_ms=3, latency_p99_ms=15, capacity_rps=250,
                    concurrency=100, replicas=1, memory_base_mb=1024, memory_limit_mb=2048,
                    version="15.4"),
    ),
    edges=(
        Edge("frontend", "checkout", calls=0.3, timeout_s=3.0),
        Edge("frontend", "catalog", calls=0.9, timeout_s=2.0),
        Edge("checkout", "payments", calls=1.0, timeout_s=2.0),
        Edge("checkout", "inventory", calls=1.0, timeout_s=1.0),
        Edge("payments", "payments-db", calls=2.0, timeout_s=1.0),
        Edge("catalog", "inventory", calls=0.5, timeout_s=1.0, error_share=0.3),
        Edge("inventory", "inventory-db", calls=1.0, timeout_s=1.0),
    ),
)  # fmt: skip
