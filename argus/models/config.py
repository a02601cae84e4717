"""The configuration schema (argus.yaml) and the policy subset that workflows carry.

Workflows cannot read files, so the parts of the configuration that decide things (routing,
approval, escalation, verification, enabled phases) travel as `Policy` in workflow inputs
and are replaced by the orchestrator's `reload` signal. Secrets never appear here: they are
read by the worker from the environment or a secrets file.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .common import Model
from .durations import Duration
from .remediation import Risk
from .routing import InhibitRule, MaintenanceWindow, Matcher, Route, TimeInterval


class TemporalConfig(Model):
    address: str | None = None  # None: `argus up` starts the embedded dev server
    namespace: str = "argus"
    task_queue: str = "argus"
    retention: Duration = timedelta(days=30)
    dev_server_port: int = 7233
    ui_port: int = 8233


class GatewayConfig(Model):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    require_token: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    flush_interval: Duration = timedelta(milliseconds=10)
    max_batch_alerts: int = 2000
    link_ttl: Duration = timedelta(hours=1)


SourceType = Literal["embedded", "prometheus", "elasticsearch"]


class SourceConfig(Model):
    name: str
    type: SourceType
    url: str | None = None
    targets: list[str] = Field(default_factory=list)
    scrape_interval: Duration = timedelta(seconds=5)
    timeout: Duration = timedelta(seconds=5)
    index: str = "logs-*"

    @model_validator(mode="after")
    def _url_needed(self) -> SourceConfig:
        if self.type in ("prometheus", "elasticsearch") and not self.url:
            raise ValueError(f"source {self.name!r}: type {self.type} needs a url")
        if self.type == "embedded" and not self.targets:
            raise ValueError(f"source {self.name!r}: the embedded store needs scrape targets")
        return self


_RULE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class RuleConfig(Model):
    """A threshold rule: a PromQL expression that returns the series that breach."""

    name: str
    expr: str
    for_: Duration = Field(default=timedelta(0), alias="for")
    source: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _RULE_NAME.match(v):
            raise ValueError(f"rule name {v!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        return v


class ServiceConfig(Model):
    name: str
    owners: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    tier: str = ""
    description: str = ""
    slis: dict[str, str] = Field(default_factory=dict)  # name -> PromQL / metric selector


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


class ApprovalPolicy(Model):
    approvers: list[str] = Field(default_factory=list)
    approver_groups: list[str] = Field(default_factory=list)
    auto_approve_max_risk: Risk | None = None
    timeout: Duration = timedelta(days=7)


class EscalationLevel(Model):
    name: str
    targets: list[str]
    channels: list[str] = Field(default_factory=list)


class EscalationPolicy(Model):
    reminder_interval: Duration = timedelta(minutes=30)
    reminders_per_level: int = 2
    levels: list[EscalationLevel] = Field(
        default_factory=lambda: [
            EscalationLevel(name="on-call", targets=["oncall"]),
            EscalationLevel(name="team lead", targets=["lead"]),
        ]
    )
    renotify_acknowledged_after: Duration = timedelta(hours=4)


class VerificationPolicy(Model):
    period: Duration = timedelta(minutes=2)
    interval: Duration = timedelta(seconds=10)
    max_wait: Duration = timedelta(minutes=30)


class Policy(Model):
    """Everything the workflows decide with. Carried in workflow inputs; reloaded by signal."""

    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    verification: VerificationPolicy = Field(default_factory=VerificationPolicy)
    poll_interval: Duration = timedelta(seconds=5)
    rca_lookback: Duration = timedelta(minutes=15)
    dry_run: bool = False
    phases: dict[str, bool] = Field(
        default_factory=lambda: {"monitoring": True, "incident": True, "docgen": True}
    )
    docgen_schedule: str = "0 3 * * *"
    review_docs: bool = False
    sources: list[str] = Field(default_factory=list)
    demo: bool = False


class RemediationConfig(Model):
    playbooks_dir: str = "playbooks"
    shell_allow: dict[str, list[str]] = Field(default_factory=dict)  # command -> allowed arg patterns
    http_allow: list[str] = Field(default_factory=list)  # URL prefixes


class NotifyConfig(Model):
    channels: list[str] = Field(default_factory=lambda: ["outbox"])
    echo: bool = True


class TicketsConfig(Model):
    system: Literal["local", "jira", "servicenow", "pagerduty", "opsgenie"] = "local"
    url: str | None = None
    project: str = "OPS"


class DocsConfig(Model):
    repo: str = "docs-repo"  # relative to state_dir unless absolute
    remote: str | None = None
    templates_dir: str | None = None


class ArchiveConfig(Model):
    url: str | None = None  # default: sqlite under state_dir


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


class ArgusConfig(Model):
    state_dir: str = ".argus"
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    services: list[ServiceConfig] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    tickets: TicketsConfig = Field(default_factory=TicketsConfig)
    docs: DocsConfig = Field(default_factory=DocsConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    rca: RcaConfig = Field(default_factory=RcaConfig)

    @model_validator(mode="after")
    def _references(self) -> ArgusConfig:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("source names must be unique")
        for rule in self.rules:
            if rule.source is not None and rule.source not in names:
                raise ValueError(f"rule {rule.name!r}: unknown source {rule.source!r} (known: {names})")
        if not self.policy.sources and self.rules:
            # Monitoring pulls on its timer only when there is something to pull.
            self.policy.sources = names
        known = {s.name for s in self.services}
        for svc in self.services:
            for dep in svc.depends_on:
                if dep not in known:
                    raise ValueError(f"service {svc.name!r}: depends_on unknown service {dep!r}")
        return self

    def topology(self) -> list[tuple[str, str]]:
        return [(s.name, d) for s in self.services for d in s.depends_on]

    def owners_of(self, service: str) -> list[str]:
        for s in self.services:
            if s.name == service:
                return s.owners
        return []


__all__ = ["ArgusConfig", "Matcher", "Policy"]
