"""The `argus` command line (typer + rich).

Short-lived commands end with `os._exit` after flushing output: the Temporal SDK can crash
at interpreter exit in client processes (sdk-python#300), which would turn success into a
non-zero exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from argus.models import (
    Acknowledge,
    ApprovalDecision,
    ArgusConfig,
    CommentSignal,
    DecisionKind,
    IncidentState,
    IncidentSummary,
    Matcher,
    ResolveSignal,
    RouteDecision,
    Silence,
    SilenceExpire,
    SilenceRequest,
    SilenceState,
    SilenceUpdate,
    parse_duration,
    parse_moment,
)
from argus.models.agents import BackfillInput, BackfillProgress, MonitoringStatus
from argus.models.config import WorkerQueues

from .settings import ConfigError, load_config, state_dir

app = typer.Typer(help="ARGUS: incident automation on durable Temporal workflows.", no_args_is_help=True)
incidents_app = typer.Typer(help="List and inspect incidents.", no_args_is_help=True)
silence_app = typer.Typer(help="Silence alerts by label matchers.", no_args_is_help=True)
rca_app = typer.Typer(help="Root-cause analysis.", no_args_is_help=True)
detect_app = typer.Typer(help="Anomaly detection.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(silence_app, name="silence")
app.add_typer(rca_app, name="rca")
app.add_typer(detect_app, name="detect")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Configuration file (default: embedded).")
]
TemporalOpt = Annotated[
    str | None,
    typer.Option("--temporal", help="HOST:PORT of an existing Temporal server instead of the embedded one."),
]
ParentPidOpt = Annotated[
    int | None, typer.Option(hidden=True, help="Stop when this process is gone (`argus up`'s child).")
]


def finish(code: int = 0) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(coro: Coroutine[Any, Any, int | None]) -> None:
    """Run a command's coroutine, report errors plainly, and leave with os._exit."""
    try:
        code = asyncio.run(coro) or 0
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        code = 2
    except CliError as exc:
        err.print(f"[red]error:[/] {exc}")
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    finish(code)


async def stack_command(main: Coroutine[Any, Any, int]) -> int:
    """Run a command that starts a Stack. Until Stack.wait takes them over, SIGINT and SIGTERM
    cancel it, so that `async with Stack` stops what it started: a SIGTERM would otherwise end
    the process at once and leave the dev server running (and a shell may start a background
    job with SIGINT ignored)."""
    from .stack import on_stop_signals

    task = asyncio.current_task()
    assert task is not None
    on_stop_signals(task.cancel)
    try:
        return await main
    except asyncio.CancelledError:  # stopped during start-up or the demo: all stopped anyway
        err.print("ARGUS stopped.")
        return 130


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _config(path: Path | None) -> ArgusConfig:
    return load_config(path)


async def _client(config: ArgusConfig, temporal: str | None = None):  # type: ignore[no-untyped-def]
    from .client import connect, payload_storage
    from .stack import read_stack_info

    info = read_stack_info(state_dir(config))
    address = (
        temporal
        or config.temporal.address
        or (info.temporal if info else f"127.0.0.1:{config.temporal.dev_server_port}")
    )
    try:
        from .codec import codec_from
        from .settings import load_secrets

        codec = codec_from(config, load_secrets(config)) if config.encryption.enabled else None
        storage = payload_storage(config, state_dir(config))
        return await asyncio.wait_for(connect(address, config.temporal.namespace, codec, storage), timeout=10)
    except Exception as exc:
        raise CliError(f"cannot reach Temporal at {address} ({exc}); is `argus up` running?") from exc


def _user(explicit: str | None) -> str:
    return explicit or os.environ.get("ARGUS_USER") or getpass.getuser()


# --- running ARGUS ---------------------------------------------------------------------------------
@app.command()
def up(
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    sandbox: Annotated[
        bool, typer.Option(help="Also run the sandbox (the demo's simulated system).")
    ] = False,
    demo: Annotated[bool, typer.Option(help="Run the demo once the stack is up, then keep running.")] = False,
) -> None:
    """Start ARGUS on its embedded defaults: Temporal dev server, worker, gateway."""
    from .demo import run_demo, summary
    from .stack import Stack

    async def main() -> int:
        cfg = _config(config)
        if demo:
            cfg.policy.demo = True
        async with Stack(
            cfg,
            temporal=temporal,
            sandbox=sandbox or demo,
            gateway_process=cfg.gateway.own_process,
            own_process=True,
            monitoring_process=cfg.temporal.monitoring_process,
        ) as stack:
            err.print(
                f"[green]ARGUS is up[/]: gateway {stack.gateway_url}"
                + (f", Web UI {stack.ui_url}" if stack.ui_url else "")
            )
            if demo:
                result = await run_demo(cfg, stack)
                out.print(summary(result))
            err.print("Press Ctrl-C to stop.")
            await stack.wait()
        err.print("ARGUS stopped.")
        return 0

    run(stack_command(main()))


