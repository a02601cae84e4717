"""Inputs and outputs of the micro-agents (activities) and of the workflows that call them."""

from __future__ import annotations

import re

from pydantic import Field

from .alert import Alert
from .common import Model, RegexStr, UtcDateTime
from .config import Policy
from .docs import Document, PublishResult
from .incident import IncidentState
from .metrics import Sample, SourceHealth
from .rca import RcaReport
from .remediation import Proposal, Recommendation
from .routing import Matcher, RouteDecision
from .tickets import TicketRef

# --- Monitoring ----------------------------------------------------------------------------------


class CollectRequest(Model):
    scope: str
    at: UtcDateTime


class RuleResult(Model):
    rule: str
    samples: list[Sample] = Field(default_factory=list)
    error: str | None = None
    window_seconds: float | None = None  # SLOs: the error ratio over this window
    warnings: list[str] = Field(default_factory=list)  # what the source said with its answer


class CollectResult(Model):
    results: list[RuleResult] = Field(default_factory=list)
    health: list[SourceHealth] = Field(default_factory=list)


class FiringRecord(Model):
    labels: dict[str, str]
    starts_at: UtcDateTime
    value: float | None = None
    last_breach: UtcDateTime | None = None
    # the first pull since the last breach that found it not breaching: `keep_firing_for` counts
    # from there, as Prometheus counts it (KeepFiringSince)
    keep_firing_since: UtcDateTime | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class EvaluatorState(Model):
    """Per rule series: since when it breaches (for `for:`) and what is firing (to resolve it)."""

    pending: dict[str, UtcDateTime] = Field(default_factory=dict)
    firing: dict[str, FiringRecord] = Field(default_factory=dict)


class EvaluateRequest(Model):
    scope: str
    at: UtcDateTime
    results: list[RuleResult]
    state: EvaluatorState = Field(default_factory=EvaluatorState)


class EvaluateResult(Model):
    alerts: list[Alert] = Field(default_factory=list)
    state: EvaluatorState = Field(default_factory=EvaluatorState)
    errors: list[str] = Field(default_factory=list)


class MonitoringInput(Model):
    scope: str = "default"
    policy: Policy = Field(default_factory=Policy)
    # State handed over by continue-as-new: MonitoringState as JSON, zlib-compressed, base64.
    carried: str | None = None
    # Where the incidents it opens run (the main task queue); None: on this workflow's own queue.
    incident_task_queue: str | None = None
    # The deployment's workers keep payloads too large for history in a payload store
    # (temporal.payload_store): a hand-over may then be 8 MB instead of 1.6. Set when the scope
    # starts and handed on; a scope started without it keeps the smaller limit until restarted.
    payload_store: bool = False


class MonitoringStatus(Model):
    scope: str
    groups: int
    open_incidents: int
    silences: int
    alerts_received: int
    batches: int
    counts: dict[str, int] = Field(default_factory=dict)
    health: list[SourceHealth] = Field(default_factory=list)
    last_pull: UtcDateTime | None = None
    runs: int = 1
    tracked: int = 0
    handover_limit_bytes: int = 0  # what one continue-as-new may carry (larger with the payload store)
    payload_store: bool = False
    capacity: int = 0  # the tracked alerts the scope may hold now


class AlertQuery(Model):
    """Which firing alerts a scope should list (Alertmanager's `GET /api/v2/alerts` parameters)."""

    matchers: list[Matcher] = Field(default_factory=list)  # labels each alert must match
    active: bool = True  # those nothing holds back
    silenced: bool = True
    inhibited: bool = True
    receiver: RegexStr | None = None  # one of its receivers must match it in full
    limit: int = Field(default=5_000, ge=1, le=20_000)  # the answer travels as one query payload

    def selects(self, silenced: bool, inhibited: bool, receivers: list[str]) -> bool:
        """Alertmanager's switches: a silenced alert shows only with `silenced`, an inhibited one
        only with `inhibited`, one nothing holds back only with `active`."""
        if (silenced and not self.silenced) or (inhibited and not self.inhibited):
            return False
        if not (self.active or silenced or inhibited):
            return False
        return self.receiver is None or any(re.fullmatch(self.receiver, r) for r in receivers)


class AlertView(Model):
    """One firing alert as a scope holds it now: who it goes to, and what holds it back."""

    alert: Alert
    receivers: list[str]
    updated_at: UtcDateTime  # when it was last received
    ends_at: UtcDateTime  # when it resolves unless received again (its endsAt, or resolve_timeout)
    silenced_by: list[str] = Field(default_factory=list)
    inhibited_by: list[str] = Field(default_factory=list)  # fingerprints of the inhibiting alerts
    # muted by a time interval or maintenance window, or held as flapping: not notified either
    muted: bool = False


