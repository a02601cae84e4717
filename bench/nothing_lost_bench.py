"""Nothing lost: SIGKILL ARGUS and the Temporal dev server during a load run, restart them, and
check that every alert the gateway acknowledged (2xx) is held by the monitoring workflow.

    .venv/bin/python bench/nothing_lost_bench.py [--seconds 60] [--clients 8] [--batch 50] [--kills 2]
        [--rate ALERTS_PER_S] [--dev-config KEY=VALUE] [--keep]

Load: `--clients` concurrent clients post Alertmanager-v2 batches of `--batch` alerts, each
alert unique (its own fingerprint), and retry a batch that got no 2xx (connection refused or
reset, 503, timeout) with backoff until it is acknowledged, then move to the next one.

Chaos: `--kills N` rounds, spread evenly over the run; a round SIGKILLs the ARGUS processes
(`argus up`: the main worker, its gateway and its monitoring worker, all three at once) and
restarts them, and, separately, SIGKILLs the dev server and restarts it on the same SQLite file
and port (ARGUS stays up and reconnects).

Check: once the load stopped and the workflow drained its backlog, every acknowledged
fingerprint is looked up in the monitoring workflow's router state with the
`MonitoringWorkflow.check_fingerprints` query. Alerts never resolve during the run
(`resolve_timeout` 1h), so each must still be held. Prints acknowledged, found, lost (must
be 0), the kills with their downtime, and the throughput over the whole run, downtime included.
If the workflow cannot drain (its workflow task keeps failing, so queries are refused), it says
why, from the history, and exits with 2: the acknowledged alerts are then not routed.

Every alert here is new, so the scope's tracked set grows with the run. One monitoring scope
carries that set through continue-as-new in one payload, which Temporal caps at 2 MiB: measured
3.1 MB for 58,850 tracked alerts of this benchmark, so the workflow's task fails for good beyond
about 40,000 (found with this benchmark, not fixed yet). `--rate` caps the load (alerts/s over
all clients) to stay below that and test the kills alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from loadkit import (
    ROOT,
    ArgusProcess,
    add_stack_options,
    argus_config,
    dev_config_args,
    missing,
    monitoring,
    pct,
    wait_drained,
)

from argus.models.alert import labels_fingerprint
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port


@dataclass
class Tally:
    acked: list[str] = field(default_factory=list)  # fingerprints of acknowledged alerts
    ack_times: dict[str, float] = field(default_factory=dict)  # batch id -> seconds into the run
    batch_of: dict[str, str] = field(default_factory=dict)  # fingerprint -> batch id (for a loss report)
    batches: int = 0
    retries: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # why a try got no 2xx
    gave_up: int = 0  # batches still unacknowledged when the run ended (not counted)
    latencies: list[float] = field(default_factory=list)


class Pacer:
    """At most `rate` alerts/s over all clients (0: as fast as the answers come back)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next = time.monotonic()

    async def wait(self, alerts: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        at = max(self.next, now)  # no catch-up burst after a downtime
        self.next = at + alerts / self.rate
        await asyncio.sleep(at - now)


def make_batch(run: str, client: int, seq: int, size: int, groups: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "labels": {
                "alertname": f"Lost{(seq * size + i) % groups}",
                "service": f"svc-{client}",
                "instance": f"{run}-{client}-{seq}-{i}",
                "severity": "warning",
            },
            "annotations": {"summary": "nothing-lost benchmark alert"},
            "startsAt": now,
        }
        for i in range(size)
    ]


async def client_loop(
    url: str,
    c: int,
    args: argparse.Namespace,
    run: str,
    t0: float,
    deadline: float,
    tally: Tally,
    pacer: Pacer,
) -> None:
    seq = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5)) as http:
        while time.monotonic() < deadline:
            await pacer.wait(args.batch)
            if time.monotonic() >= deadline:
                break
            alerts = make_batch(run, c, seq, args.batch, args.groups)
            body = orjson.dumps(alerts)
            attempt = 0
            while True:
                started = time.monotonic()
                try:
                    r = await http.post(url, content=body, headers={"content-type": "application/json"})
                    why = None if 200 <= r.status_code < 300 else f"http {r.status_code}"
                except httpx.HTTPError as exc:
                    why = type(exc).__name__
                if why is None:
                    tally.latencies.append(time.monotonic() - started)
                    fps = [labels_fingerprint(a["labels"]) for a in alerts]
                    tally.acked += fps
                    tally.ack_times[f"{c}-{seq}"] = round(time.monotonic() - t0, 2)
                    tally.batch_of.update(dict.fromkeys(fps, f"{c}-{seq}"))
                    tally.batches += 1
                    break
                tally.refused[why] = tally.refused.get(why, 0) + 1
                if time.monotonic() >= deadline:
                    tally.gave_up += 1
                    break
                tally.retries += 1
                attempt += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
            seq += 1


