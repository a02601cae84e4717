"""Correlation: which live group a new alert belongs with, across sources and along the topology.

A failing database makes its service error, its callers slow, and their logs fill with
timeouts: four alerts from three sources, one incident. Before the Alert Router opens a new
group for an alert, it asks `find_related` whether a recent group is about the same service
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


def find_related(
    service: str | None,
    source: str,
    receiver: str,
    now: datetime,
    groups: list[GroupView],
    config: CorrelationConfig,
) -> Correlation | None:
    if not config.enabled or not service:
        return None
    graph = neighbours(config.topology)
    best: tuple[int, datetime, str, Correlation] | None = None
    for g in groups:
        if g.receiver != receiver or not g.firing:
            continue
        age = now - g.created_at
        if age > config.window:
            continue
        for other in sorted(g.services):
            path = shortest_path(graph, service, other, config.max_hops)
            if path is None:
                continue
            hops = len(path) - 1
            if hops == 0:
                src = f" (this alert from {source}; the group has alerts from {', '.join(sorted(g.sources))})"
                why = f"same service {service!r}{src if g.sources - {source} else ''}"
            else:
                plural = "s" if hops > 1 else ""
                why = f"{describe_path(path, config.topology)} ({hops} hop{plural} in the topology)"
            reason = (
                f"correlated into group {g.key}: {why}; that group opened {int(age.total_seconds())}s ago, "
                f"within the correlation window {config.window}"
            )
            candidate = (hops, g.created_at, g.key, Correlation(g.key, hops, reason))
            if best is None or candidate[:3] < best[:3]:
                best = candidate
    return best[3] if best else None


__all__ = ["Correlation", "GroupView", "describe_path", "find_related", "neighbours", "shortest_path"]