class AlertListing(Model):
    alerts: list[AlertView]
    complete: bool = True  # False: more alerts matched than `limit` or one answer's size allows


class FingerprintCheck(Model):
    """Ask a monitoring scope which of these alert fingerprints it holds (at most a few
    thousand per query: the request and the answer travel as one query payload)."""

    fingerprints: list[str] = Field(default_factory=list)
    sender: str = ""  # a gateway asking how far it got: answered in `received_seq`


class FingerprintReport(Model):
    tracked: int  # distinct fingerprints the scope holds now: in a group, or held back (silenced, ...)
    queued: int  # alerts received (durable) but not routed yet: a backlog being worked off
    missing: list[str] = Field(default_factory=list)  # asked about, not held
    received_seq: int = 0  # the asking sender's highest batch `seq` the workflow has received
    # The run is about to continue as new (Temporal suggests it and the queue is small enough),
    # or has packed its state and waits for a moment with no new batch to do so: gateways then
    # hold this scope's batches.
    handover_soon: bool = False
    handing_over: bool = False


class IncidentClosed(Model):
    group_key: str
    incident_id: str


class PayloadStoreSetting(Model):
    """Whether the deployment's workers have the payload store (`temporal.payload_store`): sent
    to every running scope when ARGUS starts, so a scope started before a change follows it."""

    enabled: bool


# --- Incident handling ---------------------------------------------------------------------------


class OpenRecord(Model):
    state: IncidentState
    run_id: str


class RcaRequest(Model):
    incident_id: str
    service: str
    alerts: list[Alert]
    window_start: UtcDateTime
    window_end: UtcDateTime
    anomaly_start: UtcDateTime
    # Live incidents: the metrics must reach this far past onset before ranking (the policy's
    # rca_settle); a scraper that was down (worker restart) leaves a gap that looks like calm.
    settle_seconds: float = 0.0


class EnrichRequest(Model):
    key: str
    incident_id: str
    number: str
    service: str
    ticket: TicketRef
    rca: RcaReport | None
    runbook_urls: list[str] = Field(default_factory=list)  # from the alerts' `runbook_url` annotations


class RecommendRequest(Model):
    incident_id: str
    service: str
    alerts: list[Alert]
    rca: RcaReport | None


class RecommendResult(Model):
    recommendations: list[Recommendation] = Field(default_factory=list)
    proposal: Proposal | None = None
    notes: list[str] = Field(default_factory=list)  # what was not proposed, and why


class SolicitRequest(Model):
    key: str
    incident_id: str
    number: str
    title: str
    service: str
    severity: str
    proposal: Proposal
    recipients: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    reminder: int = 0
    escalation_level: str = ""


class VerifyRequest(Model):
    incident_id: str
    service: str
    alerts: list[Alert]


class VerifyResult(Model):
    healthy: bool
    detail: str
    checks: dict[str, bool] = Field(default_factory=dict)
    # No rule or SLI re-checks this incident: it was judged on its alerts' own state, which only
    # new alerts (a signal) can change, so re-checking on a timer would learn nothing.
    on_alerts: bool = False


class DocGenInput(Model):
    incident: IncidentState | None = None
    run_id: str = ""  # the incident workflow's run, whose history the post-mortem timeline is built from
    review: bool = False
    reviewers: list[str] = Field(default_factory=list)
    specs: bool = True  # scheduled runs: also write the per-service tech specs
    history: bool = True  # False: the incident has no workflow history (docs-only backfill)


class DocGenResult(Model):
    published: list[str] = Field(default_factory=list)
    documents: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)  # "<slug>: <why>", kept and retried later
    review: str = ""  # approved | rejected | expired | "" (no review gate)


class Tally(Model):
    fixed: int = 0
    runs: int = 0

    @property
    def failed(self) -> int:
        return self.runs - self.fixed

    @property
    def success_rate(self) -> float:
        return self.fixed / self.runs if self.runs else 0.0


class ServiceInsight(Model):
    service: str
    incidents: int
    mttr_seconds: float | None = None  # first alert -> closed (median)
    mtta_seconds: float | None = None  # opened -> acknowledged (median)
    mttd_seconds: float | None = None  # first alert -> incident opened (median)
    top_root_causes: list[str] = Field(default_factory=list)
    fixed: int = 0
    backfilled: int = 0


