"""`argus demo`: bring the stack and the sandbox up, break something, and follow ARGUS as it
detects, opens an incident, tickets, notifies, finds the root cause, recommends, gets the
fix approved, remediates, verifies, closes and writes the post-mortem."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from rich.console import Console
from temporalio.client import Client

from argus.models import ArgusConfig, IncidentState

from .stack import Stack

console = Console(stderr=True)


@dataclass
class DemoResult:
    incident: IncidentState
    postmortem: str | None
    ui_url: str | None
    namespace: str


async def _newest_incident(client: Client, since: float, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async for wf in client.list_workflows('WorkflowType="IncidentWorkflow"'):
            if wf.start_time.timestamp() >= since:
                return wf.id
        await asyncio.sleep(1)
    raise TimeoutError(f"no incident was opened within {timeout:.0f}s of the fault")


async def _postmortem(stack: Stack, incident: IncidentState, timeout: float) -> str | None:
    assert stack.rt is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rel, front, _ in stack.rt.docs.documents("postmortem"):
            if front.get("incident") == incident.number:
                return str(stack.rt.docs.path / rel)
        await asyncio.sleep(1)
    return None


async def preload_baseline(stack: Stack, sandbox_url: str, seconds: float = 600.0) -> None:
    """Give the embedded store the sandbox's recent simulated past, so RCA has a baseline at
    once instead of after ten minutes of scraping (as `promtool` backfill would for Prometheus)."""
    from argus.integrations.embedded_metrics import EmbeddedMetricsSource

    assert stack.rt is not None
    async with httpx.AsyncClient(timeout=30) as http:
        text = (await http.get(f"{sandbox_url}/history", params={"seconds": seconds})).text
    for source in stack.rt.sources.values():
        if isinstance(source, EmbeddedMetricsSource) and any(
            t.startswith(sandbox_url) for t in source.targets
        ):
            n = await asyncio.to_thread(source.store.ingest_text, text, time.time())
            console.print(
                f"Loaded {n} samples of the sandbox's last {seconds / 60:.0f} minutes into {source.name}"
            )


async def run_demo(
    config: ArgusConfig,
    stack: Stack,
    fault: str = "bad_deploy",
    service: str = "payments",
    baseline_seconds: float = 30.0,
    timeout: float = 600.0,
) -> DemoResult:
    assert stack.client is not None and stack.sandbox is not None
    sandbox = stack.sandbox.url
    console.print(f"[bold]ARGUS demo[/]: sandbox at {sandbox}, gateway at {stack.gateway_url}")
    if stack.ui_url:
        console.print(f"Temporal Web UI: {stack.ui_url}/namespaces/{config.temporal.namespace}/workflows")
    await preload_baseline(stack, sandbox)
    console.print(f"Watching {baseline_seconds:.0f}s of healthy traffic…")
    await asyncio.sleep(baseline_seconds)

    since = time.time()
    async with httpx.AsyncClient(timeout=10) as http:
        if fault == "bad_deploy":
            r = await http.post(
                f"{sandbox}/deploy",
                json={
                    "service": service,
                    "version": "v2.0.0-rc1",
                    "bad": True,
                    "description": "demo: a bad release",
                },
            )
        else:
            r = await http.post(f"{sandbox}/faults", json={"service": service, "type": fault})
        r.raise_for_status()
    console.print(f"Injected [red]{fault}[/] at [bold]{service}[/]. Waiting for ARGUS to notice…")

    incident_id = await _newest_incident(stack.client, since, timeout=180)
    console.print(f"Incident workflow [bold]{incident_id}[/] started")
    handle = stack.client.get_workflow_handle(incident_id, result_type=IncidentState)
    shown = 0
    result_task = asyncio.create_task(handle.result())
    deadline = time.monotonic() + timeout
    while not result_task.done():
        if time.monotonic() > deadline:
            result_task.cancel()
            raise TimeoutError(f"incident {incident_id} did not close within {timeout:.0f}s")
        try:
            state = await handle.query("status", result_type=IncidentState)
            for e in state.timeline[shown:]:
                console.print(f"  [dim]{e.at.strftime('%H:%M:%S')}[/] [cyan]{e.kind:<18}[/] {e.message}")
            shown = len(state.timeline)
        except Exception:
            pass
        await asyncio.sleep(1)
    final = result_task.result()
    for e in final.timeline[shown:]:
        console.print(f"  [dim]{e.at.strftime('%H:%M:%S')}[/] [cyan]{e.kind:<18}[/] {e.message}")
    pm = await _postmortem(stack, final, timeout=60)
    return DemoResult(incident=final, postmortem=pm, ui_url=stack.ui_url, namespace=config.temporal.namespace)


def summary(result: DemoResult) -> str:
    s = result.incident
    top = s.rca.top if s.rca else None
    lines = [
        "",
        "ARGUS demo summary",
        f"  incident     {s.number} ({s.incident_id}) — {s.title}",
        f"  root cause   {top.service} ({top.confidence:.0%}, {top.fault_signature})"
        if top
        else "  root cause   none found",
        f"  remediation  {s.proposal.playbook if s.proposal else 'none'} — "
        f"{s.decision.decision.value + 'd by ' + s.decision.approver if s.decision else 'no decision'}",
        f"  outcome      {s.outcome.value}; open for {(s.closed_at - s.opened_at).total_seconds():.0f}s"
        if s.closed_at
        else f"  outcome      {s.outcome.value}",
        f"  ticket       {', '.join(t.key for t in s.tickets) or 'none'}",
        f"  post-mortem  {result.postmortem or 'not written yet'}",
    ]
    if result.ui_url:
        lines.append(
            f"  Web UI       {result.ui_url}/namespaces/{result.namespace}/workflows/{s.incident_id}"
        )
    return "\n".join(lines)