@app.command("demo")
def demo_cmd(
    config: ConfigOpt = None,
    fault: Annotated[
        str, typer.Option(help="Fault to inject: bad_deploy, cpu, memory_leak, latency, errors.")
    ] = "bad_deploy",
    service: Annotated[str, typer.Option(help="Service to break.")] = "payments",
    manual: Annotated[
        bool, typer.Option(help="Wait for `argus approve` instead of approving automatically.")
    ] = False,
    keep_running: Annotated[
        bool, typer.Option(help="Keep the stack up after the demo (Ctrl-C to stop).")
    ] = False,
) -> None:
    """Start the stack and the sandbox, break the sandbox, and follow ARGUS to closure."""
    from .demo import run_demo, summary
    from .stack import Stack

    async def main() -> int:
        cfg = _config(config)
        cfg.policy.demo = not manual
        async with Stack(
            cfg, sandbox=True, own_process=True, monitoring_process=cfg.temporal.monitoring_process
        ) as stack:
            result = await run_demo(cfg, stack, fault=fault, service=service)
            out.print(summary(result))
            if keep_running:
                err.print("Press Ctrl-C to stop.")
                await stack.wait()
            ok = result.incident.status.value == "closed"
        return 0 if ok else 1

    run(stack_command(main()))


@app.command()
def worker(
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    queues: Annotated[
        WorkerQueues,
        typer.Option(
            help="Poll both task queues (all), only the main one (main: incidents and the rest), "
            "or only the monitoring scopes' (monitoring)."
        ),
    ] = WorkerQueues.ALL,
    parent_pid: ParentPidOpt = None,
) -> None:
    """Run only a worker (production: scale by running more)."""
    from .gc_tuning import tune_gc
    from .wiring import build_runtime
    from .worker import make_workers, run_scrapers

    async def main() -> int:
        from .stack import ensure_search_attributes, on_stop_signals

        cfg = _config(config)
        client = await _client(cfg, temporal)
        # Idempotent: a fresh cluster gets the search attributes incidents are filtered by.
        await ensure_search_attributes(client, cfg.temporal.namespace)
        rt = build_runtime(cfg)
        workers = make_workers(client, rt, queues)
        tune_gc()
        stop = asyncio.Event()
        on_stop_signals(stop.set)
        watchdog = asyncio.create_task(_until_orphaned(parent_pid, stop.set)) if parent_pid else None
        # The scrapers feed the main queue's pipelines; a monitoring-only worker leaves them to it.
        scrapers = asyncio.create_task(run_scrapers(rt, stop)) if queues != WorkerQueues.MONITORING else None
        try:
            async with contextlib.AsyncExitStack() as running:
                for w in workers:
                    await running.enter_async_context(w)
                await stop.wait()
            if scrapers is not None:
                await scrapers
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if rt.detectors is not None:
                rt.detectors.close()  # write back what the anomaly detectors learned since the last flush
        return 0

    run(main())


async def _until_orphaned(parent_pid: int, stop: Callable[[], object]) -> None:
    """Started by `argus up`: if that process dies (even by SIGKILL), stop too, so a restarted
    `argus up` finds the port free and no second worker polls its queues."""
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - nothing signals a parent gone
        await asyncio.sleep(0.5)
    stop()


@app.command()
def gateway(
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    parent_pid: ParentPidOpt = None,
) -> None:
    """Run only the HTTP gateway."""
    from argus.integrations.archive import IncidentArchive
    from argus.integrations.signed_links import LinkSigner, NonceStore

    from .gateway import GatewayContext, http_server
    from .gc_tuning import tune_gc
    from .settings import load_secrets
    from .wiring import archive_url

    async def main() -> int:
        cfg = _config(config)
        client = await _client(cfg, temporal)
        secrets = load_secrets(cfg)
        st = state_dir(cfg)
        ctx = GatewayContext(
            cfg,
            client,
            IncidentArchive(archive_url(cfg, st)),
            LinkSigner(secrets.require("link_secret").encode()),
            NonceStore(st / "nonces.db"),
            token=secrets.require("gateway_token") if cfg.gateway.require_token else None,
        )
        server = http_server(ctx)
        tune_gc()

        def stop() -> None:
            server.should_exit = True

        watchdog = asyncio.create_task(_until_orphaned(parent_pid, stop)) if parent_pid is not None else None
        await server.serve()
        if watchdog is not None:
            watchdog.cancel()
        return 0

    run(main())


