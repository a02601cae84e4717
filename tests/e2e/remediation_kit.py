"""A whole ARGUS stack around the sandbox for remediation scenarios: the Temporal dev server (a child
process on a SQLite file), one worker, the gateway, the embedded scraper and the sandbox, all on free
ports, configured like `argus demo` but with short timings and one alert rule per scenario."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from argus.models import ArgusConfig, IncidentState
from argus.workers.devserver import free_port

REPO = Path(__file__).resolve().parents[2]

RULES = {
    "errors": {
        "name": "HighErrorRate",
        "expr": "sandbox_error_ratio > 0.05",
        "for": "4s",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $labels.service }} error ratio is {{ $value }}"},
    },
    "latency": {
        "name": "HighLatency",
        "expr": "sandbox_latency_p99_seconds > 1.0",
        "for": "4s",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "{{ $labels.service }} p99 latency is {{ $value }}s"},
    },
}


def scenario_config(tmp: Path, rule: str, **policy: Any) -> ArgusConfig:
    sandbox_port = free_port()
    cfg: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "temporal": {"dev_server_port": free_port(), "ui_port": None},
        "gateway": {"host": "127.0.0.1", "port": free_port()},
        "sources": [
            {
                "name": "sandbox",
                "type": "embedded",
                "targets": [f"http://127.0.0.1:{sandbox_port}/metrics"],
                "scrape_interval": "1s",
            }
        ],
        "rules": [RULES[rule]],
        "services": [
            {"name": "frontend", "depends_on": ["checkout", "catalog"]},
            {"name": "checkout", "depends_on": ["payments", "inventory"]},
            {"name": "catalog", "depends_on": ["inventory"]},
            {"name": "payments", "depends_on": ["payments-db"]},
            {"name": "inventory", "depends_on": ["inventory-db"]},
            {"name": "payments-db"},
            {"name": "inventory-db"},
        ],
        "rca": {
            "source": "sandbox",
            "step": "2s",
            "log_file": "sandbox.log",
            "metrics": {
                "latency": "sandbox_latency_p99_seconds",
                "errors": "sandbox_error_ratio",
                "cpu": "sandbox_cpu_utilization",
                "memory": "sandbox_memory_bytes",
                "requests": "sandbox_request_rate",
            },
        },
        "policy": {
            "poll_interval": "1s",
            "rca_lookback": "10m",
            "rca_settle": "20s",
            "routing": {
                "route": {
                    "receiver": "oncall",
                    "group_by": ["alertname"],
                    "group_wait": "2s",
                    "group_interval": "5s",
                    "repeat_interval": "1h",
                }
            },
            "approval": {"approvers": ["alice"], "auto_approve_max_risk": "medium", "timeout": "1h"},
            "verification": {"period": "8s", "interval": "2s", "max_wait": "3m", "watch": "8s"},
            "phases": {"monitoring": True, "incident": True, "docgen": False},
            **policy,
        },
        "remediation": {"playbooks_dir": str(REPO / "playbooks")},
        "notify": {"channels": ["outbox"], "echo": False},
        "sandbox": {"url": f"http://127.0.0.1:{sandbox_port}"},
    }
    return ArgusConfig.model_validate(cfg)


async def incident_of(client, since: float, timeout: float = 120.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async for wf in client.list_workflows('WorkflowType="IncidentWorkflow"'):
            if wf.start_time.timestamp() >= since:
                return wf.id
        await asyncio.sleep(1)
    raise AssertionError(f"no incident was opened within {timeout:.0f} s of the fault")


async def closed_incident(client, incident_id: str, timeout: float = 300.0) -> IncidentState:  # type: ignore[no-untyped-def]
    handle = client.get_workflow_handle(incident_id, result_type=IncidentState)
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        state = await handle.query("status", result_type=IncidentState)
        lines = "\n".join(f"{e.at:%H:%M:%S} {e.kind}: {e.message}" for e in state.timeline)
        raise AssertionError(f"incident {incident_id} did not close in {timeout:.0f} s:\n{lines}") from None
