"""Ingest benchmark: ARGUS's gateway against a real Alertmanager, same load, same machine.

    .venv/bin/python bench/ingest_bench.py [--seconds 20] [--clients 16] [--batch 50]

Phase 1 (throughput): 16 concurrent clients post Alertmanager-v2 batches of 50 alerts, as
fast as each answer comes back, first to a real Alertmanager (in-memory only), then to ARGUS
(every 2xx means the alerts are durable in Temporal on a SQLite file). Prints alerts/s, request
latency percentiles and CPU per process for both. Alertmanager is stopped between the two (after
its CPU of the next seconds is measured: it works off what it took), and ARGUS starts on a quiet
machine.

Phase 2 (latency): alerts that each open a new group (group_wait 0) at a steady rate, into a
scope of their own (the burst left the default scope full); for each, the time from the POST
leaving the client to the IncidentWorkflow's start time in Temporal. Prints p50/p99.

ARGUS runs as `argus up --temporal ADDR` in its own process (worker + gateway), against a
dev server started here; the load generator is this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadkit import (  # noqa: E402
    argus_children,
    cpu_seconds,
    monitoring,
    task_trouble,
    wait_drained,
    wait_http,
    wait_quiet,
)

from argus.analysis.routing import group_key, incident_id_for, resolve_routes  # noqa: E402
from argus.models import Route  # noqa: E402
from argus.workers.client import connect  # noqa: E402
from argus.workers.devserver import DevServer, free_port, port_open  # noqa: E402
from argus.workflows.monitoring import MonitoringWorkflow  # noqa: E402


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def make_batch(run: str, client: int, seq: int, size: int, groups: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {
                "alertname": f"Bench{(seq * size + i) % groups}",
                "service": f"svc-{client}",
                "instance": f"{run}-{client}-{seq}-{i}",
                "severity": "warning",
            },
            "annotations": {"summary": "benchmark alert"},
            "startsAt": now,
        }
        for i in range(size)
    ]


async def load(url: str, seconds: float, clients: int, size: int, groups: int, run: str) -> dict:
    sent = 0
    errors = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(c: int) -> None:
        nonlocal sent, errors
        seq = 0
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=2)) as http:
            while time.perf_counter() < deadline:
                body = json.dumps(make_batch(run, c, seq, size, groups)).encode()
                t0 = time.perf_counter()
                try:
                    r = await http.post(url, content=body, headers={"content-type": "application/json"})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                if ok:
                    sent += size
                else:
                    errors += 1
                seq += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "alerts": sent,
        "seconds": round(elapsed, 2),
        "alerts_per_s": round(sent / elapsed),
        "errors": errors,
        "req_p50_ms": round(pct(latencies, 50) * 1000, 1),
        "req_p99_ms": round(pct(latencies, 99) * 1000, 1),
        "req_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
    }


async def flush_figures(gw: str) -> dict[str, float]:
    """The gateway's coalesced-batch counters from its /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{gw}/metrics")).text
    wanted = {
        "argus_ingest_flush_seconds_count": "flushes",
        "argus_ingest_flush_seconds_sum": "flush_seconds",
        "argus_ingest_batch_alerts_sum": "alerts",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


def flush_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    d = {k: after[k] - before[k] for k in after}
    n = max(1.0, d["flushes"])
    return {
        "flushes": int(d["flushes"]),
        "alerts_per_flush": round(d["alerts"] / n, 1),
        "flush_ms_mean": round(d["flush_seconds"] / n * 1000, 1),
    }


def start_alertmanager(tmp: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if exe is None:
        raise SystemExit("prometheus-alertmanager not installed (scripts/system-deps installs it)")
    port = free_port()
    cfg = tmp / "am.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "route": {"receiver": "null", "group_by": ["alertname"], "group_wait": "30s"},
                "receivers": [{"name": "null"}],
            }
        )
    )
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={cfg}",
            f"--storage.path={tmp / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if port_open("127.0.0.1", port):
            break
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def argus_config(
    tmp: Path, temporal: str, gw_port: int, group_wait: str, gateway: dict | None = None
) -> Path:
    cfg = {
        "state_dir": str(tmp / "argus-state"),
        "temporal": {"address": temporal},
        "gateway": {"host": "127.0.0.1", "port": gw_port, **(gateway or {})},
        "sandbox": {"enabled": False},
        "notify": {"channels": ["outbox"], "echo": False},
        "policy": {
            "routing": {
                "route": {
                    "receiver": "bench",
                    "group_by": ["alertname"],
                    "group_wait": group_wait,
                    "group_interval": "5m",
                    "repeat_interval": "4h",
                }
            },
            "phases": {"monitoring": True, "incident": True, "docgen": False},
            "rca_settle": "0s",
        },
    }
    path = tmp / "argus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