@app.command()
def status(config: ConfigOpt = None, temporal: TemporalOpt = None, scope: str = "default") -> None:
    """Monitoring status: groups, silences, source health."""

    async def main() -> int:
        cfg = _config(config)
        client = await _client(cfg, temporal)
        handle = client.get_workflow_handle(f"monitoring-{scope}")
        try:
            st = await handle.query("status", result_type=MonitoringStatus)
        except Exception as exc:
            raise CliError(f"monitoring scope {scope!r} is not running: {exc}") from exc
        out.print(
            f"scope {st.scope}: {st.groups} group(s), {st.open_incidents} open incident(s), "
            f"{st.silences} active silence(s), {st.alerts_received} alert(s) in {st.batches} batch(es)"
        )
        if st.handover_limit_bytes:  # (a scope from before these fields says nothing of them)
            out.print(
                f"tracking {st.tracked} of at most {st.capacity} alert(s); run {st.runs}, a hand-over "
                f"may carry {st.handover_limit_bytes / 1e6:.1f} MB"
                + (" (payload store)" if st.payload_store else "")
            )
        t = Table("source", "ok", "detail", "failures in a row", "last success")
        for h in st.health:
            last = "never"
            if h.last_success:
                last = datetime.fromtimestamp(h.last_success, UTC).strftime("%H:%M:%S")
            ok = "[green]yes[/]" if h.ok else "[red]no[/]"
            t.add_row(h.source, ok, h.detail, str(h.consecutive_failures), last)
        out.print(t)
        for h in st.health:
            for w in h.warnings:
                out.print(f"[yellow]{h.source} warned:[/] {w}", markup=True, highlight=False)
        if st.last_pull:
            out.print(f"last pull {st.last_pull.isoformat()}")
        if st.counts:
            out.print("router decisions: " + ", ".join(f"{k}={v}" for k, v in sorted(st.counts.items())))
        return 0

    run(main())


# --- incidents -------------------------------------------------------------------------------------
async def _resolve_incident(cfg: ArgusConfig, client, ident: str) -> str:  # type: ignore[no-untyped-def]
    """INC-7 or a workflow id → the workflow id."""
    if ident.upper().startswith("INC-"):
        async for wf in client.list_workflows(f'IncidentNumber="{ident.upper()}"'):
            return wf.id
        from argus.integrations.archive import IncidentArchive

        from .wiring import archive_url

        state = IncidentArchive(archive_url(cfg, state_dir(cfg))).get(ident)
        if state is None:
            raise CliError(f"unknown incident {ident}")
        return state.incident_id
    return ident


