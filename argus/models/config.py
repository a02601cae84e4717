"""The configuration schema (argus.yaml) and the policy subset that workflows carry.

Workflows cannot read files, so the parts of the configuration that decide things (routing,
approval, escalation, verification, enabled phases) travel as `Policy` in workflow inputs
and are replaced by the orchestrator's `reload` signal. Secrets never appear here: they are
read by the worker from the environment or a secrets file.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration
from .heartbeats import HeartbeatsConfig
from .monitoring import CorrelationConfig, SloConfig, labels_without_value
from .people import OnCallSchedule, Person
from .remediation import BlastRadius, Risk
from .routing import InhibitRule, MaintenanceWindow, Matcher, Route, TimeInterval, TimeIntervalSpec
from .security import AuthConfig, EncryptionConfig
from .traces import TracesConfig
from .vendors import (
    GraphMailConfig,
    JiraConfig,
    OpsgenieConfig,
    PagerDutyConfig,
    RateLimit,
    SendGridConfig,
    ServiceNowConfig,
    SlackConfig,
    SmsConfig,
    SmtpConfig,
    TeamsBotConfig,
    TeamsWebhookConfig,
    TicketSyncConfig,
)


class WorkerQueues(StrEnum):
    """Which task queues a worker process polls (`argus worker --queues`)."""

    ALL = "all"
    MAIN = "main"  # incidents, orchestration, docgen and the rest
    MONITORING = "monitoring"  # the monitoring scopes' workflows


class PayloadStoreConfig(Model):
    """Temporal refuses a payload over 2 MiB, and a monitoring scope hands its state to its
    next run as one. With the store on, such a payload is kept in this database and history
    holds a reference (see `argus.integrations.payload_store`); a scope can then hand over up
    to 8 MB. Off: a scope holds what fits 1.6 MB (fewer alerts the longer their labels)."""

    enabled: bool = True
    # A SQLAlchemy URL every worker can reach. None: a SQLite file in the state directory,
    # which serves one machine; workers on several machines need a shared database.
    url: str | None = None
    # Beyond what the last two runs of a scope stored, how long a stored payload is kept (a
    # closed run can be replayed from its history while its input is still here).
    keep_for: Duration = timedelta(hours=1)


class TemporalConfig(Model):
    address: str | None = None  # None: `argus up` starts the embedded dev server
    namespace: str = "argus"
    task_queue: str = "argus"
    # The monitoring scopes' workflows poll a task queue of their own (default: `<task_queue>-
    # monitoring`), so routing new alerts never waits behind the tasks of hundreds of incident
    # pipelines on the main one. `argus worker` polls both unless `--queues` picks one. Set it
    # to `task_queue` to run everything on one queue. A scope started before the split stays on
    # its queue.
    monitoring_task_queue: str | None = None
    # `argus up` runs the monitoring queue's worker as a process of its own (`argus worker
    # --queues monitoring`): routing then has an interpreter to itself, not one shared with the
    # incident pipelines' workflow tasks and activities. Needs a monitoring queue of its own.
    monitoring_process: bool = True
    retention: Duration = timedelta(days=30)
    dev_server_port: int = 7233
    ui_port: int | None = 8233  # None: no Web UI (headless)
    # The embedded dev server's SQLite file runs in WAL mode. "normal": a commit survives any
    # process crash (SIGKILL of the server included), the last commits may be lost to a power
    # cut or kernel crash. "full": an fsync per commit survives those too, at about 1.6x the
    # latency. Production clusters use their own database and ignore this.
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    payload_store: PayloadStoreConfig = Field(default_factory=PayloadStoreConfig)

    @property
    def monitoring_queue(self) -> str:
        return self.monitoring_task_queue or f"{self.task_queue}-monitoring"


class GatewayConfig(Model):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    require_token: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    flush_interval: Duration = timedelta(milliseconds=10)
    max_batch_alerts: int = 2000
    link_ttl: Duration = timedelta(hours=1)
    # `argus up` runs the gateway in a process of its own, so taking alerts in and routing them
    # (the worker) do not share one interpreter: about twice the ingest rate on two cores.
    own_process: bool = True
    # Refuse new alerts for a scope (503, Retry-After) while its workflow has this many accepted
    # but not yet routed: a queue that large no longer fits a continue-as-new hand-over.
    max_scope_backlog: int | None = Field(default=50_000, ge=1)


SourceType = Literal["embedded", "prometheus", "elasticsearch"]


class SourceConfig(Model):
    name: str
    type: SourceType
    url: str | None = None
    targets: list[str] = Field(default_factory=list)
    scrape_interval: Duration = timedelta(seconds=5)
    timeout: Duration = timedelta(seconds=5)
    index: str = "logs-*"
    # elasticsearch: document field names, e.g. {"service": "service.name", "level": "log.level"}
    fields: dict[Literal["timestamp", "service", "level", "message"], str] = Field(default_factory=dict)
    error_query: str | None = None  # default: <level field>:(error OR fatal OR critical)

    @model_validator(mode="after")
    def _url_needed(self) -> SourceConfig:
        if self.type in ("prometheus", "elasticsearch") and not self.url:
            raise ValueError(f"source {self.name!r}: type {self.type} needs a url")
        if self.type == "embedded" and not self.targets:
            raise ValueError(f"source {self.name!r}: the embedded store needs scrape targets")
        return self


_RULE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


RuleType = Literal["threshold", "anomaly", "log_errors", "log_patterns"]


class RuleConfig(Model):
    """An alerting rule (see docs/monitoring.md).

    threshold: `expr` is PromQL returning the series that breach.
    anomaly: `expr` is PromQL returning series to watch; each is scored by the online detector
      and fires when its score reaches `min_score`.
    log_errors / log_patterns: `expr` is a query_string filter on a log source's documents
      (e.g. `level:error`); fires per service when the count in `window` reaches `threshold`,
      or when log templates appear that were not seen in the `baseline` before the window.
    """

    name: str
    expr: str
    type: RuleType = "threshold"
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    source: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    min_score: float = Field(default=0.4, gt=0, le=1)
    window: Duration = timedelta(minutes=5)
    baseline: Duration = timedelta(hours=1)
    threshold: float = 1.0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _RULE_NAME.match(v):
            raise ValueError(f"rule name {v!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_without_value(cls, v: dict[str, str]) -> dict[str, str]:
        return labels_without_value(v)


class ServiceConfig(Model):
    name: str
    owners: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    tier: str = ""
    description: str = ""
    slis: dict[str, str] = Field(default_factory=dict)  # name -> PromQL / metric selector
    slos: dict[str, str] = Field(default_factory=dict)  # SLI name -> objective, e.g. "99.9% < 0.01"


class RoutingConfig(Model):
    route: Route = Field(
        default_factory=lambda: Route(
            receiver="default",
            group_by=["alertname", "service"],
            group_wait=timedelta(seconds=5),
            group_interval=timedelta(minutes=1),
            repeat_interval=timedelta(hours=4),
        )
    )
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    flap_window: Duration = timedelta(minutes=10)
    flap_threshold: int = 4
    resolve_timeout: Duration = timedelta(minutes=5)
    correlation: CorrelationConfig = Field(default_factory=CorrelationConfig)
    # Alerts one scope holds at most (grouped or held back); new ones beyond are refused with
    # an `over_capacity` decision. A scope's state must continue-as-new in one 2 MiB payload
    # and be rebuilt within the SDK's 2 s task limit: about 40,000 alerts is the ceiling.
    max_tracked_alerts: int = Field(default=25_000, ge=1)


class ApprovalPolicy(Model):
    approvers: list[str] = Field(default_factory=list)
    approver_groups: list[str] = Field(default_factory=list)
    auto_approve_max_risk: Risk | None = None
    timeout: Duration = timedelta(days=7)


class EscalationLevel(Model):
    """Page `targets` (people, `group:<g>`, `oncall:<schedule>`) on `channels` (all if empty),
    wait `wait`, page again `repeat` times, then go to the next level. `active` is a time-of-day
    rule: outside its windows the level is skipped (e.g. a chat level only in business hours)."""

    name: str
    targets: list[str]
    channels: list[str] = Field(default_factory=list)
    wait: Duration | None = None  # default: the policy's reminder_interval
    repeat: int | None = Field(default=None, ge=0)  # default: the policy's reminders_per_level
    active: list[TimeIntervalSpec] = Field(default_factory=list)


class EscalationPolicy(Model):
    reminder_interval: Duration = timedelta(minutes=30)
    reminders_per_level: int = Field(default=2, ge=0)
    levels: list[EscalationLevel] = Field(
        default_factory=lambda: [
            EscalationLevel(name="on-call", targets=["oncall"]),
            EscalationLevel(name="team lead", targets=["lead"]),
        ]
    )
    renotify_acknowledged_after: Duration = timedelta(hours=4)
    # Whom a route's `receiver` pages: its own levels. A receiver not listed pages `levels`;
    # once any is listed, every receiver a route names must be (see Policy), as in Alertmanager,
    # so that a misspelt receiver is a configuration error, not a page to the wrong people.
    receivers: dict[str, list[EscalationLevel]] = Field(default_factory=dict)

    def all_levels(self) -> list[tuple[str, EscalationLevel]]:
        """Every level, with where it is configured (for checks and for who may decide)."""
        out = [(f"policy.escalation level {lvl.name!r}", lvl) for lvl in self.levels]
        for receiver, levels in self.receivers.items():
            out += [(f"policy.escalation.receivers[{receiver!r}] level {lvl.name!r}", lvl) for lvl in levels]
        return out


class VerificationPolicy(Model):
    """After remediation the symptom must stay normal for `period` (checked every `interval`, for at
    most `max_wait`). Then the incident is resolved but kept open for `watch`: a regression seen on
    `regression_checks` checks in a row reopens it and escalates; only a quiet watch closes it."""

    period: Duration = timedelta(minutes=2)
    interval: Duration = timedelta(seconds=10)
    max_wait: Duration = timedelta(minutes=30)
    watch: Duration | None = None  # unset: as long as `period`
    regression_checks: int = Field(default=2, ge=1)

    @property
    def watch_for(self) -> timedelta:
        return self.period if self.watch is None else self.watch


class FreezeWindow(Model):
    """A change freeze: remediation above `max_risk` (none at all when unset) is refused inside it.
    Either a fixed window (`starts_at`..`ends_at`) or recurring `time_intervals` from routing."""

    name: str
    starts_at: UtcDateTime | None = None
    ends_at: UtcDateTime | None = None
    time_intervals: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)  # empty: every service
    max_risk: Risk | None = None

    @model_validator(mode="after")
    def _when(self) -> FreezeWindow:
        fixed = self.starts_at is not None or self.ends_at is not None
        if fixed and (self.starts_at is None or self.ends_at is None):
            raise ValueError(f"freeze {self.name!r}: give both starts_at and ends_at")
        if fixed and self.ends_at <= self.starts_at:  # type: ignore[operator]
            raise ValueError(f"freeze {self.name!r}: ends_at must be after starts_at")
        if not fixed and not self.time_intervals:
            raise ValueError(f"freeze {self.name!r}: needs starts_at/ends_at or time_intervals")
        return self


class RemediationPolicy(Model):
    """Guardrails the workflow applies before any step runs (the Executor re-checks the live target)."""

    lock_lease: Duration = timedelta(minutes=30)  # a holder that never releases loses the lock
    lock_wait: Duration = timedelta(minutes=15)  # how long to queue behind another incident's fix
    rate_limit: int = Field(default=3, ge=1)  # automatic remediations per service per window
    rate_window: Duration = timedelta(hours=1)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    freeze: list[FreezeWindow] = Field(default_factory=list)


class Policy(Model):
    """Everything the workflows decide with. Carried in workflow inputs; reloaded by signal."""

    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    verification: VerificationPolicy = Field(default_factory=VerificationPolicy)
    remediation: RemediationPolicy = Field(default_factory=RemediationPolicy)
    poll_interval: Duration = timedelta(seconds=5)
    rca_lookback: Duration = timedelta(minutes=15)
    rca_settle: Duration = timedelta(seconds=20)  # post-onset data RCA waits for
    dry_run: bool = False
    phases: dict[str, bool] = Field(
        default_factory=lambda: {"monitoring": True, "incident": True, "docgen": True}
    )
    docgen_schedule: str = "0 3 * * *"
    review_docs: bool = False
    sources: list[str] = Field(default_factory=list)
    demo: bool = False

    def for_receiver(self, receiver: str) -> Policy:
        """The policy an incident of `receiver` runs with: its escalation levels are the
        receiver's own (`escalation.receivers`), or the default ones."""
        if receiver not in self.escalation.receivers:
            return self
        escalation = self.escalation.model_copy(update={"levels": self.escalation.receivers[receiver]})
        return self.model_copy(update={"escalation": escalation})

    @model_validator(mode="after")
    def _receivers_defined(self) -> Policy:
        defined = self.escalation.receivers
        if not defined:
            return self

        def walk(route: Route, path: str) -> None:
            if route.receiver is not None and route.receiver not in defined:
                raise ValueError(
                    f"routing route {path}: receiver {route.receiver!r} is not in "
                    f"policy.escalation.receivers (defined: {sorted(defined)})"
                )
            for i, child in enumerate(route.routes):
                walk(child, f"{path}/{i}")

        walk(self.routing.route, "root")
        return self

    @model_validator(mode="after")
    def _freeze_intervals(self) -> Policy:
        known = {t.name for t in self.routing.time_intervals}
        for f in self.remediation.freeze:
            for name in f.time_intervals:
                if name not in known:
                    raise ValueError(
                        f"remediation.freeze {f.name!r}: unknown time interval {name!r} "
                        f"(routing.time_intervals defines: {sorted(known) or 'none'})"
                    )
        return self


