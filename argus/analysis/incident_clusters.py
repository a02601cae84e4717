"""Learning from closed incidents: clusters of similar incidents, recurring themes, hotspots,
MTTD/MTTA/MTTR per service and how often each playbook fixed what it was run for.

Pure functions over `IncidentState` records (no I/O), so the Aggregator activity, the
`argus insights` command and the learning benchmark all compute the same thing.

Clustering is greedy and incremental in time order: an incident joins the existing cluster
whose profile it resembles most (same root-cause service required; then fault signature,
alerts, log templates and fix), or starts a new one. Profiles accumulate what their members
showed, so a cluster stays stable as it grows, and the cost is O(incidents x clusters).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

from argus.analysis.signatures import metric_kind
from argus.models import IncidentState
from argus.models.agents import (
    Cluster,
    Hotspot,
    Insights,
    PlaybookInsight,
    ServiceInsight,
    Tally,
    Theme,
)

# Weights of the similarity between an incident and a cluster profile (root cause must match).
W_SIGNATURE = 0.45
W_ALERTS = 0.2
W_LOGS = 0.2
W_FIX = 0.15
JOIN_THRESHOLD = 0.5
# Outcomes that say something about the playbook that ran.
_RAN = {"fixed", "not_fixed", "rolled_back", "fixed_by_other"}


@dataclass(frozen=True)
class Features:
    """What makes two incidents alike, read from one incident record."""

    ident: str
    root: str
    signature: str
    kinds: frozenset[str]
    alerts: frozenset[str]
    affected: frozenset[str]
    templates: frozenset[str]
    fix: str  # playbook that fixed it ("" if none did)
    playbook: str  # playbook that ran ("" if none ran)
    labels: tuple[tuple[str, str], ...]
    component: str


def _norm_template(text: str) -> str:
    # Variable parts (ids, numbers, hex) must not split one template into many.
    text = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b", "<id>", text)
    return re.sub(r"\d+(\.\d+)?", "<n>", text).strip()[:160]


def incident_ref(s: IncidentState) -> str:
    return s.number or s.incident_id


def remediation_ran(s: IncidentState) -> bool:
    """A playbook counts as tried only when its steps actually ran (not proposed, not dry-run)."""
    return bool(s.proposal) and any(a.status.value in ("done", "failed", "rolled_back") for a in s.actions)


def features(s: IncidentState) -> Features:
    top = s.rca.top if s.rca else None
    root = top.service if top else s.service
    signature = top.fault_signature if top and top.fault_signature else "unknown"
    templates = frozenset(
        _norm_template(e.summary.split("log template", 1)[-1].split(":", 1)[-1])
        for e in (top.evidence if top else [])
        if e.kind.value == "log"
    )
    ran = remediation_ran(s)
    playbook = s.proposal.playbook if s.proposal and ran else ""
    fix = playbook if s.outcome.value == "fixed" else ""
    shared: dict[str, str] | None = None
    for a in s.alerts:
        lab = {k: v for k, v in a.labels.items() if k not in ("alertname", "instance")}
        shared = lab if shared is None else {k: v for k, v in shared.items() if lab.get(k) == v}
    component = next((a.labels["component"] for a in s.alerts if a.labels.get("component")), "")
    if not component and top:
        metric_ev = [e for e in top.evidence if e.kind.value == "metric" and e.metric]
        component = (metric_kind(metric_ev[0].metric) or metric_ev[0].metric or "") if metric_ev else ""
    if not component:
        component = signature.split("+")[0]
    return Features(
        ident=incident_ref(s),
        root=root,
        signature=signature,
        kinds=frozenset(signature.split("+")) - {"unknown"},
        alerts=frozenset(a.name for a in s.alerts),
        affected=frozenset(a.service for a in s.alerts),
        templates=templates,
        fix=fix,
        playbook=playbook,
        labels=tuple(sorted((shared or {}).items())),
        component=component,
    )


def _jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float | None:
    if not a and not b:
        return None  # nothing to compare: the weight goes to what can be compared
    return len(a & b) / len(a | b)


@dataclass
class _Profile:
    root: str
    members: list[tuple[IncidentState, Features]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    alerts: set[str] = field(default_factory=set)
    templates: set[str] = field(default_factory=set)
    fixes: set[str] = field(default_factory=set)

    def add(self, s: IncidentState, f: Features) -> None:
        self.members.append((s, f))
        self.kinds.update(f.kinds)
        self.alerts |= f.alerts | f.affected
        self.templates |= f.templates
        if f.fix:
            self.fixes.add(f.fix)

    def dominant_kinds(self) -> frozenset[str]:
        # The kinds at least half the members showed: the cluster's signature.
        n = len(self.members)
        return frozenset(k for k, c in self.kinds.items() if c * 2 >= n)


def similarity(f: Features, p: _Profile) -> float:
    """0..1: how much incident `f` looks like cluster profile `p` (0 for another root cause)."""
    if f.root != p.root:
        return 0.0
    parts = [
        (W_SIGNATURE, _jaccard(f.kinds, p.dominant_kinds()) if f.kinds or p.kinds else 1.0),
        (W_ALERTS, _jaccard(f.alerts | f.affected, p.alerts)),
        (W_LOGS, _jaccard(f.templates, p.templates) if f.templates and p.templates else None),
        (W_FIX, (1.0 if f.fix in p.fixes else 0.0) if f.fix and p.fixes else None),
    ]
    known = [(w, v) for w, v in parts if v is not None]
    total = sum(w for w, _ in known)
    return sum(w * v for w, v in known) / total if total else 0.0


def cluster(states: list[IncidentState]) -> list[_Profile]:
    profiles: list[_Profile] = []
    for s in sorted(states, key=lambda x: (x.opened_at, incident_ref(x))):
        f = features(s)
        best, best_sim = None, 0.0
        for p in profiles:
            sim = similarity(f, p)
            if sim > best_sim:
                best, best_sim = p, sim
        if best is None or best_sim < JOIN_THRESHOLD:
            best = _Profile(root=f.root)
            profiles.append(best)
        best.add(s, f)
    return profiles


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return median(vals) if vals else None


def first_alert(s: IncidentState) -> datetime:
    return min((a.starts_at for a in s.alerts), default=s.opened_at)


def mttd(s: IncidentState) -> float | None:
    return _seconds(first_alert(s), s.opened_at)


def mtta(s: IncidentState) -> float | None:
    return _seconds(s.opened_at, s.acknowledged_at)


def mttr(s: IncidentState) -> float | None:
    return _seconds(first_alert(s), s.resolved_at or s.closed_at)


def _to_cluster(p: _Profile, taken: set[str]) -> Cluster:
    states = [s for s, _ in p.members]
    feats = [f for _, f in p.members]
    signature = Counter(f.signature for f in feats).most_common(1)[0][0]
    dominant = sorted(p.dominant_kinds()) or [signature.split("+")[0]]
    key = f"{p.root}:{'+'.join(dominant)}"
    n = 2
    base = key
    while key in taken:
        key, n = f"{base}#{n}", n + 1
    taken.add(key)
    fixes: dict[str, Tally] = {}
    for f in feats:
        if f.playbook:
            t = fixes.setdefault(f.playbook, Tally())
            t.runs += 1
            t.fixed += bool(f.fix)
    best = max(fixes.items(), key=lambda kv: (kv[1].fixed, kv[1].success_rate, kv[0]), default=None)
    labels = dict(feats[0].labels)
    for f in feats[1:]:
        labels = {k: v for k, v in labels.items() if dict(f.labels).get(k) == v}
    return Cluster(
        key=key,
        service=p.root,
        signature="+".join(dominant),
        incidents=[f.ident for f in feats],
        fix=best[0] if best and best[1].fixed else "",
        fixes=fixes,
        affected=sorted({x for f in feats for x in f.affected}),
        alertnames=sorted({x for f in feats for x in f.alerts}),
        log_templates=sorted({x for f in feats for x in f.templates})[:10],
        labels=labels,
        first_seen=min(first_alert(s) for s in states),
        last_seen=max(first_alert(s) for s in states),
        mttr_seconds=_median([mttr(s) for s in states]),
    )


def aggregate(states: list[IncidentState], focus: IncidentState | None = None) -> Insights:
    """Everything the Doc Writer and `argus insights` show, from the archive's incident records."""
    if focus is not None and not any(
        s.incident_id == focus.incident_id and incident_ref(s) == incident_ref(focus) for s in states
    ):
        states = [*states, focus]
    profiles = cluster(states)
    taken: set[str] = set()
    clusters = [_to_cluster(p, taken) for p in profiles]
    order = sorted(range(len(clusters)), key=lambda i: (-len(clusters[i].incidents), clusters[i].key))

    by_service: dict[str, list[IncidentState]] = defaultdict(list)
    playbooks: dict[str, PlaybookInsight] = {}
    for s in states:
        by_service[s.service].append(s)
        f = features(s)
        if f.playbook:
            pb = playbooks.setdefault(f.playbook, PlaybookInsight(playbook=f.playbook, runs=0, fixed=0))
            pb.runs += 1
            pb.fixed += bool(f.fix)
            t = pb.by_signature.setdefault(f.signature, Tally())
            t.runs += 1
            t.fixed += bool(f.fix)

    services = []
    for svc, items in sorted(by_service.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        roots = Counter(i.rca.top.service for i in items if i.rca and i.rca.top)
        services.append(
            ServiceInsight(
                service=svc,
                incidents=len(items),
                mttr_seconds=_median([mttr(i) for i in items]),
                mtta_seconds=_median([mtta(i) for i in items]),
                mttd_seconds=_median([mttd(i) for i in items]),
                top_root_causes=[k for k, _ in roots.most_common(3)],
                fixed=sum(i.outcome.value == "fixed" for i in items),
                backfilled=sum(i.backfill for i in items),
            )
        )

    themes: dict[str, Theme] = {}
    hot: Counter[tuple[str, str]] = Counter()
    for c, p in zip(clusters, profiles, strict=True):
        for _, f in p.members:
            hot[(f.root, f.component)] += 1
            for kind in f.kinds:
                th = themes.setdefault(kind, Theme(kind=kind, incidents=0))
                th.incidents += 1
                if f.root not in th.services:
                    th.services.append(f.root)
                if c.key not in th.clusters:
                    th.clusters.append(c.key)
    recurring = [
        t for t in themes.values() if t.incidents >= 2 and (len(t.clusters) >= 2 or t.incidents >= 3)
    ]
    total = len(states)
    hotspots = [
        Hotspot(service=svc, component=comp, incidents=n, share=round(n / total, 4))
        for (svc, comp), n in sorted(hot.items(), key=lambda kv: (-kv[1], kv[0]))
    ]

    similar: list[str] = []
    focus_key = ""
    if focus is not None:
        ref = incident_ref(focus)
        for c in clusters:
            if ref in c.incidents:
                focus_key = c.key
                similar = [i for i in c.incidents if i != ref]
    return Insights(
        total=total,
        services=services,
        playbooks=sorted(playbooks.values(), key=lambda p: p.playbook),
        clusters=[clusters[i] for i in order],
        themes=sorted(recurring, key=lambda t: (-t.incidents, t.kind)),
        hotspots=hotspots[:20],
        similar=similar,
        focus_cluster=focus_key,
    )
