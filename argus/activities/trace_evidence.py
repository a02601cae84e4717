"""Trace evidence for the RCA agent: fetch the window's spans, find per-service error origins
and self-time jumps (`argus.analysis.trace_rca`), hand them to the ranker beside the log
evidence, then mark them in the report as trace evidence with their exemplar trace ids.

Traces are supporting evidence: a trace source that fails or holds nothing leaves RCA as it was.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.analysis.trace_rca import TAG, TraceFinding, exemplar_trace_ids, trace_findings
from argus.integrations.base import TraceSource
from argus.models import EvidenceKind, RcaReport
from argus.models.agents import RcaRequest

MAX_SPANS = 300_000


async def gather_trace_findings(source: TraceSource | None, req: RcaRequest) -> list[TraceFinding]:
    if source is None:
        return []
    try:
        spans = await source.spans(req.window_start, req.window_end, MAX_SPANS)
    except Exception as exc:
        activity.logger.warning("trace source failed during RCA: %s", exc)
        return []
    return await asyncio.to_thread(
        trace_findings,
        spans,
        req.anomaly_start.timestamp(),
        req.window_start.timestamp(),
        req.window_end.timestamp(),
    )


def attach_trace_evidence(report: RcaReport, findings: list[TraceFinding]) -> RcaReport:
    """Evidence the ranker took from a finding becomes `trace` evidence carrying its trace ids;
    the report lists exemplar traces, those of the top hypotheses first."""
    if not findings:
        return report
    by_summary = {f.summary: f for f in findings}
    for h in report.hypotheses:
        for ev in h.evidence:
            if TAG not in ev.summary:
                continue
            found = next((f for s, f in by_summary.items() if s in ev.summary), None)
            ev.kind = EvidenceKind.TRACE
            if found is not None:
                ev.detail["trace_ids"] = ",".join(found.trace_ids)
                ev.detail["finding"] = found.kind
    report.trace_ids = exemplar_trace_ids(findings, [h.service for h in report.hypotheses])
    return report
