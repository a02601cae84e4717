"""RCA agent: gathers the incident window's metrics, changes and log evidence, then ranks
the likely root causes with the pure analysis in `argus.analysis.rca`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.analysis import rca as rca_analysis
from argus.analysis.rca import LogEvidence
from argus.analysis.rca_logs import TROUBLE_LEVELS, log_evidence
from argus.analysis.signatures import SignalEvidence, metric_kind, signature
from argus.integrations.archive import IncidentArchive
from argus.integrations.base import LogSource, MetricsSource, TraceSource
from argus.models import Evidence, EvidenceKind, Hypothesis, RcaReport
from argus.models.agents import RcaRequest
from argus.models.config import RcaConfig

from .trace_evidence import attach_trace_evidence, gather_trace_findings

Row = tuple[float, str, str, float]  # (time, service, metric kind, value)


class RcaAgent:
    def __init__(
        self,
        source: MetricsSource | None,
        config: RcaConfig,
        topology: list[tuple[str, str]],
        archive: IncidentArchive,
        logs: LogSource | None = None,
        traces: TraceSource | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.topology = topology
        self.archive = archive
        self.logs = logs
        self.traces = traces  # OTLP spans (issue 7): see activities/trace_evidence.py

    async def _rows(self, req: RcaRequest) -> list[Row]:
        if self.source is None:
            return []
        step = self.config.step.total_seconds()

        async def one(kind: str, expr: str) -> list[tuple[float, str, str, float]]:
            series = await self.source.range(expr, req.window_start, req.window_end, step)
            return [
                (ts, s.labels.get("service", s.labels.get("job", "unknown")), kind, value)
                for s in series
                for ts, value in s.points
            ]

        parts = await asyncio.gather(*(one(k, e) for k, e in self.config.metrics.items()))
        return [row for part in parts for row in part]

    def _symptom(self, req: RcaRequest) -> dict[str, str] | None:
        firing = [a for a in req.alerts if a.status == "firing"] or req.alerts
        if not firing:
            return None
        alert = firing[0]
        metric = None
        for kind in self.config.metrics:
            if kind in alert.name.lower():
                metric = kind
        for kind in ("latency", "errors"):
            if metric is None and kind[:5] in alert.name.lower():
                metric = kind
        out = {"service": alert.service}
        if metric:
            out["metric"] = metric
        return out

    @activity.defn(name="analyze_root_cause")
    async def analyze(self, req: RcaRequest) -> RcaReport:
        req, rows = await self._post_onset_rows(req)
        changes = await asyncio.to_thread(self.archive.changes_between, req.window_start, req.window_end)
        services = sorted({r[1] for r in rows} | {x for edge in self.topology for x in edge})
        logs = await self._log_evidence(req, services)
        # Trace evidence (error origins, self-time jumps) joins the log evidence for the ranker.
        traced = await gather_trace_findings(self.traces, req)
        logs = logs + [f.as_log_evidence() for f in traced]
        try:
            result = await self._rank(req, rows, changes, logs)
        except ValueError as exc:
            # Too little data is an answer, not a failure a retry could fix.
            raise ApplicationError(
                f"not enough data for RCA: {exc}", type="RcaInsufficientData", non_retryable=True
            ) from exc
        return attach_trace_evidence(to_report(result, req, self.topology), traced)

    async def _post_onset_rows(self, req: RcaRequest) -> tuple[RcaRequest, list[Row]]:
        """The window's rows, once they hold `settle_seconds` of samples after onset (waiting at
        most DATA_WAIT_S, the window's end moving with the clock). A scraper that was down, say
        for a worker restart, leaves a gap; ranking across it would read the gap as calm."""
        rows = await self._rows(req)
        if not rows or req.settle_seconds <= 0:
            return req, rows  # no source, or none of its series exist here: nothing to wait for
        onset = req.anomaly_start.timestamp()
        step = self.config.step.total_seconds()
        deadline = time.monotonic() + DATA_WAIT_S
        while True:
            # Time with samples, not first-to-last: a gap inside the window does not count.
            covered = len({r[0] for r in rows if r[0] >= onset}) * step
            if covered + step >= req.settle_seconds:
                return req, rows
            if time.monotonic() >= deadline:
                activity.logger.warning(
                    "RCA for %s: only %.0fs of metrics after onset (wanted %.0fs); ranking anyway",
                    req.incident_id,
                    covered,
                    req.settle_seconds,
                )
                return req, rows
            activity.heartbeat(
                f"{covered:.0f}s of metrics after onset, waiting for {req.settle_seconds:.0f}s"
            )
            await asyncio.sleep(1.0)
            req = req.model_copy(update={"window_end": max(req.window_end, datetime.now(UTC))})
            rows = await self._rows(req)

    async def _rank(self, req: RcaRequest, rows, changes, logs) -> rca_analysis.RcaResult:  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(
            rca_analysis.rank_root_causes,
            rows,
            anomaly_start=req.anomaly_start.timestamp(),
            topology=self.topology or None,
            symptom=self._symptom(req),
            changes=[
                {"service": c.service, "time": c.at.timestamp(), "kind": c.kind, "description": c.description}
                for c in changes
            ],
            log_evidence=logs,
        )

    async def _log_evidence(self, req: RcaRequest, services: list[str]) -> list[LogEvidence]:
        """New or surging warning/error templates, the window after onset against before it."""
        if self.logs is None:
            return []
        try:
            records = await self.logs.messages(req.window_start, req.window_end, MAX_LOG_RECORDS)
        except Exception as exc:  # logs are supporting evidence; their absence must not stop RCA
            activity.logger.warning("log source failed during RCA: %s", exc)
            return []
        return await asyncio.to_thread(_mine_logs, records, req.anomaly_start.timestamp(), services)


MAX_LOG_RECORDS = 50_000
DATA_WAIT_S = 60.0  # a scraper back from a restart fills the gap within a scrape or two


def _mine_logs(records: list[dict[str, str]], onset: float, services: list[str]) -> list[LogEvidence]:
    """Drain learns every trouble line first, then each line is read back as its final template."""
    from argus.integrations.logs import LogTemplateMiner

    trouble = [r for r in records if str(r.get("level", "")).upper() in TROUBLE_LEVELS]
    miner = LogTemplateMiner()
    for r in trouble:
        miner.add(str(r.get("message", "")))

    def templater(line: str) -> str:
        return miner.match(line) or line

    return log_evidence(trouble, onset, services, templater)


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _summary(cand: rca_analysis.Candidate) -> str:
    own = [e for e in cand.evidence if e.kind in ("metric", "change", "log")]
    if not own:
        return f"{cand.service} explains the other anomalies along the call graph"
    return "; ".join(e.summary for e in own[:2])


def _origin(e: rca_analysis.Evidence, service: str, callers: dict[str, set[str]]) -> bool:
    """Whether `e` starts at `service` rather than being the effect of another service's anomaly.
    Within one service, explanations run in circles (traffic -> cpu -> latency -> errors ->
    retries -> traffic); only one from another service makes it an effect. Load descends the
    call graph: more requests are explained by a caller sending more, never by a callee (the
    ranker may weigh such an edge when the given topology could be incomplete), so a service's
    own rise in traffic stays its own unless a known caller of it explains it."""
    if e.explained_by is None or e.explained_by.startswith(f"{service}/"):
        return True
    if callers and metric_kind(e.metric_kind or e.metric) == "overload" and (e.zscore or 0.0) > 0:
        return e.explained_by.split("/", 1)[0] not in callers.get(service, set())
    return False


def to_report(
    result: rca_analysis.RcaResult, req: RcaRequest, topology: list[tuple[str, str]] | None = None
) -> RcaReport:
    callers: dict[str, set[str]] = {}
    for caller, callee in topology or ():
        callers.setdefault(callee, set()).add(caller)
    hypotheses = []
    for cand in result.ranking[:5]:
        sig = signature(
            SignalEvidence(
                kind=e.kind,
                metric=e.metric_kind or e.metric,
                weight=abs(e.weight if e.weight is not None else (e.zscore or 1.0)),
                origin=_origin(e, cand.service, callers),
            )
            for e in cand.evidence
        )
        evidence = []
        for ev in cand.evidence[:8]:
            kind = {"propagation": "topology"}.get(ev.kind, ev.kind)
            kind = kind if kind in EvidenceKind._value2member_map_ else "metric"
            evidence.append(
                Evidence(
                    kind=EvidenceKind(kind),
                    summary=ev.summary,
                    metric=ev.metric,
                    baseline=ev.baseline,
                    value=ev.value,
                    onset=_ts(ev.onset),
                    zscore=ev.zscore,
                )
            )
        hypotheses.append(
            Hypothesis(
                service=cand.service,
                confidence=max(0.0, min(1.0, cand.confidence)),
                score=cand.score,
                summary=_summary(cand),
                fault_signature=sig,
                evidence=evidence,
            )
        )
    return RcaReport(
        hypotheses=hypotheses,
        discounted=list(result.discounted),
        window_start=req.window_start,
        window_end=req.window_end,
        anomaly_start=req.anomaly_start,
        graph_source=result.graph_source,
        method="argus-rca",
    )