@incidents_app.command("list")
def incidents_list(
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    status_: Annotated[str | None, typer.Option("--status", help="e.g. awaiting_approval, closed")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
    severity: Annotated[str | None, typer.Option(help="Only this severity")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Incidents from Temporal (live) and the archive (closed, beyond retention)."""
    from argus.integrations.archive import IncidentArchive

    from .wiring import archive_url

    async def main() -> int:
        cfg = _config(config)
        rows: dict[str, IncidentSummary] = {}
        query = ['WorkflowType="IncidentWorkflow"']
        if status_:
            query.append(f'IncidentStatus="{status_}"')
        if service:
            query.append(f'IncidentService="{service}"')
        if severity:
            query.append(f'IncidentSeverity="{severity}"')
        try:
            client = await _client(cfg, temporal)
            n = 0
            async for wf in client.list_workflows(" AND ".join(query)):
                sa = wf.search_attributes
                number = (sa.get("IncidentNumber") or [""])[0]
                rows[number or wf.id] = IncidentSummary(
                    incident_id=wf.id,
                    number=number,
                    service=(sa.get("IncidentService") or [""])[0],
                    severity=(sa.get("IncidentSeverity") or [""])[0],
                    status=(sa.get("IncidentStatus") or [wf.status.name.lower() if wf.status else ""])[0],
                    opened_at=wf.start_time,
                    closed_at=wf.close_time,
                )
                n += 1
                if n >= limit:
                    break
        except CliError as exc:
            err.print(f"[yellow]{exc}; showing the archive only[/]")
        archive = IncidentArchive(archive_url(cfg, state_dir(cfg)))
        for s in archive.list(service=service, status=status_, limit=limit):
            if severity and s.severity != severity:
                continue
            key = s.number or s.incident_id
            if key in rows:
                rows[key].title = s.title
                rows[key].outcome = s.outcome
            else:
                rows[key] = s
        items = sorted(
            rows.values(), key=lambda r: r.opened_at or datetime.min.replace(tzinfo=UTC), reverse=True
        )
        if as_json:
            out.print_json(json.dumps([json.loads(r.model_dump_json()) for r in items[:limit]]))
            return 0
        t = Table("number", "status", "severity", "service", "title", "opened", "outcome", "source")
        for r in items[:limit]:
            t.add_row(
                r.number,
                r.status,
                r.severity,
                r.service,
                r.title[:50],
                r.opened_at.strftime("%Y-%m-%d %H:%M:%S") if r.opened_at else "",
                r.outcome,
                r.source,
            )
        out.print(t)
        return 0

    run(main())


def _print_incident(s: IncidentState) -> None:
    out.print(f"[bold]{s.number}[/] {s.title}")
    out.print(
        f"  id {s.incident_id}  status [cyan]{s.status.value}[/]  severity {s.severity.value}  "
        f"service {s.service}  outcome {s.outcome.value}"
    )
    out.print(
        f"  opened {s.opened_at.isoformat()}" + (f"  closed {s.closed_at.isoformat()}" if s.closed_at else "")
    )
    for t in s.tickets:
        out.print(f"  ticket {t.system} {t.key} {t.url} ({t.state})")
    if s.rca:
        out.print("[bold]Root cause hypotheses[/]")
        for i, h in enumerate(s.rca.hypotheses[:5], 1):
            out.print(f"  {i}. {h.service} {h.confidence:.0%} [{h.fault_signature}] {h.summary}")
            for e in h.evidence[:4]:
                out.print(f"       - {e.summary}")
        for d in s.rca.discounted[:3]:
            out.print(f"  discounted: {d}")
    if s.proposal:
        out.print(
            f"[bold]Proposal[/] {s.proposal.summary} (risk {s.proposal.risk.value}, hash {s.proposal.hash})"
        )
        for st in s.proposal.steps:
            out.print(f"  - {st.name}: {st.run.type.value} {st.run.action} {st.run.args}")
    if s.decision:
        out.print(
            f"[bold]Decision[/] {s.decision.decision.value} by {s.decision.approver} via {s.decision.via}"
        )
    for a in s.actions:
        out.print(f"  action {a.step}: {a.status.value} {a.output}")
    out.print("[bold]Timeline[/] (routing decisions included)")
    for e in s.timeline:
        out.print(f"  {e.at.strftime('%Y-%m-%d %H:%M:%S')} [cyan]{e.kind:<18}[/] {e.actor:<12} {e.message}")


@incidents_app.command("show")
def incidents_show(
    incident: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    scope: Annotated[str, typer.Option(help="Monitoring scope, for the router's live decisions")] = "default",
) -> None:
    """One incident: status, RCA with evidence, proposal, actions, and its explained timeline."""
    from argus.integrations.archive import IncidentArchive

    from .wiring import archive_url

    async def main() -> int:
        cfg = _config(config)
        state: IncidentState | None = None
        try:
            client = await _client(cfg, temporal)
            wf_id = await _resolve_incident(cfg, client, incident)
            state = await client.get_workflow_handle(wf_id).query("status", result_type=IncidentState)
        except Exception as exc:
            err.print(f"[dim]live state unavailable ({exc}); reading the archive[/]")
        if state is None:
            state = IncidentArchive(archive_url(cfg, state_dir(cfg))).get(incident)
        if state is None:
            raise CliError(f"unknown incident {incident}")
        if as_json:
            out.print_json(state.model_dump_json())
        else:
            _print_incident(state)
            from .routing_view import print_routing

            live: list = []
            try:  # the router's newest decisions for this group, not yet in the incident
                monitoring = client.get_workflow_handle(f"monitoring-{scope}")
                live = await monitoring.query("recent_decisions", result_type=list[RouteDecision])
            except Exception as exc:
                err.print(f"[dim]monitoring scope {scope!r} not reachable ({exc}); timeline only[/]")
            print_routing(out, state, live)
        return 0

    run(main())


def _decide(
    incident: str,
    decision: DecisionKind,
    config: Path | None,
    temporal: str | None,
    user: str | None,
    comment: str,
) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    async def main() -> int:
        cfg = _config(config)
        user_ = _authorize(cfg, "approver", decision.value, incident, user)  # roles (cli_security.py)
        client = await _client(cfg, temporal)
        wf_id = await _resolve_incident(cfg, client, incident)
        handle = client.get_workflow_handle(wf_id)
        state = await handle.query("status", result_type=IncidentState)
        if state.proposal is None:
            raise CliError(f"{incident} has no proposal to {decision.value}")
        request_id = f"cli-{uuid.uuid4().hex}"
        d = ApprovalDecision(
            approver=user_,
            decision=decision,
            proposal_hash=state.proposal.hash,
            comment=comment,
            via="cli",
            request_id=request_id,
            origin=f"cli {getpass.getuser()}@{socket.gethostname()}",
        )
        try:
            result = await handle.execute_update("decide", d, id=request_id, result_type=str)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise CliError(f"refused: {getattr(cause, 'message', cause)}") from exc
        out.print(f"{state.number or wf_id}: {result} ({state.proposal.summary})")
        return 0

    run(main())


@app.command()
def approve(
    incident: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[
        str | None, typer.Option("--as", help="Approver (default: $ARGUS_USER or your login)")
    ] = None,
    comment: str = "",
) -> None:
    """Approve the incident's current remediation proposal."""
    _decide(incident, DecisionKind.APPROVE, config, temporal, user, comment)


@app.command()
def reject(
    incident: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[
        str | None, typer.Option("--as", help="Approver (default: $ARGUS_USER or your login)")
    ] = None,
    comment: str = "",
) -> None:
    """Reject the incident's current remediation proposal."""
    _decide(incident, DecisionKind.REJECT, config, temporal, user, comment)


def _signal(
    incident: str, name: str, arg: object, config: Path | None, temporal: str | None, done: str
) -> None:
    async def main() -> int:
        cfg = _config(config)
        by = _authorize(cfg, "responder", name, incident, None)  # roles and audit (cli_security.py)
        token_user = _auth_on(cfg) and hasattr(arg, "by")  # with auth on, act as the token's user
        signal_arg = arg.model_copy(update={"by": by}) if token_user else arg  # type: ignore[attr-defined]
        client = await _client(cfg, temporal)
        wf_id = await _resolve_incident(cfg, client, incident)
        try:
            await client.get_workflow_handle(wf_id).signal(name, signal_arg)
        except Exception as exc:
            raise CliError(f"could not reach {incident}: {exc}") from exc
        out.print(f"{incident}: {done}")
        return 0

    run(main())


@app.command()
def ack(
    incident: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[str | None, typer.Option("--as")] = None,
    comment: str = "",
) -> None:
    """Acknowledge an incident (stops escalation)."""
    _signal(
        incident,
        "acknowledge",
        Acknowledge(by=_user(user), comment=comment),
        config,
        temporal,
        "acknowledged",
    )


@app.command()
def resolve(
    incident: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[str | None, typer.Option("--as")] = None,
    reason: str = "",
) -> None:
    """Mark an incident resolved by hand."""
    _signal(
        incident,
        "resolve",
        ResolveSignal(by=_user(user), reason=reason),
        config,
        temporal,
        "resolve requested",
    )


@app.command()
def comment(
    incident: str,
    text: str,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[str | None, typer.Option("--as")] = None,
) -> None:
    """Add a comment to the incident timeline (and its ticket)."""
    _signal(incident, "comment", CommentSignal(by=_user(user), text=text), config, temporal, "comment added")


# --- silences --------------------------------------------------------------------------------------
@silence_app.command("add")
def silence_add(
    matchers: Annotated[
        list[str], typer.Argument(help='Label matchers, e.g. service="payments" alertname=~"High.*"')
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 30m, 2h, 1d")] = "1h",
    starts: Annotated[
        str | None, typer.Option(help="When it starts: RFC 3339 (2026-12-01T22:00:00Z) or +2h; default now")
    ] = None,
    comment: Annotated[str, typer.Option(help="Why")] = "",
    author: Annotated[str | None, typer.Option(help="Who (default: you)")] = None,
    scope: str = "default",
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
) -> None:
    """Silence alerts matching all the given matchers."""

    async def main() -> int:
        try:
            parsed = [Matcher.parse(m) for m in matchers]
            dur = parse_duration(duration)
            start = _parse_when(starts, "starts") if starts else None
        except ValueError as exc:
            raise CliError(str(exc), code=2) from exc
        cfg = _config(config)
        client = await _client(cfg, temporal)
        by = _authorize(cfg, "responder", "silence add", " ".join(matchers), author)
        req = SilenceRequest(
            matchers=parsed,
            duration=dur,
            starts_at=start,
            created_by=by,
            comment=comment,
            request_id=uuid.uuid4().hex[:12],
        )
        try:
            s = await client.get_workflow_handle(f"monitoring-{scope}").execute_update(
                "add_silence", req, result_type=Silence
            )
        except Exception as exc:
            raise CliError(
                f"silence refused: {getattr(getattr(exc, 'cause', None), 'message', exc)}"
            ) from exc
        out.print(f"silence {s.id} from {s.starts_at.isoformat()} until {s.ends_at.isoformat()}")
        return 0

    run(main())


@silence_app.command("list")
def silence_list(scope: str = "default", config: ConfigOpt = None, temporal: TemporalOpt = None) -> None:
    """Silences of a monitoring scope (active, pending and recently expired)."""

    async def main() -> int:
        cfg = _config(config)
        client = await _client(cfg, temporal)
        try:
            items = await client.get_workflow_handle(f"monitoring-{scope}").query(
                "silences", result_type=list[Silence]
            )
        except Exception as exc:
            raise CliError(f"monitoring scope {scope!r} is not reachable: {exc}") from exc
        now = datetime.now(UTC)
        t = Table("id", "state", "matchers", "until", "by", "comment")
        for s in items:
            state = (
                "active" if s.starts_at <= now < s.ends_at else ("expired" if s.ends_at <= now else "pending")
            )
            t.add_row(
                s.id, state, ", ".join(map(str, s.matchers)), s.ends_at.isoformat(), s.created_by, s.comment
            )
        out.print(t)
        return 0

    run(main())


@silence_app.command("update")
def silence_update(
    silence_id: str,
    matchers: Annotated[
        list[str] | None, typer.Option("--matcher", "-m", help="Replace its matchers (repeat the option)")
    ] = None,
    duration: Annotated[str | None, typer.Option(help="New length from its start, e.g. 4h")] = None,
    until: Annotated[str | None, typer.Option(help="New end: RFC 3339 or +2h from now")] = None,
    starts: Annotated[str | None, typer.Option(help="New start (pending only): RFC 3339 or +2h")] = None,
    comment: Annotated[str | None, typer.Option(help="New comment")] = None,
    scope: str = "default",
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[str | None, typer.Option("--as")] = None,
) -> None:
    """Change a silence, as `amtool silence update` does: same matchers and a start not moved
    (or a pending one's start) change it in place; anything else expires it and makes a new one."""

    async def main() -> int:
        if duration and until:
            raise CliError("give --duration or --until, not both", code=2)
        try:
            parsed = [Matcher.parse(m) for m in matchers] if matchers else None
            length = parse_duration(duration) if duration else None
            start = _parse_when(starts, "starts") if starts else None
            end = _parse_when(until, "until") if until else None
        except ValueError as exc:
            raise CliError(str(exc), code=2) from exc
        cfg = _config(config)
        client = await _client(cfg, temporal)
        handle = client.get_workflow_handle(f"monitoring-{scope}")
        try:
            current = await handle.query("silences", result_type=list[Silence])
        except Exception as exc:
            raise CliError(f"monitoring scope {scope!r} is not reachable: {exc}") from exc
        prev = next((s for s in current if s.id == silence_id), None)
        if prev is None:
            raise CliError(f"no silence {silence_id} in scope {scope!r} (argus silence list)", code=2)
        by = _authorize(cfg, "responder", "silence update", silence_id, user)
        try:
            change = prev.changed(
                by=by,
                request_id=uuid.uuid4().hex[:12],
                matchers=parsed,
                starts_at=start,
                ends_at=end,
                duration=length,
                comment=comment,
            )
        except ValueError as exc:
            raise CliError(f"cannot update {silence_id}: {exc}", code=2) from exc
        try:
            s = await handle.execute_update(
                "update_silence",
                SilenceUpdate(silence_id=silence_id, change=change),
                id=f"silence-{change.request_id}",
                result_type=Silence,
            )
        except Exception as exc:
            raise CliError(
                f"cannot update {silence_id}: {getattr(getattr(exc, 'cause', None), 'message', exc)}"
            ) from exc
        if s.id == silence_id:
            out.print(f"silence {s.id} changed: from {s.starts_at.isoformat()} until {s.ends_at.isoformat()}")
        else:
            was = "had expired" if prev.state(datetime.now(UTC)) == SilenceState.EXPIRED else "expired"
            out.print(
                f"silence {silence_id} {was}; its replacement {s.id} runs from {s.starts_at.isoformat()}"
                f" until {s.ends_at.isoformat()}"
            )
        return 0

    run(main())


@silence_app.command("expire")
def silence_expire(
    silence_id: str,
    scope: str = "default",
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
    user: Annotated[str | None, typer.Option("--as")] = None,
) -> None:
    """End a silence now."""

    async def main() -> int:
        cfg = _config(config)
        client = await _client(cfg, temporal)
        try:
            s = await client.get_workflow_handle(f"monitoring-{scope}").execute_update(
                "expire_silence",
                SilenceExpire(
                    silence_id=silence_id,
                    by=_authorize(cfg, "responder", "silence expire", silence_id, user),
                ),
                result_type=Silence,
            )
        except Exception as exc:
            raise CliError(
                f"cannot expire {silence_id}: {getattr(getattr(exc, 'cause', None), 'message', exc)}"
            ) from exc
        out.print(f"silence {s.id} expired at {s.ends_at.isoformat()}")
        return 0

    run(main())


# --- backfill --------------------------------------------------------------------------------------
def _parse_when(text: str, name: str) -> datetime:
    """A time given on the command line: RFC 3339, or +2h / -6h from now."""
    try:
        return parse_moment(text, datetime.now(UTC))
    except ValueError as exc:
        raise CliError(f"--{name}: {exc}", 2) from exc


def backfill_range(from_: str, to: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The range to replay, or a CliError saying what is wrong with it."""
    start, end = _parse_when(from_, "from"), _parse_when(to, "to")
    now = now or datetime.now(UTC)
    if start > now:
        raise CliError(f"--from {start.isoformat()} is in the future; backfill runs over the past", 2)
    if end > now + timedelta(minutes=1):
        raise CliError(f"--to {end.isoformat()} is in the future; backfill runs over the past", 2)
    if start >= end:
        raise CliError(
            f"--from {start.isoformat()} is not before --to {end.isoformat()} (reversed or empty range)", 2
        )
    return start, end


def backfill_source(cfg: ArgusConfig, source: str | None) -> str | None:
    """A source name, or a type (prometheus, elasticsearch, embedded) naming one configured source."""
    if source is None:
        return None
    names = {s.name for s in cfg.sources}
    if source in names:
        return source
    of_type = [s.name for s in cfg.sources if s.type == source]
    if len(of_type) == 1:
        return of_type[0]
    if len(of_type) > 1:
        raise CliError(f"--source {source}: several sources of that type ({', '.join(of_type)}); name one", 2)
    raise CliError(
        f"--source {source!r}: no source of that name or type (configured: "
        + (", ".join(f"{s.name} ({s.type})" for s in cfg.sources) or "none")
        + ")",
        2,
    )


@app.command()
def backfill(
    from_: Annotated[str, typer.Option("--from", help="Start (RFC 3339 or -6h)")],
    to: Annotated[str, typer.Option("--to", help="End (RFC 3339 or -0s for now)")] = "-0s",
    source: Annotated[
        str | None,
        typer.Option(help="Only this source: a type (prometheus, elasticsearch) or a source name"),
    ] = None,
    window: Annotated[str, typer.Option(help="Window size per activity")] = "1h",
    step: Annotated[str, typer.Option(help="Rule evaluation step")] = "1m",
    concurrency: Annotated[int, typer.Option(help="Windows evaluated at once")] = 4,
    docs_only: Annotated[
        bool, typer.Option(help="Only build the archive and documents (no incidents, tickets or pages)")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow progress until done")] = True,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
) -> None:
    """Run ARGUS over a past time range (idempotent: a rerun creates nothing twice; nobody is paged)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from temporalio.common import WorkflowIDConflictPolicy

    async def main() -> int:
        start, end = backfill_range(from_, to)
        if concurrency < 1:
            raise CliError(f"--concurrency must be at least 1, got {concurrency}", 2)
        try:
            win, stp = parse_duration(window), parse_duration(step)
        except ValueError as exc:
            raise CliError(f"--window/--step: {exc}", 2) from exc
        if stp.total_seconds() <= 0 or win < stp:
            raise CliError(f"--step {step} must be positive and no longer than --window {window}", 2)
        cfg = _config(config)
        src = backfill_source(cfg, source)
        _authorize(cfg, "admin", "backfill", f"{start.isoformat()}..{end.isoformat()} {src or 'all'}", None)
        client = await _client(cfg, temporal)
        inp = BackfillInput(
            start=start,
            end=end,
            source=src,
            window_seconds=int(win.total_seconds()),
            step_seconds=int(stp.total_seconds()),
            concurrency=concurrency,
            docs_only=docs_only,
            policy=cfg.policy,
        )
        mode = "docs-" if docs_only else ""
        span = f"{start.strftime('%Y%m%dT%H%M%S')}-{end.strftime('%Y%m%dT%H%M%S')}"
        wf_id = f"backfill-{mode}{src or 'all'}-{span}"
        handle = await client.start_workflow(
            "BackfillWorkflow",
            inp,
            id=wf_id,
            task_queue=cfg.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=BackfillProgress,
        )
        err.print(f"backfill {wf_id} started ({'archive and documents only' if docs_only else 'incidents'})")
        if not wait:
            return 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("windows", total=None)
            result_task = asyncio.create_task(handle.result())
            while not result_task.done():
                try:
                    p = await handle.query("status", result_type=BackfillProgress)
                    what = f"{p.stage}: alerts {p.alerts_found}, incidents {p.incidents_found}"
                    bar.update(task, total=p.windows_total, completed=p.windows_done, description=what)
                except Exception:  # a query can fail while the worker restarts; the bar just waits
                    pass
                await asyncio.wait({result_task}, timeout=0.5)
            p = result_task.result()
            bar.update(task, total=p.windows_total, completed=p.windows_done, description="done")
        if docs_only:
            out.print(
                f"alerts found {p.alerts_found}, incidents found {p.incidents_found}, archived {p.archived}, "
                f"already archived {p.incidents_existing}, post-mortems started {p.documents}"
            )
        else:
            out.print(
                f"alerts found {p.alerts_found}, incidents found {p.incidents_found}, "
                f"started {p.incidents_started}, already existing {p.incidents_existing}"
            )
        for e in p.errors:
            err.print(f"[yellow]{e}[/]")
        return 0

    run(main())


# --- insights and documents ------------------------------------------------------------------------
def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    value = int(value)
    if value >= 3600:
        return f"{value // 3600}h{value % 3600 // 60:02d}m"
    return f"{value // 60}m{value % 60:02d}s"


@app.command()
def insights(
    service: Annotated[str | None, typer.Option(help="Only incidents of this service")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """What ARGUS learned from closed incidents: clusters, themes, hotspots, MTTD/MTTA/MTTR, playbooks."""
    from argus.analysis.incident_clusters import aggregate
    from argus.integrations.archive import IncidentArchive

    from .wiring import archive_url

    async def main() -> int:
        cfg = _config(config)
        states = IncidentArchive(archive_url(cfg, state_dir(cfg))).all_states(True)
        if service:
            roots = {s.incident_id: s.rca.top.service for s in states if s.rca and s.rca.top}
            states = [s for s in states if service in (s.service, roots.get(s.incident_id))]
        ins = aggregate(states)
        if as_json:
            sys.stdout.write(ins.model_dump_json(indent=2) + "\n")
            return 0
        scope = f" for {service}" if service else ""
        out.print(f"[bold]{ins.total}[/] closed incident(s) in the archive{scope}")
        t = Table("service", "incidents", "fixed", "MTTD", "MTTA", "MTTR", "root causes", title="Services")
        for s in ins.services:
            t.add_row(
                s.service,
                str(s.incidents),
                str(s.fixed),
                _secs(s.mttd_seconds),
                _secs(s.mtta_seconds),
                _secs(s.mttr_seconds),
                ", ".join(s.top_root_causes),
            )
        out.print(t)
        t = Table("playbook", "runs", "fixed", "failed", "success", "by signature", title="Playbooks")
        for p in ins.playbooks:
            sig = ", ".join(f"{k} {v.fixed}/{v.runs}" for k, v in sorted(p.by_signature.items()))
            t.add_row(p.playbook, str(p.runs), str(p.fixed), str(p.failed), f"{p.success_rate:.0%}", sig)
        out.print(t)
        t = Table("cluster", "incidents", "fix", "alerts", "last seen", title="Clusters of similar incidents")
        for c in ins.clusters:
            t.add_row(
                c.key,
                str(len(c.incidents)),
                c.fix or "-",
                ", ".join(c.alertnames),
                c.last_seen.strftime("%Y-%m-%d") if c.last_seen else "",
            )
        out.print(t)
        if ins.themes:
            themes = [f"{th.kind} ({th.incidents} on {', '.join(th.services)})" for th in ins.themes]
            out.print("[bold]Recurring themes[/]: " + "; ".join(themes))
        if ins.hotspots:
            spots = [f"{h.service}/{h.component} {h.incidents} ({h.share:.0%})" for h in ins.hotspots[:8]]
            out.print("[bold]Hotspots[/]: " + "; ".join(spots))
        return 0

    run(main())


docs_app = typer.Typer(help="Documents: review what DocGen wrote before publishing.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("review")
def docs_review(
    workflow_id: Annotated[str, typer.Argument(help="The DocGen workflow waiting for review")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving")] = False,
    proposal_hash: Annotated[
        str | None, typer.Option("--hash", help="Hash from the review request (default: the current one)")
    ] = None,
    user: Annotated[str | None, typer.Option("--as", help="Reviewer (default: $ARGUS_USER or login)")] = None,
    groups: Annotated[list[str] | None, typer.Option("--group", help="A team you review for")] = None,
    comment: str = "",
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
) -> None:
    """Approve (or reject) publication of documents waiting at the review gate."""
    from temporalio.client import WorkflowUpdateFailedError

    async def main() -> int:
        cfg = _config(config)
        verb = "docs reject" if reject else "docs approve"
        reviewer = _authorize(cfg, "approver", verb, workflow_id, user)  # roles and audit
        client = await _client(cfg, temporal)
        handle = client.get_workflow_handle(workflow_id)
        try:
            req = await handle.query("review_request", result_type=dict)
        except Exception as exc:
            raise CliError(f"{workflow_id} is not a DocGen workflow waiting for review: {exc}") from exc
        if not req.get("hash"):
            raise CliError(f"{workflow_id} is not waiting for review")
        request_id = f"cli-{uuid.uuid4().hex}"
        d = ApprovalDecision(
            approver=reviewer,
            decision=DecisionKind.REJECT if reject else DecisionKind.APPROVE,
            proposal_hash=proposal_hash or req["hash"],
            comment=comment,
            via="cli",
            request_id=request_id,
            groups=groups or [],
        )
        try:
            result = await handle.execute_update("submit_review", d, id=request_id, result_type=str)
        except WorkflowUpdateFailedError as exc:
            raise CliError(f"refused: {getattr(exc.cause, 'message', exc.cause)}") from exc
        out.print(f"{workflow_id}: {result} ({', '.join(req.get('titles', []))})")
        return 0

    run(main())


# --- analysis commands -----------------------------------------------------------------------------
@rca_app.command("analyze")
def rca_analyze(
    case: Annotated[Path, typer.Argument(help="Case folder: metrics.csv and case.json")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rank root-cause candidates for a case folder."""
    from argus.analysis import rca_case

    try:
        result = rca_case.analyze_case(case)
    except rca_case.CaseError as exc:
        sys.stderr.write(f"error: {exc}\n")  # plain text: file names and brackets are not markup
        finish(2)
        return
    except ValueError as exc:  # readable files whose data cannot support an analysis
        sys.stderr.write(f"error: {case / 'metrics.csv'}: cannot be analysed: {exc}\n")
        finish(2)
        return
    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
    else:
        for i, c in enumerate(result.ranking[:10], 1):
            out.print(f"{i:>2}. {c.service:<24} score {c.score:8.3f}  confidence {c.confidence:.0%}")
            for e in c.evidence[:3]:
                out.print(f"      - {e.summary}")
    finish(0)


@detect_app.command("nab")
def detect_nab(
    data: Annotated[Path, typer.Option("--data", help="NAB data directory (<folder>/<file>.csv)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write <folder>/<file>.csv scores")],
) -> None:
    """Run the online anomaly detector over NAB-format data."""
    from argus.analysis.nab import run_nab

    try:
        summary = run_nab(data, out_dir)
    except (ValueError, OSError) as exc:
        err.print(f"[red]error:[/] {exc}")
        finish(2)
        return
    out.print(summary)
    finish(0)


@app.command("config")
def config_check(config: ConfigOpt = None) -> None:
    """Validate a configuration file (and its playbooks) and print where state lives."""
    from argus.integrations.playbooks import PlaybookError, load_playbooks

    from .wiring import playbooks_dir

    try:
        cfg = _config(config)
        books = load_playbooks(playbooks_dir(cfg, state_dir(cfg)))
    except (ConfigError, PlaybookError) as exc:
        err.print(f"[red]{exc}[/]")
        finish(2)
        return
    out.print(
        f"configuration OK: {len(cfg.sources)} source(s), {len(cfg.rules)} rule(s), "
        f"{len(cfg.services)} service(s), {len(books)} playbook(s); state in {state_dir(cfg)}"
    )
    finish(0)


def _auth_on(cfg: ArgusConfig) -> bool:
    from .auth import auth_enabled

    return auth_enabled(cfg)


def _authorize(cfg: ArgusConfig, role: str, action: str, target: str, as_user: str | None) -> str:
    from argus.models.security import Role

    from .cli_security import authorize

    return authorize(cfg, Role(role), action, target, as_user)


from . import cli_security  # noqa: E402,F401  (tokens, audit, keys, heartbeats commands)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        finish(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