async def chaos(
    plan: list[tuple[float, str]], t0: float, argus: ArgusProcess, dev: DevServer, kills: list[dict]
) -> None:
    for at, target in plan:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        started = time.monotonic()
        if target == "argus":
            argus.kill()
            print(f"  t={started - t0:5.1f}s  kill -9 argus", flush=True)
            await argus.start()
        else:
            await asyncio.to_thread(dev.kill)
            print(f"  t={started - t0:5.1f}s  kill -9 temporal dev server", flush=True)
            await asyncio.to_thread(dev.start)
        down = time.monotonic() - started
        kills.append({"target": target, "at_s": round(started - t0, 1), "restart_s": round(down, 1)})
        print(f"  t={time.monotonic() - t0:5.1f}s  {target} back after {down:.1f}s", flush=True)


def kill_plan(seconds: float, rounds: int) -> list[tuple[float, str]]:
    """`rounds` of (argus, temporal), at evenly spaced moments inside the run."""
    targets = [t for _ in range(rounds) for t in ("argus", "temporal")]
    return [(seconds * (i + 1) / (len(targets) + 1), t) for i, t in enumerate(targets)]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60, help="load duration, kills and restarts included")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=50, help="alerts per POST")
    ap.add_argument("--groups", type=int, default=20, help="alert groups (one incident each)")
    ap.add_argument("--kills", type=int, default=2, help="rounds: each kills ARGUS once and Temporal once")
    ap.add_argument("--rate", type=float, default=0, help="cap on alerts/s over all clients (0: none)")
    add_stack_options(ap)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-nothing-lost-"))
    dev = DevServer(
        tmp / "temporal", "argus", port=free_port(), ui_port=None, extra_args=dev_config_args(args.dev_config)
    )
    argus: ArgusProcess | None = None
    try:
        dev.start()
        gw_port = free_port()
        route = {"receiver": "bench", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "5m"}
        cfg = argus_config(tmp, dev.address, gw_port, route, resolve_timeout="1h")
        argus = ArgusProcess(cfg, dev.address, gw_port, tmp / "argus.log")
        await argus.start()

        run = uuid.uuid4().hex[:6]
        plan = kill_plan(args.seconds, args.kills)
        print(
            f"load: {args.clients} clients x batches of {args.batch} unique alerts for {args.seconds:.0f}s; "
            f"{len(plan)} kills at {[f'{at:.0f}s {t}' for at, t in plan]}",
            flush=True,
        )
        tally = Tally()
        pacer = Pacer(args.rate)
        kills: list[dict] = []
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        url = f"{argus.url}/api/v2/alerts"
        await asyncio.gather(
            chaos(plan, t0, argus, dev, kills),
            *(client_loop(url, c, args, run, t0, deadline, tally, pacer) for c in range(args.clients)),
        )
        elapsed = time.monotonic() - t0

        client = await connect(dev.address, "argus")
        handle = monitoring(client)
        try:
            status, drain_s = await wait_drained(handle)
        except RuntimeError as exc:
            args.keep = True
            info = (await handle.describe()).raw_description.workflow_execution_info
            print(
                f"alerts acknowledged: {len(set(tally.acked))}   alerts found: unknown   lost: unknown\n"
                f"NOT DRAINED: {exc}\n"
                f"monitoring run {info.execution.run_id}: history {info.history_length} events, "
                f"{info.history_size_bytes / 1e6:.1f} MB",
                flush=True,
            )
            raise SystemExit(2) from exc
        unique = list(dict.fromkeys(tally.acked))
        lost = await missing(handle, unique)
        summary = {
            "alerts_acknowledged": len(tally.acked),
            "unique_acknowledged": len(unique),
            "alerts_found": len(unique) - len(lost),
            "lost": len(lost),
            "tracked_in_scope": status.tracked,
            "kills": kills,
            "seconds": round(elapsed, 1),
            "alerts_per_s": round(len(tally.acked) / elapsed),
            "batches_acked": tally.batches,
            "retries": tally.retries,
            "refusals": tally.refused,
            "unacknowledged_at_end": tally.gave_up,
            "ack_p50_ms": round(pct(tally.latencies, 50) * 1000, 1),
            "ack_p99_ms": round(pct(tally.latencies, 99) * 1000, 1),
            "drain_s": round(drain_s, 1),
        }
        if lost:
            summary["lost_sample"] = lost[:20]
        print(
            f"alerts acknowledged: {len(unique)}   alerts found: {len(unique) - len(lost)}   "
            f"lost: {len(lost)}   kills: {len(kills)} "
            f"(argus {sum(k['target'] == 'argus' for k in kills)}, "
            f"temporal {sum(k['target'] == 'temporal' for k in kills)})   "
            f"throughput: {summary['alerts_per_s']} alerts/s over {elapsed:.1f}s (downtime included)",
            flush=True,
        )
        print(json.dumps(summary), flush=True)
        out = ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "nothing_lost.json").write_text(json.dumps(summary, indent=2))
        if lost:
            args.keep = True
            (out / "nothing_lost_lost.json").write_text(
                json.dumps(
                    {
                        "kills": kills,
                        "lost_batches": {
                            b: tally.ack_times[b] for b in sorted({tally.batch_of[fp] for fp in lost})
                        },
                        "lost": lost,
                    }
                )
            )
            raise SystemExit(f"LOST {len(lost)} acknowledged alerts; logs kept in {tmp}")
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