class PlaybookInsight(Model):
    playbook: str
    runs: int
    fixed: int
    by_signature: dict[str, Tally] = Field(default_factory=dict)  # fault signature of the root cause

    @property
    def failed(self) -> int:
        return self.runs - self.fixed

    @property
    def success_rate(self) -> float:
        return self.fixed / self.runs if self.runs else 0.0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


class Cluster(Model):
    """Incidents similar enough to share a runbook: same root-cause service and fault signature,
    close in alerts, log templates and fix."""

    key: str
    service: str  # the root-cause service
    signature: str
    incidents: list[str]
    fix: str = ""  # the playbook that fixed most of them
    fixes: dict[str, Tally] = Field(default_factory=dict)
    affected: list[str] = Field(default_factory=list)  # services whose alerts fired
    alertnames: list[str] = Field(default_factory=list)
    log_templates: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)  # labels every incident's alerts shared
    first_seen: UtcDateTime | None = None
    last_seen: UtcDateTime | None = None
    mttr_seconds: float | None = None


class Theme(Model):
    """A fault kind that recurs across clusters and services (e.g. bad deploys everywhere)."""

    kind: str
    incidents: int
    services: list[str] = Field(default_factory=list)
    clusters: list[str] = Field(default_factory=list)


class Hotspot(Model):
    service: str
    component: str
    incidents: int
    share: float


class Insights(Model):
    total: int = 0
    services: list[ServiceInsight] = Field(default_factory=list)
    playbooks: list[PlaybookInsight] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    hotspots: list[Hotspot] = Field(default_factory=list)
    similar: list[str] = Field(default_factory=list)
    focus_cluster: str = ""  # the cluster the focus incident belongs to


class PostmortemRequest(Model):
    incident: IncidentState
    insights: Insights
    run_id: str = ""
    history: bool = True


class RunbookRequest(Model):
    insights: Insights


class DocumentBatch(Model):
    documents: list[Document] = Field(default_factory=list)


class PublishRequest(Model):
    document: Document
    key: str  # idempotency: the workflow and the document


class PublishOutcome(Model):
    results: list[PublishResult] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)  # publisher -> why (document kept for later)


class PendingDocuments(Model):
    documents: list[Document] = Field(default_factory=list)


class ArgusInput(Model):
    scopes: list[str] = Field(default_factory=lambda: ["default"])
    policy: Policy = Field(default_factory=Policy)
    generation: int = 0


class ArgusStatus(Model):
    scopes: list[str]
    phases: dict[str, bool]
    generation: int
    reloads: int
    last_supervised: UtcDateTime | None = None


class EnsureMonitoring(Model):
    scope: str
    policy: Policy


class EnsureSchedule(Model):
    schedule_id: str
    cron: str
    enabled: bool = True


class BackfillInput(Model):
    start: UtcDateTime
    end: UtcDateTime
    source: str | None = None
    window_seconds: int = 3600
    step_seconds: int = 60
    concurrency: int = 4
    docs_only: bool = False
    policy: Policy = Field(default_factory=Policy)


class BackfillWindow(Model):
    start: UtcDateTime
    end: UtcDateTime
    source: str | None = None
    step_seconds: int = 60


class Episode(Model):
    """A stretch of time during which one rule series breached, found in history."""

    alert: Alert
    group_key: str
    decisions: list[RouteDecision] = Field(default_factory=list)


class BackfillWindowResult(Model):
    alerts: list[Alert] = Field(default_factory=list)
    error: str | None = None


class BackfillProgress(Model):
    windows_total: int
    windows_done: int
    alerts_found: int
    incidents_started: int
    incidents_existing: int
    errors: list[str] = Field(default_factory=list)
    done: bool = False
    docs_only: bool = False
    incidents_found: int = 0  # group episodes found in the range
    archived: int = 0  # docs-only: incidents recorded in the archive (new ones)
    documents: int = 0  # docs-only: DocGen runs started
    stage: str = "windows"  # windows | routing | incidents | documents | done


class BackfillRecord(Model):
    """Docs-only backfill: one episode found in history, recorded straight into the archive."""

    incident_id: str
    group_key: str
    group_labels: dict[str, str] = Field(default_factory=dict)
    alerts: list[Alert]
    rca: RcaReport | None = None


class BackfillRecorded(Model):
    state: IncidentState
    created: bool  # False: a rerun found it already archived
