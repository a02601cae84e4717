"""Closer: checks that the symptom really recovered, and keeps the incident's record.

Recovery is judged on the rules that fired for the incident: each is evaluated now, and a
series that still breaches with the alert's identifying labels means not yet recovered. The
incident's service may also declare SLIs (`services[].slis`: PromQL conditions returning the
violating series); any violation keeps it unrecovered too.
A source that cannot answer is "unknown", which never counts as recovered.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.models import Alert
from argus.models.agents import CollectRequest, OpenRecord, VerifyRequest, VerifyResult
from argus.models.config import RuleConfig, ServiceConfig

from .collector import Collector

_IDENTITY = ("service", "instance", "job", "environment")


def _same_series(alert: Alert, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == alert.labels[k] for k in _IDENTITY if k in alert.labels and k in labels)


def _sli_rules(services: list[ServiceConfig], service: str) -> list[RuleConfig]:
    """A service's SLIs (`services[].slis`: name -> a PromQL condition that returns the series that
    violate it) as rules the Collector can evaluate."""
    for svc in services:
        if svc.name == service:
            return [
                RuleConfig(name="sli_" + re.sub(r"[^a-zA-Z0-9_]", "_", name), expr=expr)
                for name, expr in sorted(svc.slis.items())
            ]
    return []


class Closer:
    def __init__(
        self, collector: Collector, archive: IncidentArchive, services: list[ServiceConfig] | None = None
    ) -> None:
        self.collector = collector
        self.archive = archive
        self.services = services or []

    @activity.defn(name="verify_recovery")
    async def verify(self, req: VerifyRequest) -> VerifyResult:
        names = {a.name for a in req.alerts}
        rules = [r for r in self.collector.rules if r.name in names]
        slis = _sli_rules(self.services, req.service)
        if not rules and not slis:
            firing = [a for a in req.alerts if a.status == "firing"]
            return VerifyResult(
                healthy=not firing,
                detail="no rule to re-check; judged on the alerts' own state "
                + ("(all resolved)" if not firing else f"({len(firing)} still firing)"),
                on_alerts=True,
            )
        req_at = CollectRequest(scope="verify", at=datetime.now(UTC))
        results = await asyncio.gather(*(self.collector.run_rule(r, req_at) for r in rules + slis))
        checks: dict[str, bool] = {}
        details = []
        for sli, res in zip(slis, results[len(rules) :], strict=True):
            # The service's own SLIs: any violating series (or no answer) means not recovered.
            ok = res.error is None and not res.samples
            checks[sli.name] = ok
            details.append(
                f"{sli.name}: " + ("normal" if ok else f"violated ({res.error or len(res.samples)})")
            )
        results = results[: len(rules)]
        for rule, res in zip(rules, results, strict=True):
            if res.error:
                checks[rule.name] = False
                details.append(f"{rule.name}: unknown ({res.error})")
                continue
            alerts = [a for a in req.alerts if a.name == rule.name]
            breaching = [s for s in res.samples if any(_same_series(a, s.labels) for a in alerts)]
            checks[rule.name] = not breaching
            if breaching:
                worst = max(breaching, key=lambda s: s.value)
                details.append(
                    f"{rule.name}: still breaching ({worst.labels.get('service', '?')}={worst.value:.4g})"
                )
            else:
                details.append(f"{rule.name}: normal")
        return VerifyResult(healthy=all(checks.values()), detail="; ".join(details), checks=checks)

    @activity.defn(name="archive_incident")
    async def archive_incident(self, req: OpenRecord) -> None:
        await asyncio.to_thread(self.archive.save, req.state, req.run_id)
