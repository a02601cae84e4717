"""Trace evidence for root-cause ranking: where failures originate and where time is spent.

Traces say what metrics cannot: a caller's failing span whose failing child runs in another
service is not where the error began. Per trace, a failing span with no failing child is an
*error origin*; a span's *self time* is its duration minus the union of its children's (time
spent in its own code, not waiting on callees). Per service, both are compared after the
anomaly onset against before it, rates per second as for log evidence; a service whose error
origins or self-time p95 jumped becomes a finding, with exemplar trace ids people can open.

Pure: the caller fetches the spans (a `TraceSource`) and passes them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from argus.analysis.rca import LogEvidence
from argus.models.traces import SpanRecord

TAG = "[trace]"


@dataclass
class TraceFinding:
    service: str
    kind: str  # errors | latency
    summary: str
    count: float  # after the onset
    baseline_count: float  # before it, scaled to the after-window's length
    first_seen: float | None
    trace_ids: list[str] = field(default_factory=list)

    def as_log_evidence(self) -> LogEvidence:
        return LogEvidence(
            service=self.service,
            template=self.summary,
            count=self.count,
            baseline_count=self.baseline_count,
            first_seen=self.first_seen,
        )


@dataclass
class TraceOptions:
    min_count: int = 3  # error origins / slow spans after onset for a finding
    min_ratio: float = 2.0  # after-rate over before-rate
    min_latency_ms: float = 50.0  # an absolute self-time p95 increase below this is noise
    min_samples: int = 5
    max_trace_ids: int = 5


def _self_time(span: SpanRecord, children: list[SpanRecord]) -> float:
    """Duration minus the union of the children's intervals inside the span."""
    if not children:
        return span.duration
    lo, hi = span.start, span.start + span.duration
    ivs = sorted((max(c.start, lo), min(c.start + c.duration, hi)) for c in children)
    covered, cur_s, cur_e = 0.0, None, None
    for s, e in ivs:
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                covered += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        covered += cur_e - cur_s  # type: ignore[operator]
    return max(span.duration - covered, 0.0)


@dataclass
class _Tally:
    origins_before: int = 0
    origins_after: list[SpanRecord] = field(default_factory=list)
    self_before: list[float] = field(default_factory=list)
    self_after: list[tuple[float, SpanRecord]] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    messages: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def trace_findings(
    spans: Iterable[SpanRecord],
    onset: float,
    window_start: float,
    window_end: float,
    options: TraceOptions | None = None,
) -> list[TraceFinding]:
    opt = options or TraceOptions()
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for trace in by_trace.values():
        children: dict[str, list[SpanRecord]] = defaultdict(list)
        for s in trace:
            if s.parent_id:
                children[s.parent_id].append(s)
        for s in trace:
            if not window_start <= s.start <= window_end:
                continue
            t = tallies[s.service]
            kids = children.get(s.span_id, [])
            after = s.start >= onset
            if s.error and not any(k.error for k in kids):
                if after:
                    t.origins_after.append(s)
                    t.ops[s.name] += 1
                    if s.status_message:
                        t.messages[s.status_message[:120]] += 1
                else:
                    t.origins_before += 1
            st = _self_time(s, kids)
            if after:
                t.self_after.append((st, s))
            else:
                t.self_before.append(st)

    before_len = max(onset - window_start, 1e-9)
    after_len = max(window_end - onset, 1e-9)
    scale = after_len / before_len
    out: list[TraceFinding] = []
    for service, t in sorted(tallies.items()):
        n_after = len(t.origins_after)
        base = t.origins_before * scale
        if n_after >= opt.min_count and (n_after + 1) / (base + 1) >= opt.min_ratio:
            op = max(t.ops, key=t.ops.get) if t.ops else ""  # type: ignore[arg-type]
            msg = max(t.messages, key=t.messages.get) if t.messages else ""  # type: ignore[arg-type]
            first = sorted(t.origins_after, key=lambda s: s.start)
            out.append(
                TraceFinding(
                    service=service,
                    kind="errors",
                    summary=f"{TAG} {n_after} failing span(s) originate in {service}"
                    + (f" ({op}" + (f": {msg}" if msg else "") + ")" if op else ""),
                    count=float(n_after),
                    baseline_count=round(base, 2),
                    first_seen=first[0].start,
                    trace_ids=_distinct([s.trace_id for s in first], opt.max_trace_ids),
                )
            )
        if len(t.self_before) >= opt.min_samples and len(t.self_after) >= opt.min_samples:
            p_before = float(np.percentile(t.self_before, 95))
            p_after = float(np.percentile([x for x, _ in t.self_after], 95))
            grew = p_after >= opt.min_ratio * max(p_before, 1e-6)
            if grew and (p_after - p_before) * 1000 >= opt.min_latency_ms:
                slow_cut = max(opt.min_ratio * p_before, p_before + opt.min_latency_ms / 1000)
                slow = [(x, s) for x, s in t.self_after if x >= slow_cut]
                slow_before = sum(1 for x in t.self_before if x >= slow_cut) * scale
                if len(slow) >= opt.min_count:
                    ops: dict[str, int] = defaultdict(int)
                    for _, s in slow:
                        ops[s.name] += 1
                    op = max(ops, key=ops.get)  # type: ignore[arg-type]
                    worst = sorted(slow, key=lambda xs: -xs[0])
                    out.append(
                        TraceFinding(
                            service=service,
                            kind="latency",
                            summary=f"{TAG} self time p95 {p_before * 1e3:.0f} ms -> {p_after * 1e3:.0f} ms "
                            f"in {service} ({op}; {len(slow)} slow span(s))",
                            count=float(len(slow)),
                            baseline_count=round(slow_before, 2),
                            first_seen=min(s.start for _, s in slow),
                            trace_ids=_distinct([s.trace_id for _, s in worst], opt.max_trace_ids),
                        )
                    )
    return out


def _distinct(ids: list[str], n: int) -> list[str]:
    return list(dict.fromkeys(ids))[:n]


def exemplar_trace_ids(findings: list[TraceFinding], services: list[str], n: int = 10) -> list[str]:
    """Trace ids for people: findings of the given services first (the top hypotheses)."""
    order = {s: i for i, s in enumerate(services)}
    ranked = sorted(findings, key=lambda f: (order.get(f.service, len(order)), f.kind != "errors"))
    return _distinct([t for f in ranked for t in f.trace_ids], n)
