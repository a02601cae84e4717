"""Sustained load: N alerts through one monitoring scope; is the workflow history bounded
(continue-as-new) and does ARGUS's memory stay flat as the count grows?

    .venv/bin/python bench/sustained_bench.py [--alerts 1000000] [--clients 8] [--batch 50]
        [--active 2000] [--churn 0.1] [--groups 10] [--sample-every 5]

Traffic is what Prometheus sends: each client keeps a population of firing alerts (`--active`
over all clients) and re-sends it round-robin (repeats, Alertmanager's dedup path); a
`--churn` share of every batch is change: half resolutions of the oldest alerts, half new
alerts that replace them. So the tracked set stays near `--active` however many alerts pass.
Alerts fall into `--groups` groups (one incident each, one service each).

ARGUS runs as `argus up --temporal ADDR` (main worker; gateway and monitoring worker as its
children) against a dev server on a SQLite file. "ARGUS RSS" is the monitoring worker's, the
process whose memory holds the scope's state. Every `--sample-every` seconds: the monitoring
workflow's current run and its history length and size (describe), runs so far, alerts routed,
queued and tracked (queries), the largest incident history, and the RSS of ARGUS and of the dev
server (/proc).
At the end: max history events and MB per run (every run, described), the runs' statuses
(a TERMINATED one means the server killed a run that grew past its history limit, and its state
with it), ARGUS RSS at 10%, 50% and 100% of the alerts, and alerts/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from loadkit import (
    ROOT,
    ArgusProcess,
    add_stack_options,
    argus_config,
    dev_config_args,
    monitoring,
    report,
    rss_mb,
    wait_drained,
)
from temporalio.client import Client

from argus.models.agents import MonitoringStatus
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port
from argus.workflows.monitoring import MonitoringWorkflow

MARKS = (0.1, 0.5, 1.0)


@dataclass
class Load:
    target: int
    acked: int = 0
    retries: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    rss_at: dict[str, float | None] = field(default_factory=dict)  # "10%" -> ARGUS RSS (MB)
    done_at: float | None = None


class Population:
    """One client's firing alerts: repeats round-robin, churn replaces the oldest."""

    def __init__(self, run: str, client: int, size: int, groups: int) -> None:
        self.run, self.client, self.size, self.groups = run, client, size, groups
        self.alerts: deque[dict] = deque()
        self.serial = 0
        self.cursor = 0

    def _new(self, now: str) -> dict:
        g = (self.client + self.serial) % self.groups
        alert = {
            "labels": {
                "alertname": f"Sustained{g}",
                "service": f"svc-{g}",
                "instance": f"{self.run}-{self.client}-{self.serial}",
                "severity": "warning",
            },
            "annotations": {"summary": "sustained benchmark alert"},
            "startsAt": now,
        }
        self.serial += 1
        self.alerts.append(alert)
        return alert

    def batch(self, size: int, churn: float) -> list[dict]:
        now = datetime.now(UTC).isoformat()
        if len(self.alerts) < self.size:  # warming up: new alerts only
            return [self._new(now) for _ in range(min(size, self.size - len(self.alerts)))]
        swaps = round(size * churn / 2)  # as many resolved as new: the population keeps its size
        out = []
        for _ in range(swaps):
            gone = self.alerts.popleft()
            out.append({**gone, "endsAt": now})  # an end time in the past: a resolution
        out += [self._new(now) for _ in range(swaps)]
        for _ in range(size - len(out)):
            self.cursor = (self.cursor + 1) % len(self.alerts)
            out.append(self.alerts[self.cursor])
        return out