class KubernetesConfig(Model):
    """How the Executor reaches a cluster. The token, when needed, comes from the secrets file or
    ARGUS_KUBERNETES_TOKEN, never from here."""

    host: str | None = None  # API server URL; unset: kubeconfig (or in-cluster service account)
    kubeconfig: str | None = None
    context: str | None = None
    verify_ssl: bool = True
    namespaces: list[str] = Field(default_factory=list)  # allowed namespaces; empty: none
    timeout: Duration = timedelta(seconds=20)


class RemediationConfig(Model):
    playbooks_dir: str = "playbooks"
    shell_allow: dict[str, list[str]] = Field(default_factory=dict)  # command -> allowed arg patterns
    http_allow: list[str] = Field(default_factory=list)  # URL prefixes
    kubernetes: KubernetesConfig | None = None


# channel name in `notify.channels` -> its section in `notify` (outbox needs none)
CHANNEL_SECTIONS = {
    "email": "email",
    "email-graph": "email_graph",
    "email-sendgrid": "email_sendgrid",
    "teams": "teams",
    "teams-webhook": "teams_webhook",
    "slack": "slack",
    "pagerduty": "pagerduty",
    "opsgenie": "opsgenie",
    "sms": "sms",
}


class NotifyConfig(Model):
    channels: list[str] = Field(default_factory=lambda: ["outbox"])
    echo: bool = True
    templates_dir: str | None = None  # overrides of argus/templates/notifications, file by file
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)  # per channel name
    email: SmtpConfig | None = None
    email_graph: GraphMailConfig | None = None
    email_sendgrid: SendGridConfig | None = None
    teams: TeamsBotConfig | None = None
    teams_webhook: TeamsWebhookConfig | None = None
    slack: SlackConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    opsgenie: OpsgenieConfig | None = None
    sms: SmsConfig | None = None

    @model_validator(mode="after")
    def _sections(self) -> NotifyConfig:
        for name in self.channels:
            if name == "outbox":
                continue
            if name not in CHANNEL_SECTIONS:
                known = ", ".join(["outbox", *CHANNEL_SECTIONS])
                raise ValueError(f"notify.channels: unknown channel {name!r} (known: {known})")
            section = CHANNEL_SECTIONS[name]
            if getattr(self, section) is None:
                raise ValueError(f"notify.channels lists {name!r} but notify.{section} is not set")
        for name in self.rate_limits:
            if name not in self.channels:
                raise ValueError(f"notify.rate_limits: {name!r} is not in notify.channels")
        return self