AFTERWORK_S = 3.0

# The burst fills the default scope up to routing.max_tracked_alerts (its alerts stay firing), so
# new alerts there are refused as over capacity; the latency phase uses a scope of its own, on the
# same gateway, worker and dev server, right after the burst.
LATENCY_SCOPE = "latency"


STAGES = ("gateway", "queued", "task", "child")


async def where_time_went(client, posted: dict[str, float]) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Each incident's latency in four stages, read from the latency scope's history:
    gateway (POST to the signal persisted), queued (signal to the workflow task that handled it
    starting), task (that task started to completed, with the child's start command), child
    (command to the child's start time, filled in by the caller)."""
    from temporalio.api.enums.v1 import EventType as E

    from argus.models.alert import CompactBatch

    signal_at: dict[str, float] = {}  # incident id -> signal event time
    waiting: list[str] = []  # incidents signalled, their task not started yet
    started_for: dict[str, float] = {}
    task_started = task_done = 0.0
    out: dict[str, dict[str, float]] = {}
    conv = client.data_converter
    root = Route(receiver="bench", group_by=["alertname"])
    handle = monitoring(client, LATENCY_SCOPE)
    async for e in handle.fetch_history_events():
        t = e.event_time.ToDatetime(tzinfo=UTC).timestamp()
        if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            a = e.workflow_execution_signaled_event_attributes
            if a.signal_name != "ingest_compact":
                continue
            (batch,) = await conv.decode(a.input.payloads, [CompactBatch])
            for rec in batch.records():
                route = resolve_routes(root, rec["l"])[0]
                wf_id = incident_id_for(LATENCY_SCOPE, group_key(route, {"alertname": rec["l"]["alertname"]}))
                signal_at[wf_id] = t
                waiting.append(wf_id)
        elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task_started = t
            for wf_id in waiting:
                started_for[wf_id] = t
            waiting.clear()
        elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task_done = t
        elif e.event_type == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            wf_id = e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            if wf_id in posted and wf_id in signal_at:
                out[wf_id] = {
                    "gateway": signal_at[wf_id] - posted[wf_id],
                    "queued": started_for.get(wf_id, task_started) - signal_at[wf_id],
                    "task": task_done - started_for.get(wf_id, task_started),
                    "initiated": task_done,
                }
    return out


async def latency_phase(gw: str, temporal: str, n: int, rate: float) -> dict:
    client = await connect(temporal, "argus")
    root = Route(receiver="bench", group_by=["alertname"])
    posted: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(n):
            # A service of its own: correlation would (rightly) fold same-service alerts together.
            labels = {"alertname": f"Latency{i}", "service": f"latency-{i}", "severity": "warning"}
            route = resolve_routes(root, labels)[0]
            wf_id = incident_id_for(LATENCY_SCOPE, group_key(route, {"alertname": labels["alertname"]}))
            t0 = time.time()
            r = await http.post(
                f"{gw}/api/v2/alerts?scope={LATENCY_SCOPE}",
                json=[{"labels": labels, "startsAt": datetime.now(UTC).isoformat()}],
            )
            r.raise_for_status()
            posted[wf_id] = t0
            await asyncio.sleep(1 / rate)
    lat: list[float] = []
    by_index: dict[str, float] = {}
    deadline = time.monotonic() + 120
    pending = dict(posted)
    while pending and time.monotonic() < deadline:
        for wf_id in list(pending):
            try:
                desc = await client.get_workflow_handle(wf_id).describe()
            except Exception:
                continue
            lat.append(desc.start_time.timestamp() - pending.pop(wf_id))
            by_index[wf_id] = lat[-1]
        await asyncio.sleep(0.5)
    order = list(posted)
    slowest = sorted(by_index, key=by_index.get, reverse=True)[:5]  # type: ignore[arg-type]
    stages = await where_time_went(client, posted)
    for wf_id, st in stages.items():
        st["child"] = posted[wf_id] + by_index[wf_id] - st.pop("initiated") if wf_id in by_index else 0.0
    return {
        "slowest": {order.index(w): round(by_index[w] * 1000) for w in slowest},
        "stages_ms": {
            "p50": {k: round(pct([s[k] for s in stages.values()], 50) * 1000) for k in STAGES},
            "slowest": {
                order.index(w): {k: round(stages[w][k] * 1000) for k in STAGES}
                for w in slowest
                if w in stages
            },
        },
        "incidents": len(lat),
        "missing": len(pending),
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument("--latency-rate", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    ap.add_argument(
        "--gateway-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a gateway setting for ARGUS (YAML value), e.g. flush_interval=0s",
    )
    ap.add_argument(
        "--split", action="store_true", help="run `argus worker` and `argus gateway` as two processes"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-ingest-"))
    am, am_url = start_alertmanager(tmp)
    dev = DevServer(tmp / "temporal", "argus", port=free_port(), ui_port=None)
    argus_proc = worker_proc = None
    try:
        dev.start()
        gw_port = free_port()
        gateway = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.gateway_set)}
        cfg = argus_config(tmp, dev.address, gw_port, group_wait="0s", gateway=gateway)
        argus_exe = Path(sys.executable).parent / "argus"
        env = {**os.environ, "ARGUS_LINK_SECRET": "bench-secret-0123456789abcdef"}
        if args.split:
            # The worker and the gateway as two processes (a production layout).
            worker_proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
                [str(argus_exe), "worker", "--config", str(cfg), "--temporal", dev.address],
                stdout=(tmp / "worker.log").open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
            cmd = "gateway"
        else:
            cmd = "up"
        argus_proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
            [str(argus_exe), cmd, "--config", str(cfg), "--temporal", dev.address],
            stdout=(tmp / "argus.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        gw = f"http://127.0.0.1:{gw_port}"
        try:
            await wait_http(f"{gw}/healthz")
        except RuntimeError:
            print("argus exit code", argus_proc.poll())
            print((tmp / "argus.log").read_text()[-3000:])
            raise

        print(
            f"load: {args.clients} clients x batches of {args.batch} for {args.seconds:.0f}s each", flush=True
        )
        am_cpu0, gen_cpu0 = cpu_seconds(am.pid), cpu_seconds(os.getpid())
        am_res = await load(
            f"{am_url}/api/v2/alerts", args.seconds, args.clients, args.batch, args.groups, "am"
        )
        am_cpu1, gen_cpu1 = cpu_seconds(am.pid), cpu_seconds(os.getpid())
        am_res["cpu"] = {
            name: {
                "cpu_pct": round((b - a) / am_res["seconds"] * 100),
                "us_per_alert": round((b - a) / max(1, am_res["alerts"]) * 1e6, 1),
            }
            for name, a, b in (("load generator", gen_cpu0, gen_cpu1), ("alertmanager", am_cpu0, am_cpu1))
            if a is not None and b is not None
        }
        print("alertmanager", json.dumps(am_res), flush=True)
        # Alertmanager goes on working after its last answer (it dispatches what it took into its
        # groups): up to a core for seconds. Measured, then stopped, and ARGUS's phase starts on a
        # quiet machine, or it would pay for Alertmanager's backlog.
        await asyncio.sleep(AFTERWORK_S)
        after = cpu_seconds(am.pid)
        if after is not None and am_cpu1 is not None:
            am_res["cpu_after_phase_pct"] = round((after - am_cpu1) / AFTERWORK_S * 100)
        am.terminate()
        am.wait()
        quiet_s = await wait_quiet()
        print(
            f"alertmanager went on using {am_res.get('cpu_after_phase_pct', '?')}% of a core for "
            f"{AFTERWORK_S:g}s after its phase; stopped, machine quiet after {quiet_s:.1f}s more",
            flush=True,
        )
        flushes_before = await flush_figures(gw)
        # Where the two cores go during the ARGUS phase, per process and per acknowledged alert.
        procs = {"load generator": os.getpid(), "dev server": dev.proc.pid if dev.proc else None}
        if worker_proc is not None:
            procs |= {"worker": worker_proc.pid, "gateway": argus_proc.pid}
        else:
            # `argus up` runs the gateway and the monitoring worker as its children.
            procs |= {"worker": argus_proc.pid, **argus_children(argus_proc.pid)}
        cpu_before = {name: cpu_seconds(pid) for name, pid in procs.items()}
        argus_res = await load(
            f"{gw}/api/v2/alerts", args.seconds, args.clients, args.batch, args.groups, "argus"
        )
        print("argus       ", json.dumps(argus_res), flush=True)
        cpu = {}
        for name, pid in procs.items():
            after, before = cpu_seconds(pid), cpu_before[name]
            if after is not None and before is not None:
                used = after - before
                cpu[name] = {
                    "cpu_pct": round(used / argus_res["seconds"] * 100),
                    "us_per_alert": round(used / max(1, argus_res["alerts"]) * 1e6, 1),
                }
        argus_res["cpu"] = cpu
        print("cpu during the ARGUS phase", json.dumps(cpu), flush=True)
        flushes = flush_delta(flushes_before, await flush_figures(gw))
        argus_res["flushes"] = flushes
        print("gateway flushes to Temporal", json.dumps(flushes), flush=True)
        ratio = argus_res["alerts_per_s"] / max(1, am_res["alerts_per_s"])
        print(f"ratio argus/alertmanager: {ratio:.2f}x", flush=True)

        # Latency is measured on a system that has worked off the burst: wait until the monitoring
        # workflow has routed every alert the gateway acknowledged (and say how long that took).
        client = await connect(dev.address, "argus")
        _, drain_s = await wait_drained(monitoring(client), timeout=600)
        argus_res["drain_s"] = round(drain_s, 1)
        print(f"burst routed {drain_s:.1f}s after the load ended", flush=True)
        trouble = await task_trouble(client, "monitoring-default")
        status = await monitoring(client).query(MonitoringWorkflow.status)
        argus_res["monitoring_runs"] = status.runs
        argus_res["workflow_task_trouble"] = trouble
        print(f"monitoring runs {status.runs}; workflow task trouble {trouble or 'none'}", flush=True)
        lat = await latency_phase(gw, dev.address, args.latency_n, args.latency_rate)
        print("latency alert->incident started", json.dumps(lat), flush=True)
        summary = {"alertmanager": am_res, "argus": argus_res, "ratio": round(ratio, 3), "latency": lat}
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "ingest.json").write_text(json.dumps(summary, indent=2))
    finally:
        for proc in (argus_proc, worker_proc):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        dev.stop()
        if am.poll() is None:
            am.terminate()
            am.wait()
        if args.keep:
            print(f"kept {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
