"""Builds the integrations and the micro-agents from configuration: the one place that
knows which concrete system stands behind each Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from argus.activities.aggregator import Aggregator
from argus.activities.backfill_archiver import BackfillArchiver
from argus.activities.closer import Closer
from argus.activities.collector import Collector
from argus.activities.doc_writer import DocWriter
from argus.activities.enricher import Enricher
from argus.activities.evaluator import Evaluator
from argus.activities.executor import Executor
from argus.activities.heartbeat_alerts import HeartbeatAlerts
from argus.activities.incident_creator import IncidentCreator
from argus.activities.notifier import ApprovalLinks, Notifier
from argus.activities.orchestration import Orchestration
from argus.activities.publisher import Publisher
from argus.activities.rca_agent import RcaAgent
from argus.activities.recommender import Recommender
from argus.activities.remediation_guard import RemediationGuard
from argus.activities.solicitor import Solicitor
from argus.activities.ticket_updater import TicketUpdater
from argus.activities.ticket_writer import TicketWriter
from argus.integrations.action_journal import ActionJournal
from argus.integrations.archive import IncidentArchive
from argus.integrations.base import Channel, LogSource, MetricsSource, TicketSystem
from argus.integrations.dedupe import SentKeys
from argus.integrations.detector_store import DetectorStore
from argus.integrations.elasticsearch import from_config as es_from_config
from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore, EmbeddedScraper
from argus.integrations.git_docs import GitDocsRepo
from argus.integrations.kubernetes import KubernetesTarget
from argus.integrations.local_tickets import LocalTickets
from argus.integrations.log_file import JsonLinesLogSource
from argus.integrations.oncall import Directory
from argus.integrations.outbox import Outbox
from argus.integrations.pending_docs import PendingDocuments
from argus.integrations.playbooks import load_playbooks
from argus.integrations.prometheus import PrometheusSource
from argus.integrations.sandbox import SandboxTarget
from argus.integrations.signed_links import LinkSigner
from argus.integrations.sql import sqlite_url
from argus.integrations.traces import trace_store
from argus.models import ArgusConfig, Playbook
from argus.workflows.argus import ArgusWorkflow
from argus.workflows.backfill import BackfillWorkflow
from argus.workflows.docgen import DocGenWorkflow
from argus.workflows.heartbeat import HeartbeatWorkflow
from argus.workflows.incident import IncidentWorkflow
from argus.workflows.monitoring import MonitoringWorkflow
from argus.workflows.remediation_lock import RemediationBudgetWorkflow, RemediationLockWorkflow

from . import vendors
from .settings import ConfigError, Secrets, load_secrets, state_dir

WORKFLOWS = [
    ArgusWorkflow,
    MonitoringWorkflow,
    IncidentWorkflow,
    DocGenWorkflow,
    BackfillWorkflow,
    RemediationLockWorkflow,
    RemediationBudgetWorkflow,
    HeartbeatWorkflow,
]
REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    # Paths in configuration are relative to the state dir, except the shipped playbooks.
    return base / p


@dataclass
class Runtime:
    config: ArgusConfig
    secrets: Secrets
    state: Path
    archive: IncidentArchive
    tickets: TicketSystem
    channels: dict[str, Channel]
    docs: GitDocsRepo
    sources: dict[str, MetricsSource]
    scrapers: list[EmbeddedScraper] = field(default_factory=list)
    sandbox: SandboxTarget | None = None
    playbooks: list[Playbook] = field(default_factory=list)
    signer: LinkSigner | None = None
    publishers: list = field(default_factory=list)  # besides `docs` (git): Confluence, ServiceNow KB
    directory: Directory = field(default_factory=Directory)  # people and on-call schedules
    logs: dict[str, LogSource] = field(default_factory=dict)  # elasticsearch sources
    detectors: DetectorStore | None = None  # anomaly detector state, worker-side

    @property
    def public_url(self) -> str:
        g = self.config.gateway
        return g.public_url or f"http://{g.host}:{g.port}"


def archive_url(config: ArgusConfig, state: Path) -> str:
    return config.archive.url or sqlite_url(state / "archive.db")


def playbooks_dir(config: ArgusConfig, state: Path) -> Path:
    p = Path(config.remediation.playbooks_dir).expanduser()
    if p.is_absolute():
        return p
    for base in (Path.cwd(), REPO_ROOT):
        if (base / p).exists():
            return base / p
    return state / p


def build_sources(config: ArgusConfig, state: Path) -> tuple[dict[str, MetricsSource], list[EmbeddedScraper]]:
    sources: dict[str, MetricsSource] = {}
    scrapers = []
    for s in config.sources:
        if s.type == "embedded":
            store = EmbeddedMetricsStore(
                state / f"metrics-{s.name}.db", max_gap=2.5 * s.scrape_interval.total_seconds()
            )
            sources[s.name] = EmbeddedMetricsSource(s.name, store, s.targets)
            scrapers.append(
                EmbeddedScraper(
                    store, s.targets, s.scrape_interval.total_seconds(), s.timeout.total_seconds()
                )
            )
        elif s.type == "prometheus":
            assert s.url is not None
            sources[s.name] = PrometheusSource(s.name, s.url, timeout=s.timeout.total_seconds())
    return sources, scrapers


def build_tickets(
    config: ArgusConfig, state: Path, public_url: str, secrets: Secrets | None = None
) -> TicketSystem:
    if config.tickets.system == "local":
        return LocalTickets(sqlite_url(state / "tickets.db"), base_url=public_url)
    sent = SentKeys(state / vendors.SENT_KEYS_FILE)
    return vendors.build_vendor_tickets(config, secrets or load_secrets(config), sent)


def build_publishers(config: ArgusConfig, secrets: Secrets) -> list:
    """Vendor document publishers from `docs.confluence` / `docs.servicenow`; secrets by name."""
    from argus.integrations.confluence import ConfluencePublisher
    from argus.integrations.servicenow import ServiceNowKnowledge

    out: list = []
    conf = config.docs.confluence
    if conf is not None:
        token = secrets.get("confluence_token")
        email, api_token = secrets.get("confluence_email"), secrets.get("confluence_api_token")
        if not token and not (email and api_token):
            raise ConfigError(
                "docs.confluence needs secrets confluence_email + confluence_api_token, or confluence_token "
                "(environment ARGUS_CONFLUENCE_* or the secrets file)"
            )
        out.append(
            ConfluencePublisher(
                conf.url, conf.space, email=email, api_token=api_token, token=token, parent_id=conf.parent_id
            )
        )
    sn = config.docs.servicenow
    if sn is not None:
        token = secrets.get("servicenow_token")
        user, password = secrets.get("servicenow_username"), secrets.get("servicenow_password")
        if not token and not (user and password):
            raise ConfigError(
                "docs.servicenow needs secrets servicenow_username + servicenow_password, or "
                "servicenow_token (environment ARGUS_SERVICENOW_* or the secrets file)"
            )
        kb = ServiceNowKnowledge(
            sn.url, sn.knowledge_base, username=user, password=password, token=token,
            category=sn.category, key_field=sn.key_field, publish=sn.publish,
        )  # fmt: skip
        out.append(kb)
    return out


def build_channels(config: ArgusConfig, state: Path, secrets: Secrets | None = None) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    sent: SentKeys | None = None
    for name in config.notify.channels:
        if name == "outbox":
            channels[name] = Outbox(state / "outbox.jsonl", echo=config.notify.echo)
            continue
        sent = sent or SentKeys(state / vendors.SENT_KEYS_FILE)
        templates = vendors.templates_for(config, state)
        channels[name] = vendors.build_channel(name, config, secrets or load_secrets(config), sent, templates)
    return channels


def build_runtime(config: ArgusConfig, secrets: Secrets | None = None) -> Runtime:
    state = state_dir(config)
    secrets = secrets or load_secrets(config)
    sources, scrapers = build_sources(config, state)
    g = config.gateway
    public_url = g.public_url or f"http://{g.host}:{g.port}"
    rt = Runtime(
        config=config,
        secrets=secrets,
        state=state,
        archive=IncidentArchive(archive_url(config, state)),
        tickets=build_tickets(config, state, public_url, secrets),
        channels=build_channels(config, state, secrets),
        directory=vendors.build_directory(config, state),
        docs=GitDocsRepo(
            resolve_path(state, config.docs.repo), remote=config.docs.remote, branch=config.docs.branch
        ),
        publishers=build_publishers(config, secrets),
        sources=sources,
        scrapers=scrapers,
        sandbox=SandboxTarget(config.sandbox.url) if config.sandbox.enabled else None,
        playbooks=load_playbooks(playbooks_dir(config, state)),
        signer=LinkSigner(secrets.require("link_secret").encode()),
        logs={s.name: es_from_config(s, secrets.get) for s in config.sources if s.type == "elasticsearch"},
        detectors=DetectorStore(
            state / "detectors.db",
            max_cached=config.detectors.max_cached,
            flush_seconds=config.detectors.flush_interval.total_seconds(),
            retention_seconds=config.detectors.retention.total_seconds(),
        ),
    )
    return rt


def kubernetes_target(config: ArgusConfig, secrets: Secrets) -> KubernetesTarget | None:
    """The Executor's cluster, when `remediation.kubernetes` is set; the token is a secret."""
    k = config.remediation.kubernetes
    return KubernetesTarget.from_config(k, secrets.get("kubernetes_token")) if k is not None else None


