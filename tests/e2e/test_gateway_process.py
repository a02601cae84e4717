"""`argus up` runs its gateway as a process of its own (`gateway.own_process`, the default), and
the monitoring scopes' worker as another (`temporal.monitoring_process`): what that gateway
acknowledges is durable in the monitoring scope, whose workflow tasks the child worker runs; a
SIGKILL of `argus up` takes both children down with it (so a restart finds the port free and no
stray worker polls), and a restart carries on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from argus.models.agents import FingerprintCheck
from argus.models.alert import labels_fingerprint
from argus.workers.devserver import port_open
from argus.workflows.monitoring import MonitoringWorkflow
from tests.integrations.dev_temporal import dev_temporal  # noqa: F401 - fixture

from .stackkit import e2e_config, eventually, write_config

pytestmark = pytest.mark.e2e


def argus_up(cfg_path: Path, address: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "argus"), "up", "--config", str(cfg_path), "--temporal", address],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "ARGUS_LINK_SECRET": "gateway-process-test-secret-0123"},
        start_new_session=True,
    )


def children(parent: int, command: bytes) -> list[int]:
    """Processes started as `argus <command> … --parent-pid <parent>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command in args and b"--parent-pid" in args and str(parent).encode() in args:
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def batch(scope_run: str, n: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {"alertname": "DiskFull", "instance": f"{scope_run}-{i}", "severity": "warning"},
            "startsAt": now,
        }
        for i in range(n)
    ]


async def scope_worker_pids(handle) -> set[int]:  # type: ignore[no-untyped-def]
    """The processes whose workers ran the scope's workflow tasks (identity `pid@host`)."""
    history = await handle.fetch_history()
    return {
        int(e.workflow_task_started_event_attributes.identity.split("@")[0])
        for e in history.events
        if e.HasField("workflow_task_started_event_attributes")
    }


async def test_argus_up_runs_its_gateway_and_monitoring_worker_in_children_that_die_with_it(
    tmp_path,
    dev_temporal,  # noqa: F811
):
    scope = f"gw{uuid.uuid4().hex[:6]}"
    raw = e2e_config(
        tmp_path,
        "http://127.0.0.1:9",
        temporal=dev_temporal.address,
        sources=[],
        rules=[],
        policy={"phases": {"monitoring": True, "incident": False, "docgen": False}},
    )
    raw["temporal"]["namespace"] = "default"
    cfg_path = write_config(tmp_path, raw)
    gw = f"http://127.0.0.1:{raw['gateway']['port']}"
    log = tmp_path / "argus.log"
    monitoring = dev_temporal.client.get_workflow_handle(f"monitoring-{scope}")
    sent: list[str] = []

    async def post(http: httpx.AsyncClient, alerts: list[dict]) -> None:
        r = await http.post(f"{gw}/api/v2/alerts", params={"scope": scope}, json=alerts)
        assert r.status_code == 200, r.text
        sent.extend(labels_fingerprint(a["labels"]) for a in alerts)

    async def all_held() -> bool:
        report = await monitoring.query(
            MonitoringWorkflow.check_fingerprints,
            FingerprintCheck(fingerprints=sent),
            rpc_timeout=timedelta(seconds=10),
        )
        return report.queued == 0 and report.missing == []

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{gw}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    up = argus_up(cfg_path, dev_temporal.address, log)
    try:
        await eventually(healthy, timeout=90, what=f"the gateway answers ({log})")
        [child] = children(up.pid, b"gateway")
        [worker] = children(up.pid, b"worker")
        assert child != up.pid and worker != up.pid

        async with httpx.AsyncClient(timeout=30) as http:
            await post(http, batch("first", 40))
        await eventually(all_held, timeout=60, what="the acknowledged alerts in the scope")
        assert await scope_worker_pids(monitoring) == {worker}, "the scope runs in the child worker"

        # SIGKILL: no chance to clean up. The gateway notices its parent is gone and stops.
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
        await eventually(
            lambda: asyncio.to_thread(gone, child), timeout=15, what="the orphaned gateway stopping"
        )
        await eventually(
            lambda: asyncio.to_thread(gone, worker), timeout=30, what="the orphaned worker stopping"
        )
        assert not port_open("127.0.0.1", raw["gateway"]["port"])

        up = argus_up(cfg_path, dev_temporal.address, log)
        await eventually(healthy, timeout=90, what=f"the restarted gateway answers ({log})")
        [child] = children(up.pid, b"gateway")
        [worker2] = children(up.pid, b"worker")
        async with httpx.AsyncClient(timeout=30) as http:
            await post(http, batch("second", 10))
        await eventually(all_held, timeout=60, what="alerts from before and after the kill in the scope")
        assert await scope_worker_pids(monitoring) == {worker, worker2}

        # A graceful stop ends both processes.
        up.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(up.wait, 30) == 0, log.read_text()[-3000:]
        for pid, what in ((child, "gateway"), (worker2, "monitoring worker")):
            await eventually(
                lambda pid=pid: asyncio.to_thread(gone, pid), timeout=15, what=f"the {what} stopping too"
            )
    finally:
        if up.poll() is None:
            up.kill()
        for pid in children(up.pid, b"gateway") + children(up.pid, b"worker"):
            os.kill(pid, signal.SIGKILL)


async def test_a_stack_stopped_while_starting_stops_its_children(tmp_path, monkeypatch, dev_temporal):  # noqa: F811
    """Cancelled (a SIGTERM during start-up) after its gateway and monitoring worker started:
    `async with` does not call __aexit__ when __aenter__ raises, so the stack cleans up itself."""
    from argus.models import ArgusConfig
    from argus.workers import stack as stack_module

    raw = e2e_config(tmp_path, "http://127.0.0.1:9", temporal=dev_temporal.address, sources=[], rules=[])
    raw["temporal"]["namespace"] = "default"
    config = ArgusConfig.model_validate(raw)
    reached = asyncio.Event()

    async def orchestrator_never_answers(*_args: object) -> None:
        reached.set()  # the gateway answered: the children are up
        await asyncio.Event().wait()

    monkeypatch.setenv("ARGUS_LINK_SECRET", "gateway-process-test-secret-0123")
    monkeypatch.setattr(stack_module, "start_orchestrator", orchestrator_never_answers)
    stack = stack_module.Stack(config, gateway_process=True, monitoring_process=True)
    starting = asyncio.create_task(stack.__aenter__())
    await asyncio.wait_for(reached.wait(), timeout=120)
    [gateway] = children(os.getpid(), b"gateway")
    worker = await eventually(
        lambda: asyncio.to_thread(lambda: (children(os.getpid(), b"worker") or [None])[0]),
        timeout=60,
        what="the monitoring worker started",
    )
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert gone(gateway) and gone(worker)
    assert not port_open("127.0.0.1", raw["gateway"]["port"])
