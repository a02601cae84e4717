"""Trace evidence for RCA (argus/analysis/trace_rca.py), on hand-built call trees: a failing span
with no failing child is where an error originates (its failing callers are not); self time is
a span's duration minus the union of its children's, so a caller that only waits longer on a
slow callee shows no latency jump of its own; both are compared after the onset against before,
and the exemplar trace ids follow the ranking."""

from __future__ import annotations

import itertools
from dataclasses import replace

from argus.analysis.trace_rca import TraceOptions, _self_time, exemplar_trace_ids, trace_findings
from argus.models.traces import SpanRecord

ONSET = 10_000.0
START, END = ONSET - 600, ONSET + 300
_ids = itertools.count(1)


def span(trace: str, service: str, start: float, duration: float, parent: str = "", **kw) -> SpanRecord:
    return SpanRecord(
        trace_id=trace, span_id=f"{next(_ids):016x}", parent_id=parent, service=service,
        name=kw.pop("name", f"{service} op"), start=start, duration=duration, **kw,
    )  # fmt: skip


def request(
    t: float, *, fail: bool = False, pay_self: float = 0.02, caller_self: float = 0.005
) -> list[SpanRecord]:
    """frontend -> checkout -> payments; payments fails or is slow in its own code; the callers
    fail only because payments did, and spend only `caller_self` of their own."""
    trace = f"{next(_ids):032x}"
    fe = span(trace, "frontend", t, 0.0)
    co = span(trace, "checkout", t + 0.001, 0.0, fe.span_id)
    pay = span(trace, "payments", t + 0.002, pay_self, co.span_id, error=fail,
               status_message="card processor timeout" if fail else "", name="charge")  # fmt: skip
    co_end = pay.start + pay.duration + caller_self
    co = replace(co, duration=co_end - co.start, error=fail)
    fe_end = co_end + caller_self
    fe = replace(fe, duration=fe_end - fe.start, error=fail)
    return [fe, co, pay]


def window(
    before: int = 60, after: int = 30, fail_after: float = 0.0, slow_after: bool = False
) -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for i in range(before):
        spans += request(START + i * (600 / before))
    for i in range(after):
        spans += request(
            ONSET + 1 + i * (290 / after), fail=i < fail_after * after, pay_self=0.4 if slow_after else 0.02
        )
    return spans


def by(findings, kind: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {f.service: f for f in findings if f.kind == kind}


def test_errors_originate_in_the_failing_span_with_no_failing_child():
    found = trace_findings(window(fail_after=0.5), ONSET, START, END)
    errors = by(found, "errors")
    assert set(errors) == {"payments"}, "callers that failed because payments failed are not origins"
    f = errors["payments"]
    assert f.count == 15 and f.baseline_count == 0
    assert "charge" in f.summary and "card processor timeout" in f.summary and f.summary.startswith("[trace]")
    assert f.first_seen is not None and f.first_seen >= ONSET
    assert 1 <= len(f.trace_ids) <= 5 and all(len(t) == 32 for t in f.trace_ids)


def test_a_steady_error_rate_is_no_finding():
    spans = []
    for i in range(60):  # one in five failing, before and after alike
        t = START + i * 15
        spans += request(t, fail=i % 5 == 0)
    assert by(trace_findings(spans, ONSET, START, END), "errors") == {}


def test_too_few_failures_are_no_finding():
    spans = window(fail_after=0.0) + request(ONSET + 5, fail=True) + request(ONSET + 6, fail=True)
    assert by(trace_findings(spans, ONSET, START, END), "errors") == {}  # 2 < min_count 3
    assert "payments" in by(trace_findings(spans, ONSET, START, END, TraceOptions(min_count=2)), "errors")


def test_self_time_points_at_the_slow_service_not_at_its_waiting_callers():
    found = trace_findings(window(slow_after=True), ONSET, START, END)
    latency = by(found, "latency")
    assert set(latency) == {"payments"}, latency
    f = latency["payments"]
    assert "20 ms -> 400 ms" in f.summary and "charge" in f.summary
    assert f.count == 30 and f.baseline_count == 0
    assert by(found, "errors") == {}


def test_a_small_absolute_increase_is_noise():
    spans = []
    for i in range(60):
        spans += request(START + i * 10, pay_self=0.001)
    for i in range(30):
        spans += request(ONSET + 1 + i * 9, pay_self=0.004)  # 4x, but only 3 ms more
    assert trace_findings(spans, ONSET, START, END) == []


def test_spans_outside_the_window_are_ignored():
    spans = window() + [s for i in range(20) for s in request(END + 10 + i, fail=True)]
    assert trace_findings(spans, ONSET, START, END) == []


def test_self_time_subtracts_the_union_of_children():
    parent = span("t" * 32, "checkout", 0.0, 1.0)
    kids = [
        span("t" * 32, "a", 0.1, 0.3, parent.span_id),  # 0.1-0.4
        span("t" * 32, "b", 0.2, 0.4, parent.span_id),  # 0.2-0.6, overlaps a (parallel calls)
        span("t" * 32, "c", 0.8, 0.5, parent.span_id),  # 0.8-1.3, clipped to the parent's end
    ]
    assert abs(_self_time(parent, kids) - (1.0 - 0.5 - 0.2)) < 1e-9
    assert _self_time(parent, []) == 1.0
    assert _self_time(span("t" * 32, "x", 0.0, 0.1), [span("t" * 32, "y", 0.0, 0.5)]) == 0.0


def test_exemplar_trace_ids_follow_the_ranking():
    spans = window(fail_after=0.5)
    # inventory fails on its own too, in other traces
    for i in range(10):
        trace = f"{0xABC000 + i:032x}"
        spans.append(span(trace, "inventory", ONSET + 2 + i, 0.01, error=True))
    found = trace_findings(spans, ONSET, START, END)
    errors = by(found, "errors")
    assert set(errors) == {"payments", "inventory"}
    ids = exemplar_trace_ids(found, ["inventory", "payments"], n=8)
    assert ids[: len(errors["inventory"].trace_ids)] == errors["inventory"].trace_ids
    assert set(ids) <= set(errors["inventory"].trace_ids) | set(errors["payments"].trace_ids)
    first_payments = exemplar_trace_ids(found, ["payments"], n=3)
    assert first_payments == errors["payments"].trace_ids[:3]
