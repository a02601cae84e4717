"""A worker process SIGKILLed in the middle of a remediation step; the step still happens exactly once.

Real processes throughout: the Temporal dev server (SQLite file), `argus worker` as a subprocess, the
sandbox in this process. The sandbox applies the restart at once but holds its answer, as a target
whose reply is lost in a crash would; the worker is killed while it waits. A second worker picks the
incident up: the step's heartbeats stop, Temporal retries it there, and the Executor asks the sandbox
about the step's key before acting, finds it applied, and does not restart the service again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from argus.models import Alert, IncidentInput, IncidentState, Policy
from argus.sandbox.server import start_sandbox
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port, wait_for_namespace

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

DRILL = """
name: crash-drill
description: Restart the service the drill alert names.
risk: low
expected_effect: fresh processes
match: {alertnames: [CrashDrill]}
parameters: {service: {type: string, pattern: "^[a-z0-9-]+$"}}
steps:
  - name: restart
    run: {type: sandbox, action: restart, args: {service: "{{ service }}"}}
"""


def start_worker(config: Path, address: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from argus.workers.cli import main; main()", "worker",
         "--config", str(config), "--temporal", address],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_worker_killed_mid_step_still_restarts_exactly_once(tmp_path):
    state = tmp_path / "state"
    dev = DevServer(state, "argus", port=free_port(), ui_port=None)
    await asyncio.to_thread(dev.start)
    sandbox = start_sandbox(port=0, warmup_s=120)
    workers: list[subprocess.Popen] = []
    try:
        await wait_for_namespace(dev.address, "argus")
        pb = tmp_path / "playbooks"
        pb.mkdir()
        (pb / "drill.yaml").write_text(DRILL)
        cfg = {
            "state_dir": str(state),
            "temporal": {"address": dev.address, "namespace": "argus", "task_queue": "argus"},
            "sources": [{"name": "sandbox", "type": "embedded", "targets": [f"{sandbox.url}/metrics"],
                         "scrape_interval": "1s"}],
            # The Closer re-checks this rule: CPU above 500% never happens, so recovery is judged normal.
            "rules": [{"name": "CrashDrill", "expr": "sandbox_cpu_utilization > 5"}],
            "remediation": {"playbooks_dir": str(pb)},
            "sandbox": {"url": sandbox.url},
            "notify": {"channels": ["outbox"], "echo": False},
        }  # fmt: skip
        config = tmp_path / "argus.yaml"
        config.write_text(yaml.safe_dump(cfg))
        log = tmp_path / "workers.log"
        workers.append(start_worker(config, dev.address, log))

        client = await connect(dev.address, "argus")
        before = sandbox.world.state()["services"]["catalog"]["restarts_total"]
        sandbox.runtime.hold_next_action(30.0)
        policy = Policy.model_validate(
            {
                "approval": {"auto_approve_max_risk": "low"},
                "rca_settle": "0s",
                "verification": {"period": "3s", "interval": "1s", "max_wait": "2m", "watch": "3s"},
                "phases": {"monitoring": False, "incident": True, "docgen": False},
            }
        )
        alert = Alert(labels={"alertname": "CrashDrill", "service": "catalog", "severity": "warning"},
                      starts_at=datetime.now(UTC))  # fmt: skip
        inp = IncidentInput(
            incident_id="incident-crash-drill",
            group_key="crash-drill",
            group_labels={"alertname": "CrashDrill"},
            alerts=[alert],
            policy=policy,
        )
        handle = await client.start_workflow("IncidentWorkflow", inp, id=inp.incident_id, task_queue="argus",
                                             result_type=IncidentState)  # fmt: skip

        deadline = time.monotonic() + 120
        while not sandbox.runtime.action_requests:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert workers[0].poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        applied = sandbox.world.state()["services"]["catalog"]["restarts_total"]
        assert applied > before, "the sandbox applied the restart and is holding its answer"
        os.kill(workers[0].pid, signal.SIGKILL)  # mid-step: the Executor is still waiting for the reply
        workers[0].wait(10)
        workers.append(start_worker(config, dev.address, log))

        final = await asyncio.wait_for(handle.result(), 180)
        after = sandbox.world.state()["services"]["catalog"]["restarts_total"]
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
        sandbox.stop()
        await asyncio.to_thread(dev.stop)

    restarts = [a for a in sandbox.runtime.action_requests if a[0] == "restart"]
    assert len(restarts) == 1, f"one restart request reached the sandbox, got {restarts}"
    replicas = sandbox.world.state()["services"]["catalog"]["replicas"]
    assert after - before == replicas, "one rolling restart: each replica restarted once"
    assert final.status.value == "closed" and final.outcome.value == "fixed", [
        e.message for e in final.timeline
    ]
    step = [a for a in final.actions if a.step == "restart"]
    assert len(step) == 1 and step[0].status.value == "done"
    assert step[0].output.startswith("already applied"), (
        "the retry read the target's record instead of acting"
    )