class TicketsConfig(Model):
    system: Literal["local", "jira", "servicenow", "pagerduty", "opsgenie"] = "local"
    url: str | None = None
    project: str = "OPS"
    jira: JiraConfig | None = None
    servicenow: ServiceNowConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    opsgenie: OpsgenieConfig | None = None
    sync: TicketSyncConfig = Field(default_factory=TicketSyncConfig)

    @model_validator(mode="after")
    def _section(self) -> TicketsConfig:
        if self.system != "local" and getattr(self, self.system) is None:
            raise ValueError(f"tickets.system is {self.system!r} but tickets.{self.system} is not set")
        return self


class ConfluenceDocsConfig(Model):
    """Publish documents as Confluence pages (REST v2, storage format). Secrets by name:
    `confluence_email` + `confluence_api_token` (Basic), or `confluence_token` (Bearer)."""

    url: str
    space: str
    parent_id: str | None = None


class ServiceNowKbConfig(Model):
    """Publish documents as ServiceNow `kb_knowledge` articles. Secrets by name:
    `servicenow_username` + `servicenow_password`, or `servicenow_token`."""

    url: str
    knowledge_base: str  # sys_id of the knowledge base
    category: str | None = None
    key_field: str = "short_description"
    publish: bool = False  # move articles to `published` (instant-publish knowledge bases)