async def client_loop(
    url: str, pop: Population, args: argparse.Namespace, load: Load, argus: ArgusProcess
) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5)) as http:
        while load.acked < load.target:
            alerts = pop.batch(args.batch, args.churn)
            body = orjson.dumps(alerts)
            attempt = 0
            while True:
                try:
                    r = await http.post(url, content=body, headers={"content-type": "application/json"})
                    why = None if 200 <= r.status_code < 300 else f"http {r.status_code}"
                except httpx.HTTPError as exc:
                    why = type(exc).__name__
                if why is None:
                    break
                load.refused[why] = load.refused.get(why, 0) + 1
                load.retries += 1
                attempt += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
            before = load.acked
            load.acked += len(alerts)
            for mark in MARKS:
                if before < mark * load.target <= load.acked:
                    load.rss_at[f"{mark:.0%}"] = rss_mb(argus.scope_pid)
            if load.acked >= load.target and load.done_at is None:
                load.done_at = time.monotonic()


async def sample(
    client: Client, dev: DevServer, argus: ArgusProcess, t0: float, load: Load, prev: dict
) -> dict:
    handle = monitoring(client)
    row: dict = {"t_s": round(time.monotonic() - t0, 1), "acked": load.acked}
    dt = row["t_s"] - prev.get("t_s", 0.0)
    row["acked_per_s"] = round((load.acked - prev.get("acked", 0)) / dt) if dt > 0 else 0
    try:
        info = (await handle.describe(rpc_timeout=timedelta(seconds=10))).raw_description
        row["run"] = info.workflow_execution_info.execution.run_id
        row["history_events"] = info.workflow_execution_info.history_length
        row["history_mb"] = round(info.workflow_execution_info.history_size_bytes / 1e6, 2)
    except Exception as exc:
        row["describe_error"] = type(exc).__name__
    try:
        st: MonitoringStatus = await handle.query(
            MonitoringWorkflow.status, rpc_timeout=timedelta(seconds=10)
        )
        row["runs"], row["routed"] = st.runs, st.alerts_received
        rep = await report(handle)
        row["queued"], row["tracked"] = rep.queued, rep.tracked
    except Exception as exc:
        row["query_error"] = type(exc).__name__
    try:  # visibility has no history length for running workflows: describe each incident
        ids = [w.id async for w in client.list_workflows('WorkflowType="IncidentWorkflow"')]
        events = []
        for i in ids:
            info = (await client.get_workflow_handle(i).describe()).raw_description
            events.append(info.workflow_execution_info.history_length)
        row["incidents"], row["max_incident_events"] = len(ids), max(events, default=0)
    except Exception as exc:
        row["list_error"] = type(exc).__name__
    row["argus_rss_mb"] = rss_mb(argus.scope_pid)
    row["temporal_rss_mb"] = rss_mb(dev.proc.pid if dev.proc else None)
    return row


COLUMNS = [
    ("t_s", 7),
    ("acked", 9),
    ("acked_per_s", 8),
    ("routed", 9),
    ("queued", 7),
    ("tracked", 8),
    ("runs", 5),
    ("history_events", 8),
    ("history_mb", 7),
    ("argus_rss_mb", 9),
    ("temporal_rss_mb", 9),
    ("incidents", 5),
    ("max_incident_events", 9),
]
HEADS = ["t(s)", "acked", "acked/s", "routed", "queued", "tracked", "runs", "hist_ev", "hist_MB", "argus_MB"]
HEADS += ["tmprl_MB", "inc", "inc_ev"]


