"""Durability: SIGKILL the worker and the Temporal dev server while an incident waits for
approval, restart both on the same database file, approve, and see the incident close with
nothing done twice — one ticket, one notification per step, one remediation."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from argus.models import Alert, IncidentInput, IncidentState, IncidentStatus
from argus.sandbox.server import start_sandbox
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace
from argus.workers.gateway.deciding import send_decision
from argus.workers.wiring import WORKFLOWS
from argus.workflows.incident import IncidentWorkflow

from .stackkit import e2e_config, eventually, load, outbox, preload_history, write_config

pytestmark = pytest.mark.e2e


def start_worker(cfg_path: Path, address: str, log: Path) -> subprocess.Popen:
    argus = Path(sys.executable).parent / "argus"
    env = {**os.environ, "ARGUS_LINK_SECRET": "durability-test-secret-0123456789"}
    return subprocess.Popen(
        [str(argus), "worker", "--config", str(cfg_path), "--temporal", address],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def event_summary(event) -> str:
    kind = event.WhichOneof("attributes").removesuffix("_event_attributes")
    if kind == "marker_recorded":
        marker = event.marker_recorded_event_attributes
        name = marker.marker_name
        for key in ("patch-data", "data"):  # a patch marker names its change, a local activity its type
            if key in marker.details:
                name += " " + marker.details[key].payloads[0].data.decode(errors="replace")[:90]
                break
        kind += f"({name})"
    return f"{event.event_id}:{kind}"


async def diagnose(handle, tmp_path: Path) -> str:
    """What a person debugging a stuck incident would look at: the tail of its history and logs."""
    parts = []
    try:
        s = await asyncio.wait_for(handle.query(IncidentWorkflow.status), timeout=20)
        parts.append(f"status {s.status.value}; timeline:")
        parts += [f"  {e.at:%H:%M:%S} {e.kind}: {e.message}" for e in s.timeline[-25:]]
    except Exception as exc:
        parts.append(f"status unavailable: {exc!r}")
    try:
        history = await asyncio.wait_for(handle.fetch_history(), timeout=20)
        # The whole layout: a replay failure depends on which workflow task each event is in.
        parts.append("history: " + ", ".join(event_summary(e) for e in history.events))
        saved = tmp_path / "history.json"
        saved.write_text(history.to_json())
        parts.append(f"history saved to {saved}")
    except Exception as exc:
        parts.append(f"history unavailable: {exc!r}")
    for name in ("worker.log", "temporal/temporal.log"):
        path = tmp_path / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-60:]
            parts.append(f"--- {name} (tail) ---\n" + "\n".join(tail))
    return "\n".join(parts)


async def test_incident_survives_sigkill_of_worker_and_server(tmp_path):
    sandbox = start_sandbox(port=0, warmup_s=300)
    dev = DevServer(tmp_path / "temporal", "argus", port=free_port(), ui_port=None)
    worker = None
    try:
        dev.start()
        raw = e2e_config(tmp_path, sandbox.url, temporal=dev.address)
        cfg = load(raw)
        cfg_path = write_config(tmp_path, raw)
        await preload_history(Path(cfg.state_dir) / "metrics-sandbox.db", sandbox.url)
        worker = start_worker(cfg_path, dev.address, tmp_path / "worker.log")
        await wait_for_namespace(dev.address, "argus")
        client = await connect(dev.address, "argus")

        async with httpx.AsyncClient(timeout=10) as http:
            assert (
                await http.post(f"{sandbox.url}/faults", json={"service": "payments", "type": "cpu"})
            ).is_success
        from datetime import UTC, datetime

        alert = Alert(
            labels={"alertname": "HighCpu", "service": "payments", "severity": "critical"},
            starts_at=datetime.now(UTC),
        )
        inp = IncidentInput(
            incident_id="incident-durability",
            group_key="durability",
            group_labels={"alertname": "HighCpu"},
            alerts=[alert],
            policy=cfg.policy,
        )
        handle = await client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=cfg.temporal.task_queue
        )

        async def waiting():
            s = await handle.query(IncidentWorkflow.status)
            return s if s.status == IncidentStatus.AWAITING_APPROVAL else None

        state = await eventually(waiting, timeout=120, what="awaiting approval")
        assert state.proposal is not None

        # Hard crash of everything ARGUS runs on.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        dev.kill()

        dev = DevServer(tmp_path / "temporal", "argus", port=dev.port, ui_port=None)
        dev.start()
        await wait_for_namespace(dev.address, "argus")
        worker = start_worker(cfg_path, dev.address, tmp_path / "worker.log")
        client = await connect(dev.address, "argus")
        handle = client.get_workflow_handle(inp.incident_id, result_type=IncidentState)
        desc = await handle.describe()
        assert desc.status is not None and desc.status.name == "RUNNING"

        from argus.models import ApprovalDecision, DecisionKind

        # The way every approval path hands a decision over (Teams, Slack, CLI fallback): the update,
        # or, when the restarted worker does not accept it within moments, the durable signal.
        decision = ApprovalDecision(
            approver="alice",
            decision=DecisionKind.APPROVE,
            proposal_hash=state.proposal.hash,
            request_id="durability-click",
        )
        outcome = await send_decision(client, inp.incident_id, decision)
        assert outcome.status in ("accepted", "queued"), outcome
        try:
            final = await asyncio.wait_for(handle.result(), timeout=240)
            # The history written across the crash replays cleanly against the workflow code.
            history = await handle.fetch_history()
            replay = await Replayer(
                workflows=WORKFLOWS, data_converter=pydantic_data_converter
            ).replay_workflow(history, raise_on_replay_failure=False)
            assert replay.replay_failure is None, f"{replay.replay_failure}\nhistory: " + ", ".join(
                event_summary(e) for e in history.events
            )
        except TimeoutError:
            alive = "running" if worker.poll() is None else f"exited with {worker.returncode}"
            pytest.fail(
                f"incident did not finish after the restart (worker {alive}):\n"
                + await diagnose(handle, tmp_path)
            )
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        dev.stop()
        sandbox.stop()

    assert final.status == IncidentStatus.CLOSED and final.outcome.value == "fixed", final.timeline
    # Nothing done twice.
    state_dir = Path(cfg.state_dir)
    kinds = [n["kind"] for n in outbox(state_dir)]
    assert kinds.count("opened") == 1, kinds
    assert kinds.count("approval_request") == 1, kinds
    assert kinds.count("resolved") == 1, kinds
    from argus.integrations.local_tickets import LocalTickets
    from argus.integrations.sql import sqlite_url

    assert LocalTickets(sqlite_url(state_dir / "tickets.db")).count() == 1
    restarts = [r for r in sandbox.world._actions.values() if r.action == "restart"]
    assert len(restarts) == 1, restarts
    assert len([a for a in final.actions if a.status.value == "done"]) == 1
