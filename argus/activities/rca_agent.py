"""RCA agent: gathers the incident window's metrics, changes and log evidence, then ranks
the likely root causes with the pure analysis in `argus.analysis.rca`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from argus.analysis import rca as rca_analysis
from argus.integrations.archive import IncidentArchive
from argus.integrations.base import LogSource, MetricsSource
from argus.models import Evidence, EvidenceKind, Hypothesis, RcaReport
from argus.models.agents import RcaRequest
from argus.models.config import RcaConfig


class RcaAgent:
    def __init__(
        self,
        source: MetricsSource | None,
        config: RcaConfig,
        topology: list[tuple[str, str]],
        archive: IncidentArchive,
        logs: LogSource | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.topology = topology
        self.archive = archive
        self.logs = logs

    async def _rows(self, req: RcaRequest) -> list[tuple[float, str, str, float]]:
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
        rows = await self._rows(req)
        changes = await asyncio.to_thread(self.archive.changes_between, req.window_start, req.window_end)
        log_evidence = await self._log_evidence(req)
        result = await asyncio.to_thread(
            rca_analysis.rank_root_causes,
            rows,
            anomaly_start=req.anomaly_start.timestamp(),
            topology=self.topology or None,
            symptom=self._symptom(req),
            changes=[
                {"service": c.service, "at": c.at.timestamp(), "kind": c.kind, "description": c.description}
                for c in changes
            ],
            log_evidence=log_evidence,
        )
        return to_report(result, req)

    async def _log_evidence(self, req: RcaRequest) -> list[dict]:
        if self.logs is None:
            return []
        try:
            counts = await self.logs.error_counts(req.window_start, req.window_end, 60)
        except Exception as exc:  # logs are supporting evidence; their absence must not stop RCA
            activity.logger.warning("log source failed during RCA: %s", exc)
            return []
        return [{"service": svc, "buckets": buckets} for svc, buckets in counts.items()]


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def to_report(result: rca_analysis.RcaResult, req: RcaRequest) -> RcaReport:
    hypotheses = []
    for cand in result.ranking[:5]:
        evidence = []
        for ev in cand.evidence[:8]:
            kind = ev.kind if ev.kind in EvidenceKind._value2member_map_ else "metric"
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
                summary=cand.summary,
                fault_signature=cand.signature,
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