def line(row: dict) -> str:
    cells = []
    for name, width in COLUMNS:
        v = row.get(name, "-")
        cells.append(f"{v:>{width}}")
    errors = [f"{k}={v}" for k, v in row.items() if k.endswith("_error")]
    return " ".join(cells) + ("  " + " ".join(errors) if errors else "")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50, help="alerts per POST")
    ap.add_argument("--active", type=int, default=2000, help="firing alerts kept up, over all clients")
    ap.add_argument("--churn", type=float, default=0.1, help="share of each batch that resolves or is new")
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    add_stack_options(ap)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-sustained-"))
    dev = DevServer(
        tmp / "temporal", "argus", port=free_port(), ui_port=None, extra_args=dev_config_args(args.dev_config)
    )
    argus: ArgusProcess | None = None
    try:
        dev.start()
        gw_port = free_port()
        route = {"receiver": "bench", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"}
        cfg = argus_config(tmp, dev.address, gw_port, route, resolve_timeout="5m")
        argus = ArgusProcess(cfg, dev.address, gw_port, tmp / "argus.log")
        await argus.start()
        client = await connect(dev.address, "argus")
        rss_start = rss_mb(argus.scope_pid)

        run = uuid.uuid4().hex[:6]
        per_client = max(1, args.active // args.clients)
        load = Load(target=args.alerts)
        print(
            f"{args.alerts} alerts: {args.clients} clients x batches of {args.batch}, {args.active} firing "
            f"alerts kept up, churn {args.churn:.0%} per batch, {args.groups} groups; "
            f"ARGUS RSS at start {rss_start} MB",
            flush=True,
        )
        print(" ".join(f"{h:>{w}}" for h, (_, w) in zip(HEADS, COLUMNS, strict=True)), flush=True)
        t0 = time.monotonic()
        url = f"{argus.url}/api/v2/alerts"
        clients = [
            asyncio.create_task(
                client_loop(url, Population(run, c, per_client, args.groups), args, load, argus)
            )
            for c in range(args.clients)
        ]
        samples: list[dict] = []
        prev: dict = {}
        while not all(c.done() for c in clients):
            await asyncio.wait(clients, timeout=args.sample_every)
            prev = await sample(client, dev, argus, t0, load, prev)
            samples.append(prev)
            print(line(prev), flush=True)
        for c in clients:
            c.result()
        load_s = (load.done_at or time.monotonic()) - t0

        handle = monitoring(client)
        _, drain_s = await wait_drained(handle, timeout=600)
        final = await sample(client, dev, argus, t0, load, prev)
        samples.append(final)
        print(line(final), " <- drained", flush=True)

        listed = [w async for w in client.list_workflows('WorkflowId="monitoring-default"')]
        runs = [w.run_id for w in listed]
        statuses: dict[str, int] = {}
        for w in listed:
            name = w.status.name if w.status is not None else "UNKNOWN"
            statuses[name] = statuses.get(name, 0) + 1
        per_run = []  # (events, MB) of every run, closed ones included
        for run_id in runs:
            info = (await client.get_workflow_handle(handle.id, run_id=run_id).describe()).raw_description
            ex = info.workflow_execution_info
            per_run.append((ex.history_length, round(ex.history_size_bytes / 1e6, 2)))
        sampled_max = max((s.get("history_events", 0) for s in samples), default=0)
        verdict = {
            "alerts": load.acked,
            "load_s": round(load_s, 1),
            "alerts_per_s": round(load.acked / load_s),
            "drain_s": round(drain_s, 1),
            "runs": len(runs),
            "run_statuses": statuses,  # anything but CONTINUED_AS_NEW and one RUNNING is trouble
            "max_history_events_per_run": max([*(e for e, _ in per_run), sampled_max]),
            "max_history_mb_per_run": max([*(mb for _, mb in per_run), 0]),
            "argus_rss_mb": {"start": rss_start, **load.rss_at, "drained": final.get("argus_rss_mb")},
            "tracked_final": final.get("tracked"),
            "max_tracked_sampled": max((s.get("tracked", 0) for s in samples), default=0),
            "max_incident_events": max((s.get("max_incident_events", 0) for s in samples), default=0),
            "retries": load.retries,
            "refusals": load.refused,
        }
        print(
            f"verdict: {verdict['alerts']} alerts in {verdict['load_s']}s = "
            f"{verdict['alerts_per_s']} alerts/s "
            f"(drained {verdict['drain_s']}s later); {verdict['runs']} runs {statuses}, max "
            f"{verdict['max_history_events_per_run']} history events and "
            f"{verdict['max_history_mb_per_run']} MB per run; ARGUS RSS MB "
            + ", ".join(f"{k} {v}" for k, v in verdict["argus_rss_mb"].items()),
            flush=True,
        )
        print(json.dumps(verdict), flush=True)
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "sustained.json").write_text(json.dumps({"verdict": verdict, "samples": samples}, indent=2))
    finally:
        if argus is not None:
            argus.stop()
        dev.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
