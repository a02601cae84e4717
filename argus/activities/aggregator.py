"""Aggregator: learns from the archive — clusters of similar incidents, hotspots by service,
MTTA/MTTR, and how often each playbook fixed what it was run for."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from statistics import median

from temporalio import activity

from argus.integrations.archive import IncidentArchive
from argus.models import IncidentState
from argus.models.agents import Cluster, Insights, PlaybookInsight, ServiceInsight


def cluster_key(s: IncidentState) -> tuple[str, str]:
    top = s.rca.top if s.rca else None
    service = top.service if top else s.service
    signature = top.fault_signature if top and top.fault_signature else "unknown"
    return service, signature


def aggregate(states: list[IncidentState], focus: IncidentState | None = None) -> Insights:
    by_service: dict[str, list[IncidentState]] = defaultdict(list)
    clusters: dict[tuple[str, str], list[IncidentState]] = defaultdict(list)
    playbooks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in states:
        by_service[s.service].append(s)
        clusters[cluster_key(s)].append(s)
        if s.proposal and s.outcome.value not in ("none", "rejected"):
            pb = playbooks[s.proposal.playbook]
            pb[1] += 1
            pb[0] += s.outcome.value == "fixed"

    services = []
    for svc, items in sorted(by_service.items(), key=lambda kv: -len(kv[1])):
        ttr = [(i.closed_at - i.opened_at).total_seconds() for i in items if i.closed_at]
        tta = [(i.acknowledged_at - i.opened_at).total_seconds() for i in items if i.acknowledged_at]
        roots = defaultdict(int)
        for i in items:
            if i.rca and i.rca.top:
                roots[i.rca.top.service] += 1
        services.append(
            ServiceInsight(
                service=svc,
                incidents=len(items),
                mttr_seconds=median(ttr) if ttr else None,
                mtta_seconds=median(tta) if tta else None,
                top_root_causes=[k for k, _ in sorted(roots.items(), key=lambda kv: -kv[1])[:3]],
            )
        )
    out_clusters = []
    for (svc, sig), items in sorted(clusters.items(), key=lambda kv: -len(kv[1])):
        fixes = [i.proposal.playbook for i in items if i.proposal and i.outcome.value == "fixed"]
        out_clusters.append(
            Cluster(
                key=f"{svc}:{sig}",
                service=svc,
                signature=sig,
                incidents=[i.number or i.incident_id for i in items],
                fix=max(set(fixes), key=fixes.count) if fixes else "",
            )
        )
    similar: list[str] = []
    if focus is not None:
        similar = [
            i.number or i.incident_id
            for i in clusters.get(cluster_key(focus), [])
            if i.incident_id != focus.incident_id or i.number != focus.number
        ]
    return Insights(
        total=len(states),
        services=services,
        playbooks=[PlaybookInsight(playbook=k, runs=v[1], fixed=v[0]) for k, v in sorted(playbooks.items())],
        clusters=out_clusters,
        similar=similar,
    )


class Aggregator:
    def __init__(self, archive: IncidentArchive) -> None:
        self.archive = archive

    @activity.defn(name="aggregate_incidents")
    async def aggregate(self, focus: IncidentState | None) -> Insights:
        states = await asyncio.to_thread(self.archive.all_states, True)
        return aggregate(states, focus)