class DocsConfig(Model):
    repo: str = "docs-repo"  # relative to state_dir unless absolute
    remote: str | None = None
    branch: str = "main"
    templates_dir: str | None = None
    confluence: ConfluenceDocsConfig | None = None
    servicenow: ServiceNowKbConfig | None = None
    charts: bool = True  # PNG charts of the key metrics in post-mortems


class ArchiveConfig(Model):
    url: str | None = None  # default: sqlite under state_dir


class DetectorsConfig(Model):
    """The worker's anomaly detector state (`argus.integrations.detector_store`)."""

    max_cached: int = Field(default=2000, ge=1)  # detectors kept in memory, about 190 KiB each
    flush_interval: Duration = timedelta(seconds=60)  # changed ones written back this often
    retention: Duration = timedelta(days=7)  # a series not seen this long is forgotten


class SandboxConfig(Model):
    url: str = "http://127.0.0.1:9100"
    enabled: bool = True


class RcaConfig(Model):
    """Queries the RCA agent runs over the incident window; each returns series with a
    `service` label. Keys name the metric in evidence (latency, errors, cpu, ...)."""

    metrics: dict[str, str] = Field(default_factory=dict)
    source: str | None = None
    step: Duration = timedelta(seconds=5)
    log_source: str | None = None
    log_file: str | None = None  # JSON-lines log file (the sandbox's); relative to state_dir


