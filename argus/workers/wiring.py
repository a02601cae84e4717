"""Builds the integrations and the micro-agents from configuration: the one place that
knows which concrete system stands behind each Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from argus.activities.aggregator import Aggregator
from argus.activities.closer import Closer
from argus.activities.collector import Collector
from argus.activities.doc_writer import DocWriter
from argus.activities.enricher import Enricher
from argus.activities.evaluator import Evaluator
from argus.activities.executor import Executor
from argus.activities.incident_creator import IncidentCreator
from argus.activities.notifier import Notifier
from argus.activities.orchestration import Orchestration
from argus.activities.publisher import Publisher
from argus.activities.rca_agent import RcaAgent
from argus.activities.recommender import Recommender
from argus.activities.solicitor import Solicitor
from argus.activities.ticket_updater import TicketUpdater
from argus.activities.ticket_writer import TicketWriter
from argus.integrations.action_journal import ActionJournal
from argus.integrations.archive import IncidentArchive
from argus.integrations.base import Channel, MetricsSource, TicketSystem
from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore, EmbeddedScraper
from argus.integrations.git_docs import GitDocsRepo
from argus.integrations.local_tickets import LocalTickets
from argus.integrations.outbox import Outbox
from argus.integrations.playbooks import load_playbooks
from argus.integrations.prometheus import PrometheusSource
from argus.integrations.sandbox import SandboxTarget
from argus.integrations.signed_links import LinkSigner
from argus.integrations.sql import sqlite_url
from argus.models import ArgusConfig, Playbook
from argus.workflows.argus import ArgusWorkflow
from argus.workflows.backfill import BackfillWorkflow
from argus.workflows.docgen import DocGenWorkflow
from argus.workflows.incident import IncidentWorkflow
from argus.workflows.monitoring import MonitoringWorkflow

from .settings import ConfigError, Secrets, load_secrets, state_dir

WORKFLOWS = [ArgusWorkflow, MonitoringWorkflow, IncidentWorkflow, DocGenWorkflow, BackfillWorkflow]
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
            store = EmbeddedMetricsStore(state / f"metrics-{s.name}.db")
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


def build_tickets(config: ArgusConfig, state: Path, public_url: str) -> TicketSystem:
    if config.tickets.system == "local":
        return LocalTickets(sqlite_url(state / "tickets.db"), base_url=public_url)
    raise ConfigError(f"tickets.system {config.tickets.system!r} is not available in this build")


def build_channels(config: ArgusConfig, state: Path) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for name in config.notify.channels:
        if name == "outbox":
            channels[name] = Outbox(state / "outbox.jsonl", echo=config.notify.echo)
        else:
            raise ConfigError(f"notify.channels: unknown channel {name!r}")
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
        tickets=build_tickets(config, state, public_url),
        channels=build_channels(config, state),
        docs=GitDocsRepo(resolve_path(state, config.docs.repo), remote=config.docs.remote),
        sources=sources,
        scrapers=scrapers,
        sandbox=SandboxTarget(config.sandbox.url) if config.sandbox.enabled else None,
        playbooks=load_playbooks(playbooks_dir(config, state)),
        signer=LinkSigner(secrets.require("link_secret").encode()),
    )
    return rt


def build_activities(rt: Runtime) -> list:
    c = rt.config
    collector = Collector(rt.sources, c.rules)
    notifier = Notifier(rt.channels)
    assert rt.signer is not None
    rca_source = rt.sources.get(c.rca.source) if c.rca.source else next(iter(rt.sources.values()), None)
    agents = [
        collector,
        Evaluator(c.rules, collector),
        IncidentCreator(rt.archive),
        notifier,
        TicketWriter(rt.tickets),
        RcaAgent(rca_source, c.rca, c.topology(), rt.archive),
        Enricher(rt.tickets, rt.archive, rt.docs),
        Recommender(rt.playbooks, rt.archive),
        Solicitor(notifier, rt.signer, rt.public_url, int(c.gateway.link_ttl.total_seconds())),
        Executor(c.remediation, rt.sandbox, ActionJournal(rt.state / "actions.db")),
        TicketUpdater(rt.tickets),
        Closer(collector, rt.archive),
        Aggregator(rt.archive),
        DocWriter(c.services, Path(c.docs.templates_dir) if c.docs.templates_dir else None),
        Publisher([rt.docs]),
        Orchestration(),
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
