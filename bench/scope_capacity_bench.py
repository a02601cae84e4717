"""How many firing alerts one monitoring scope holds, with the payload store and without.

    .venv/bin/python bench/scope_capacity_bench.py [--alerts 30000] [--no-store]
        [--note-bytes 100] [--suggest-every 400] [--clients 8] [--batch 500]

A scope hands its whole state to its next run through continue-as-new, and Temporal refuses a
payload over 2 MiB. Without the payload store (`temporal.payload_store.enabled: false`) a scope
is held to what fits 1.6 MB, measured on its own alerts; with it, to
`routing.max_tracked_alerts` (25,000 by default).

Posts `--alerts` distinct firing alerts shaped like Kubernetes alerts from Prometheus (eight
labels; summary, description and runbook annotations; a generator URL; plus `--note-bytes`
random hex bytes in a `note` annotation, for alerts whose text compresses badly) to the gateway
of `argus up`, waits until the scope has routed them all, and prints: alerts tracked and refused
as `over_capacity`, the scope's runs, its largest hand-over (and whether it went to the store),
the history of its current run,
failed workflow tasks, the monitoring worker's RSS (peak, sampled every 0.25 s, and once
drained), and the time it took. The dev server
suggests continue-as-new every `--suggest-every` history events, so a short run hands over
several times, as a day of traffic would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import yaml
from loadkit import (
    ArgusProcess,
    add_stack_options,
    argus_config,
    dev_config_args,
    monitoring,
    rss_mb,
    task_trouble,
    wait_drained,
)
from temporalio.api.enums.v1 import EventType

from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port
from argus.workflows.monitoring import MonitoringWorkflow


def k8s_alert(i: int, rnd: random.Random, note_bytes: int) -> dict:
    rule = f"KubePod{('CrashLooping', 'NotReady', 'OOMKilled', 'HighCpu', 'HighMemory')[i % 5]}"
    ns, svc = f"team-{i % 12}", f"svc-{i % 40}"
    pod = f"{svc}-{rnd.randrange(16**8):08x}-{rnd.randrange(16**5):05x}"
    annotations = {
        "summary": f"{rule} on {ns}/{pod}",
        "description": f"Pod {ns}/{pod} of {svc}: {rule} for 5 minutes (value {rnd.random() * 100:.2f}).",
        "runbook_url": f"https://runbooks.example.com/kubernetes/{rule.lower()}",
    }
    if note_bytes:
        annotations["note"] = rnd.randbytes(note_bytes).hex()
    return {
        "labels": {
            "alertname": rule,
            "severity": ("critical", "warning")[i % 2],
            "cluster": "prod-eu-1",
            "namespace": ns,
            "service": svc,
            "pod": pod,
            "container": "app",
            "job": "kube-state-metrics",
        },
        "annotations": annotations,
        "generatorURL": f"http://prometheus:9090/graph?g0.expr=kube_pod_status%7Bnamespace%3D%22{ns}%22%7D",
    }


async def post_all(url: str, alerts: list[dict], clients: int, batch: int) -> dict[str, int]:
    refused: dict[str, int] = {}
    chunks = [alerts[i : i + batch] for i in range(0, len(alerts), batch)]

    async def one(mine: list[list[dict]]) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5)) as http:
            for chunk in mine:
                body = orjson.dumps(chunk)
                for attempt in range(60):
                    try:
                        r = await http.post(url, content=body, headers={"content-type": "application/json"})
                        why = None if r.status_code == 200 else f"http {r.status_code}"
                    except httpx.HTTPError as exc:
                        why = type(exc).__name__
                    if why is None:
                        break
                    refused[why] = refused.get(why, 0) + 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
                else:
                    raise RuntimeError(f"a batch was refused 60 times: {refused}")

    await asyncio.gather(*(one(chunks[c::clients]) for c in range(clients)))
    return refused


async def hand_overs(client, workflow_id: str) -> list[tuple[int, bool]]:  # type: ignore[no-untyped-def]
    """(bytes, kept in the payload store) of every continue-as-new input of the scope."""
    out = []
    async for run in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        async for e in client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                [p] = e.workflow_execution_continued_as_new_event_attributes.input.payloads
                stored = bool(p.external_payloads)
                out.append((p.external_payloads[0].size_bytes if stored else p.ByteSize(), stored))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=30_000)
    ap.add_argument("--no-store", action="store_true", help="temporal.payload_store.enabled: false")
    ap.add_argument(
        "--note-bytes", type=int, default=100, help="random bytes (as hex) in a `note` annotation"
    )
    ap.add_argument("--suggest-every", type=int, default=400, help="history events between hand-overs")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500, help="alerts per POST")
    add_stack_options(ap)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-capacity-"))
    extra = dev_config_args(
        [f"limit.historyCount.suggestContinueAsNew={args.suggest_every}", *args.dev_config]
    )
    dev = DevServer(tmp / "temporal", "argus", port=free_port(), ui_port=None, extra_args=extra)
    argus: ArgusProcess | None = None
    try:
        dev.start()
        gw_port = free_port()
        route = {"receiver": "bench", "group_by": ["alertname", "namespace"], "group_wait": "1h"}
        cfg = argus_config(tmp, dev.address, gw_port, route)
        settings = yaml.safe_load(cfg.read_text())
        settings["temporal"]["payload_store"] = {"enabled": not args.no_store}
        cfg.write_text(yaml.safe_dump(settings))
        argus = ArgusProcess(cfg, dev.address, gw_port, tmp / "argus.log")
        await argus.start()
        client = await connect(dev.address, "argus")

        rnd = random.Random(11)
        alerts = [k8s_alert(i, rnd, args.note_bytes) for i in range(args.alerts)]
        store = "off" if args.no_store else "on"
        print(f"{args.alerts} alerts, note {args.note_bytes} bytes, payload store {store}", flush=True)
        peak = {"rss": 0.0}

        async def sample_rss() -> None:
            while True:
                peak["rss"] = max(peak["rss"], rss_mb(argus.scope_pid) or 0.0)
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample_rss())
        t0 = time.monotonic()
        refused = await post_all(f"{argus.url}/api/v2/alerts", alerts, args.clients, args.batch)
        load_s = time.monotonic() - t0
        handle = monitoring(client)
        final, drain_s = await wait_drained(handle, timeout=900)
        sampler.cancel()
        status = await handle.query(MonitoringWorkflow.status)
        sizes = await hand_overs(client, handle.id)
        current = (await handle.describe()).raw_description.workflow_execution_info
        largest = max(sizes, default=(0, False))
        verdict = {
            "alerts": args.alerts,
            "payload_store": store,
            "tracked": final.tracked,
            "over_capacity": status.counts.get("over_capacity", 0),
            "runs": status.runs,
            "largest_hand_over_bytes": largest[0],
            "largest_in_store": largest[1],
            "hand_overs_in_store": sum(1 for _, s in sizes if s),
            # A run that cannot hand over grows until the server ends it (50 MB), state and all.
            "current_run_history": {
                "events": current.history_length,
                "mb": round(current.history_size_bytes / 1e6, 2),
            },
            "task_trouble": await task_trouble(client, handle.id),
            "load_s": round(load_s, 1),
            "drain_s": round(drain_s, 1),
            "monitoring_worker_rss_mb": {"peak": peak["rss"], "drained": rss_mb(argus.scope_pid)},
            "gateway_refusals": refused,
        }
        print("verdict", json.dumps(verdict), flush=True)
    finally:
        if argus is not None:
            argus.stop()
        dev.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