class ArgusConfig(Model):
    state_dir: str = ".argus"
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    people: dict[str, Person] = Field(default_factory=dict)
    oncall: list[OnCallSchedule] = Field(default_factory=list)
    slos: list[SloConfig] = Field(default_factory=list)
    services: list[ServiceConfig] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    tickets: TicketsConfig = Field(default_factory=TicketsConfig)
    docs: DocsConfig = Field(default_factory=DocsConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    rca: RcaConfig = Field(default_factory=RcaConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    heartbeats: HeartbeatsConfig = Field(default_factory=HeartbeatsConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)

    @model_validator(mode="after")
    def _references(self) -> ArgusConfig:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("source names must be unique")
        for rule in self.rules:
            if rule.source is not None and rule.source not in names:
                raise ValueError(f"rule {rule.name!r}: unknown source {rule.source!r} (known: {names})")
        for slo in self.slos:
            if slo.source is not None and slo.source not in names:
                raise ValueError(f"slo {slo.name!r}: unknown source {slo.source!r} (known: {names})")
        if not self.policy.sources and (self.rules or self.slos):
            # Monitoring pulls on its timer only when there is something to pull.
            self.policy.sources = names
        known = {s.name for s in self.services}
        for svc in self.services:
            for dep in svc.depends_on:
                if dep not in known:
                    raise ValueError(f"service {svc.name!r}: depends_on unknown service {dep!r}")
        if not self.policy.routing.correlation.topology:
            # The router runs inside a workflow and sees only the policy: give it the topology.
            self.policy.routing.correlation.topology = self.topology()
        return self

    @model_validator(mode="after")
    def _people_references(self) -> ArgusConfig:
        # A page to a schedule or person that does not exist would reach nobody, silently.
        schedules = {s.name for s in self.oncall}
        if len(schedules) != len(self.oncall):
            raise ValueError("oncall: schedule names must be unique")
        for where, lvl in self.policy.escalation.all_levels():
            for target in lvl.targets:
                if target.startswith("oncall:") and target.removeprefix("oncall:") not in schedules:
                    raise ValueError(
                        f"{where}: unknown on-call schedule {target!r} (known: {sorted(schedules)})"
                    )
            for ch in lvl.channels:
                if ch not in self.notify.channels:
                    raise ValueError(f"{where}: channel {ch!r} is not in notify.channels")
        if self.people:
            for sched in self.oncall:
                users = [u for layer in sched.layers for u in layer.users]
                users += [o.user for o in sched.overrides] + sched.fallback
                for user in users:
                    if user not in self.people:
                        raise ValueError(f"oncall {sched.name!r}: {user!r} is not in people")
        return self

    def topology(self) -> list[tuple[str, str]]:
        return [(s.name, d) for s in self.services for d in s.depends_on]

    def time_interval_specs(self) -> list[tuple[str, list[TimeIntervalSpec], bool]]:
        """Every list of time-interval entries in the configuration: (where, the entries, whether
        a time range may span midnight). Routing intervals, escalation levels' `active`, and
        on-call layers' `restrictions` (a night layer 18:00-09:00)."""
        out = [
            (f"time interval {ti.name!r}", ti.time_intervals, False)
            for ti in self.policy.routing.time_intervals
        ]
        out += [
            (f"{where}: active", level.active, False) for where, level in self.policy.escalation.all_levels()
        ]
        out += [
            (f"oncall {sched.name!r} layer {layer.name!r}: restrictions", layer.restrictions, True)
            for sched in self.oncall
            for layer in sched.layers
        ]
        return out

    def owners_of(self, service: str) -> list[str]:
        for s in self.services:
            if s.name == service:
                return s.owners
        return []


__all__ = ["ArgusConfig", "Matcher", "Policy"]