def rca_log_source(config: ArgusConfig, state: Path) -> JsonLinesLogSource | None:
    """Logs for RCA evidence from `rca.log_file`, a JSON-lines file such as the sandbox's log."""
    if config.rca.log_file:
        return JsonLinesLogSource(resolve_path(state, config.rca.log_file))
    return None


def build_activities(rt: Runtime) -> list:
    c = rt.config
    timeouts = {s.name: s.timeout.total_seconds() for s in c.sources}
    collector = Collector(rt.sources, c.rules, logs=rt.logs, slos=c.slos, timeouts=timeouts)
    assert rt.signer is not None
    links = ApprovalLinks(rt.signer, rt.public_url, int(c.gateway.link_ttl.total_seconds()))
    notifier = Notifier(rt.channels, directory=rt.directory, links=links, rate_limits=c.notify.rate_limits)
    rca_source = rt.sources.get(c.rca.source) if c.rca.source else next(iter(rt.sources.values()), None)
    executor = Executor(
        c.remediation, rt.sandbox, ActionJournal(rt.state / "actions.db"), kubernetes_target(c, rt.secrets)
    )
    rca_logs = rt.logs.get(c.rca.log_source or "") or rca_log_source(c, rt.state)
    agents = [
        collector,
        Evaluator(c.rules, collector, c.slos, rt.detectors),
        IncidentCreator(rt.archive),
        notifier,
        TicketWriter(rt.tickets),
        RcaAgent(
            rca_source, c.rca, c.topology(), rt.archive, logs=rca_logs, traces=trace_store(c.traces, rt.state)
        ),
        Enricher(rt.tickets, rt.archive, rt.docs),
        Recommender(rt.playbooks, rt.archive, docs=rt.docs, guardrails=executor.guardrails),
        Solicitor(notifier),
        executor,
        RemediationGuard(),
        TicketUpdater(rt.tickets),
        Closer(collector, rt.archive, services=c.services),
        Aggregator(rt.archive),
        BackfillArchiver(rt.archive),
        DocWriter(
            c.services,
            Path(c.docs.templates_dir) if c.docs.templates_dir else None,
            playbooks=rt.playbooks,
            metrics=rca_source,
            chart_metrics=c.rca.metrics if c.docs.charts else {},
            existing_docs=rt.docs,
        ),
        Publisher([rt.docs, *rt.publishers], PendingDocuments(rt.state / "docs-pending")),
        Orchestration(c.temporal.monitoring_queue, c.temporal.payload_store.enabled),
        HeartbeatAlerts(
            c.policy, c.temporal.task_queue, c.temporal.monitoring_queue, c.temporal.payload_store.enabled
        ),
    ]
    return activity_methods(agents)


def activity_methods(agents: list[object]) -> list:
    """Every bound method of every agent that is marked as an activity."""
    out = []
    for agent in agents:
        for name in dir(type(agent)):
            fn = getattr(type(agent), name)
            if callable(fn) and hasattr(fn, "__temporal_activity_definition"):
                out.append(getattr(agent, name))
    return out
