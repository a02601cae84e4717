"""Correlation: which live group a new alert belongs with, across sources and along the topology.

A failing database makes its service error, its callers slow, and their logs fill with
timeouts: four alerts from three sources, one incident. Before the Alert Router opens a new
group for an alert, it asks `rank_related` and `first_fit` whether a recent group is about the same service
(a log-error spike from Elasticsearch and a latency rise from Prometheus) or a service close
to it in the dependency map, and attaches the alert there, with the reason spelled out.

Rules, all explained in the reason:
* same receiver only (correlation never changes who is told);
* the group's first alert is at most `window` old, and the group still has a firing alert;
* the alert began firing (its startsAt) at most `window` before the group's first alert did:
  an alert firing for hours that reaches the router only now (sent late, or released when its
  silence ended) is not a symptom of what began a minute ago;
* the alert's service is the group's, or within `max_hops` edges of one of its services along
  a chain of `depends_on`, either way round: the alert's service depends (through at most
  `max_hops` edges) on one of the group's, or one of the group's on it (a failing dependency
  makes its callers fail, directly or through others). Two services that only share a caller
  or a dependency are not related through it: every backend of a gateway would otherwise be
  one incident;
* nearest first (same service before one hop before two), then the oldest group: the one
  that fired first is usually nearest to the root cause.

Pure and deterministic: the router runs inside the Monitoring workflow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from argus.models.monitoring import CorrelationConfig


@dataclass
class GroupView:
    """What correlation needs to know about one live group."""

    key: str
    receiver: str
    created_at: datetime
    # (read-only sets: the router passes views of its live counts, not copies; a change to them
    # starts a new correlation generation, so a remembered ranking never sees one)
    services: AbstractSet[str] = field(default_factory=set)
    sources: AbstractSet[str] = field(default_factory=set)
    firing: bool = True
    # When the alert that opened the group began firing (its startsAt); None: unknown, then
    # `created_at` stands for it.
    onset: datetime | None = None

    def began(self) -> datetime:
        """When what the group is about began: its first alert's start, at most its opening."""
        return self.onset if self.onset is not None and self.onset < self.created_at else self.created_at


@dataclass
class Correlation:
    group_key: str
    hops: int
    reason: str


# A group an alert may join, as `rank_related` orders them: hops, opening, key, the group, and
# which of its services is that near.
Candidate = tuple[int, datetime, str, GroupView, str]


