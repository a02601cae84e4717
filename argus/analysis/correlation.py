"""Correlation: which live group a new alert belongs with, across sources and along the topology.

A failing database makes its service error, its callers slow, and their logs fill with
timeouts: four alerts from three sources, one incident. Before the Alert Router opens a new
group for an alert, it asks `pick_related` whether a recent group is about the same service
(a log-error spike from Elasticsearch and a latency rise from Prometheus) or a service close
to it in the dependency map, and attaches the alert there, with the reason spelled out.

Rules, all explained in the reason:
* same receiver only (correlation never changes who is told);
* the group's first alert is at most `window` old, and the group still has a firing alert;
* the alert's service is the group's, or within `max_hops` edges of one of its services in
  the topology, either direction (callers and callees both show the symptom);
* nearest first (same service before one hop before two), then the oldest group: the one
  that fired first is usually nearest to the root cause.

Pure and deterministic: the router runs inside the Monitoring workflow.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from argus.models.monitoring import CorrelationConfig


@dataclass
class GroupView:
    """What correlation needs to know about one live group."""

    key: str
    receiver: str
    created_at: datetime
    services: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    firing: bool = True


@dataclass
class Correlation:
    group_key: str
    hops: int
    reason: str


def neighbours(topology: list[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for caller, callee in topology:
        graph.setdefault(caller, set()).add(callee)
        graph.setdefault(callee, set()).add(caller)
    return graph


def shortest_path(graph: dict[str, set[str]], a: str, b: str, max_hops: int) -> list[str] | None:
    """Nodes from a to b (inclusive) over at most `max_hops` edges, ignoring direction."""
    if a == b:
        return [a]
    if a not in graph or b not in graph:
        return None
    prev: dict[str, str] = {}
    queue = deque([(a, 0)])
    seen = {a}
    while queue:
        node, depth = queue.popleft()
        if depth >= max_hops:
            continue
        for nxt in sorted(graph[node]):
            if nxt in seen:
                continue
            seen.add(nxt)
            prev[nxt] = node
            if nxt == b:
                path = [b]
                while path[-1] != a:
                    path.append(prev[path[-1]])
                return path[::-1]
            queue.append((nxt, depth + 1))
    return None


def describe_path(path: list[str], topology: list[tuple[str, str]]) -> str:
    edges = set(topology)
    parts = []
    for x, y in pairwise(path):
        parts.append(f"{x} depends on {y}" if (x, y) in edges else f"{y} depends on {x}")
    return ", ".join(parts)


class Topology:
    """The dependency map as an undirected graph, with distances from a service cached."""

    def __init__(self, edges: list[tuple[str, str]]) -> None:
        self.edges = edges
        self.graph = neighbours(edges)
        self._distances: dict[tuple[str, int], dict[str, int]] = {}

    def distances(self, service: str, max_hops: int) -> dict[str, int]:
        """Every service within `max_hops` of `service` (itself at 0)."""
        key = (service, max_hops)
        found = self._distances.get(key)
        if found is None:
            found = {service: 0}
            frontier = [service]
            for hop in range(1, max_hops + 1):
                nxt = []
                for node in frontier:
                    for other in self.graph.get(node, ()):
                        if other not in found:
                            found[other] = hop
                            nxt.append(other)
                frontier = nxt
            self._distances[key] = found
        return found


def pick_related(
    service: str | None,
    receiver: str,
    now: datetime,
    groups: list[GroupView],
    config: CorrelationConfig,
    topology: Topology | None = None,
) -> tuple[GroupView, int, str] | None:
    """The live group an alert of `service` belongs with, how many hops away, and through which
    of its services: the nearest in the topology (the same service first), then the oldest.
    `groups` may be just the ones holding a nearby service."""
    if not config.enabled or not service:
        return None
    topo = topology or Topology(config.topology)
    near = topo.distances(service, config.max_hops)
    best: tuple[int, datetime, str, GroupView, str] | None = None
    for g in groups:
        if g.receiver != receiver or not g.firing or now - g.created_at > config.window:
            continue
        hits = [(near[s], s) for s in g.services if s in near]
        if not hits:
            continue
        hops, other = min(hits)
        candidate = (hops, g.created_at, g.key, g, other)
        if best is None or candidate[:3] < best[:3]:
            best = candidate
    if best is None:
        return None
    hops, _, _, g, other = best
    return g, hops, other


def explain_related(
    service: str,
    source: str,
    now: datetime,
    picked: tuple[GroupView, int, str],
    config: CorrelationConfig,
    topology: Topology | None = None,
) -> Correlation:
    """The decision `pick_related` made, with its reason spelled out."""
    g, hops, other = picked
    topo = topology or Topology(config.topology)
    age = now - g.created_at
    if hops == 0:
        src = f" (this alert from {source}; the group has alerts from {', '.join(sorted(g.sources))})"
        why = f"same service {service!r}{src if g.sources - {source} else ''}"
    else:
        path = shortest_path(topo.graph, service, other, config.max_hops) or [service, other]
        plural = "s" if hops > 1 else ""
        why = f"{describe_path(path, topo.edges)} ({hops} hop{plural} in the topology)"
    reason = (
        f"correlated into group {g.key}: {why}; that group opened {int(age.total_seconds())}s ago, "
        f"within the correlation window {config.window}"
    )
    return Correlation(g.key, hops, reason)


__all__ = [
    "Correlation",
    "GroupView",
    "Topology",
    "describe_path",
    "explain_related",
    "neighbours",
    "pick_related",
    "shortest_path",
]