def neighbours(topology: list[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for caller, callee in topology:
        graph.setdefault(caller, set()).add(callee)
        graph.setdefault(callee, set()).add(caller)
    return graph


def directed(topology: list[tuple[str, str]], reverse: bool = False) -> dict[str, set[str]]:
    """Each service's dependencies (its callers with `reverse`)."""
    graph: dict[str, set[str]] = {}
    for caller, callee in topology:
        a, b = (callee, caller) if reverse else (caller, callee)
        graph.setdefault(a, set()).add(b)
    return graph


def shortest_path(graph: dict[str, set[str]], a: str, b: str, max_hops: int) -> list[str] | None:
    """Nodes from a to b (inclusive) over at most `max_hops` edges of `graph` (as given: pass
    `neighbours` to ignore direction)."""
    if a == b:
        return [a]
    if a not in graph:
        return None
    prev: dict[str, str] = {}
    queue = deque([(a, 0)])
    seen = {a}
    while queue:
        node, depth = queue.popleft()
        if depth >= max_hops:
            continue
        for nxt in sorted(graph.get(node, ())):  # sorted: the same path on every replay
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


def _bfs(graph: dict[str, set[str]], service: str, max_hops: int) -> dict[str, int]:
    found = {service: 0}
    frontier = [service]
    for hop in range(1, max_hops + 1):
        nxt = []
        for node in frontier:
            for other in graph.get(node, ()):
                if other not in found:
                    found[other] = hop
                    nxt.append(other)
        frontier = nxt
    return found


class Topology:
    """The dependency map, with distances from a service cached.

    `directed` (the default): services are related along chains of `depends_on` only, either
    way round (what a service depends on, through others, and what depends on it). Off: the
    map as an undirected graph, as runs of the monitoring workflow begun before replay it
    (two callees of one caller were related through it)."""

    def __init__(self, edges: list[tuple[str, str]], directed_: bool = True) -> None:
        self.edges = edges
        self.graph = neighbours(edges)
        self.callees = directed(edges)
        self.callers = directed(edges, reverse=True)
        self.directed = directed_
        self._distances: dict[tuple[str, int, bool], dict[str, int]] = {}

    def distances(self, service: str, max_hops: int) -> dict[str, int]:
        """Every service within `max_hops` of `service` (itself at 0)."""
        key = (service, max_hops, self.directed)
        found = self._distances.get(key)
        if found is None:
            if self.directed:
                found = _bfs(self.callers, service, max_hops)
                for other, hops in _bfs(self.callees, service, max_hops).items():
                    found[other] = min(hops, found.get(other, hops))
            else:
                found = _bfs(self.graph, service, max_hops)
            self._distances[key] = found
        return found

    def path(self, a: str, b: str, max_hops: int) -> list[str] | None:
        """A shortest path from a to b as `distances` counts it (dependencies first on a tie)."""
        if not self.directed:
            return shortest_path(self.graph, a, b, max_hops)
        down = shortest_path(self.callees, a, b, max_hops)
        up = shortest_path(self.callers, a, b, max_hops)
        if down is None or (up is not None and len(up) < len(down)):
            return up
        return down


def rank_related(
    service: str | None,
    receiver: str,
    now: datetime,
    groups: list[GroupView],
    config: CorrelationConfig,
    topology: Topology | None = None,
) -> list[Candidate]:
    """The live groups an alert of `service` may join, best first (nearest in the topology, the
    same service first, then the oldest), before the alert's own start is looked at: what does
    not depend on the alert, so that the router can remember it for the next alert."""
    if not config.enabled or not service:
        return []
    topo = topology or Topology(config.topology)
    near = topo.distances(service, config.max_hops)
    ranked: list[Candidate] = []
    for g in groups:
        if g.receiver != receiver or not g.firing or now - g.created_at > config.window:
            continue
        # whichever side is smaller: a group may hold hundreds of services, `near` a handful
        if len(near) < len(g.services):
            hits = [(hops, s) for s, hops in near.items() if s in g.services]
        else:
            hits = [(near[s], s) for s in g.services if s in near]
        if not hits:
            continue
        hops, other = min(hits)
        ranked.append((hops, g.created_at, g.key, g, other))
    ranked.sort(key=lambda c: c[:3])
    return ranked


def first_fit(
    ranked: list[Candidate], now: datetime, config: CorrelationConfig, started: datetime | None = None
) -> tuple[GroupView, int, str] | None:
    """The best of `ranked` still within the window at `now` and, for an alert that began
    firing at `started`, begun at most `window` after it."""
    for hops, _, _, g, other in ranked:
        if now - g.created_at > config.window:
            continue
        if started is not None and g.began() - started > config.window:
            continue
        return g, hops, other
    return None


def explain_related(
    service: str,
    source: str,
    now: datetime,
    picked: tuple[GroupView, int, str],
    config: CorrelationConfig,
    topology: Topology | None = None,
    started: datetime | None = None,
) -> Correlation:
    """The pick `first_fit` made, with its reason spelled out. With `started` (the
    alert's start) the reason also names the signals on both sides and when the alert began."""
    g, hops, other = picked
    topo = topology or Topology(config.topology)
    age = now - g.created_at
    theirs = ", ".join(sorted(g.sources))
    if hops == 0:
        src = f" (this alert from {source}; the group has alerts from {theirs})"
        why = f"same service {service!r}{src if g.sources - {source} else ''}"
    else:
        path = topo.path(service, other, config.max_hops) or [service, other]
        plural = "s" if hops > 1 else ""
        signals = f"; this alert from {source}, the group's from {theirs}" if started is not None else ""
        why = f"{describe_path(path, topo.edges)} ({hops} hop{plural} in the topology{signals})"
    began = ""
    if started is not None:
        began = f"; this alert began firing {_seconds(now - started)}s ago"
    reason = (
        f"correlated into group {g.key}: {why}; that group opened {int(age.total_seconds())}s ago, "
        f"within the correlation window {config.window}{began}"
    )
    return Correlation(g.key, hops, reason)


def _seconds(d: timedelta) -> int:
    return int(d.total_seconds())


__all__ = [
    "Candidate",
    "Correlation",
    "GroupView",
    "Topology",
    "describe_path",
    "directed",
    "explain_related",
    "first_fit",
    "neighbours",
    "rank_related",
    "shortest_path",
]
