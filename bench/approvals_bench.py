"""Benchmark: N incidents open at once, each waiting for approval, on one local Temporal dev server
(SQLite file) and one ARGUS worker process; then approvals, one at a time, timed.

Reports:
- how long it took to start the N incidents and bring each to `awaiting_approval` (the dev server's
  start rate bounds this: ~25-90 starts/s on 2 cores for the Temporal dev server);
- the worker's resident memory (RSS, sampled every 0.5 s; peak and at the end) — target < 2 GB;
- approval → resume latency, p50/p90/p99/max over the sampled approvals — target p99 < 1 s:
  `update` is the `decide` update's round trip (the workflow has applied the decision and its wait is
  released); `resume` runs until the incident's next activity (the recovery check) starts in the
  worker, i.e. the incident is moving again.

The worker runs the real IncidentWorkflow and ARGUS's real agents on their embedded stores (archive,
local tickets, outbox, signed links); as in the workflow tests, the three agents that look at a live
system (RCA, the Executor's target, the recovery check) are scripted, so the benchmark needs no
monitored system. Approvals are rejections, so nothing is "remediated".

Run: .venv/bin/python bench/approvals_bench.py --incidents 10000 --approvals 300
     (quick check: --incidents 300 --approvals 100)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.models.agents import VerifyRequest, VerifyResult  # noqa: E402

TASK_QUEUE = "argus-bench"
NAMESPACE = "argus"


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_config(state: Path):
    from argus.models import ArgusConfig

    return ArgusConfig.model_validate(
        {
            "state_dir": str(state),
            "temporal": {"namespace": NAMESPACE, "task_queue": TASK_QUEUE},
            "remediation": {"playbooks_dir": str(ROOT / "playbooks")},
            "sandbox": {"enabled": True, "url": "http://127.0.0.1:9"},  # the Executor is scripted
            "notify": {"echo": False},
        }
    )


def policy():
    from argus.models.config import Policy

    return Policy.model_validate(
        {
            "approval": {"approvers": ["alice"], "timeout": "7d"},
            "escalation": {
                "reminder_interval": "6h",
                "levels": [{"name": "on-call", "targets": ["carol"]}],
            },
            "verification": {"period": "10s", "interval": "5s", "max_wait": "1m"},
            "phases": {"monitoring": True, "incident": True, "docgen": False},
            "rca_settle": "0s",
        }
    )


# ---- the worker process ----------------------------------------------------------------------


def worker_main(address: str, state: str, resume_log: str, ready) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_worker(address, Path(state), Path(resume_log), ready))


async def _worker(address: str, state: Path, resume_log: Path, ready) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from temporalio import activity
    from temporalio.worker import Worker

    from argus.workers.client import connect
    from argus.workers.settings import Secrets
    from argus.workers.wiring import WORKFLOWS, activity_methods, build_activities, build_runtime
    from tests.workflows.kit import World

    log = resume_log.open("a", buffering=1)

    class BenchWorld(World):
        @activity.defn(name="verify_recovery")
        async def verify(self, req: VerifyRequest) -> VerifyResult:
            # The first activity after a decision: when it starts, the incident has resumed.
            info = activity.info()
            if info.attempt == 1:
                log.write(json.dumps({"wf": info.workflow_id, "t": time.time()}) + "\n")
            return VerifyResult(healthy=True, detail="normal")

    client = await connect(address, NAMESPACE)
    rt = build_runtime(bench_config(state), Secrets({"link_secret": "b" * 32}))
    world = BenchWorld(signature="cpu")
    scripted = {"analyze_root_cause", "execute_step", "verify_recovery"}
    real = [a for a in build_activities(rt) if a.__temporal_activity_definition.name not in scripted]
    # The production worker's settings (argus/workers/worker.py).
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=real + activity_methods([world]),
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=200,
        max_concurrent_workflow_tasks=200,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    ready.set()
    await worker.run()


# ---- the driver ----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def drive(args: argparse.Namespace) -> dict:
    from temporalio.common import WorkflowIDConflictPolicy

    from argus.models import ApprovalDecision, DecisionKind
    from argus.workers.client import connect
    from argus.workers.devserver import DevServer, free_port, wait_for_namespace
    from argus.workflows.incident import IncidentWorkflow
    from tests.workflows.kit import alert, incident_input

    work = Path(args.dir or tempfile.mkdtemp(prefix="argus-approvals-bench-"))
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    pragmas = (
        []
        if args.default_pragmas
        else ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    )
    dev = DevServer(
        work,
        NAMESPACE,
        port=free_port(),
        ui_port=None,
        extra_args=[*pragmas, "--http-port", str(free_port()), "--metrics-port", str(free_port())],
    )
    dev.start()
    resume_log = work / "resumed.jsonl"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=worker_main, args=(dev.address, str(state), str(resume_log), ready), daemon=True
    )
    peak = {"rss": 0.0}
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], rss_mb(proc.pid))
            await asyncio.sleep(0.5)

    try:
        await wait_for_namespace(dev.address, NAMESPACE)
        proc.start()
        ready.wait(60)
        sampler = asyncio.create_task(sample())
        client = await connect(dev.address, NAMESPACE)
        pol = policy()
        ids = [f"incident-bench-{uuid.uuid4().hex[:12]}" for _ in range(args.incidents)]
        sem = asyncio.Semaphore(args.concurrency)

        async def start(wf_id: str) -> None:
            inp = incident_input(
                pol, [alert(starts_at=datetime.now(UTC))], key=wf_id.removeprefix("incident-")
            )
            async with sem:
                await client.start_workflow(
                    IncidentWorkflow.run, inp, id=wf_id, task_queue=TASK_QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )  # fmt: skip

        t0 = time.perf_counter()
        await asyncio.gather(*(start(i) for i in ids))
        started_s = time.perf_counter() - t0
        print(f"started {len(ids)} incidents in {started_s:.1f}s ({len(ids) / started_s:.0f}/s)", flush=True)

        async def waiting() -> int:
            return (
                await client.count_workflows(
                    'WorkflowType="IncidentWorkflow" AND IncidentStatus="awaiting_approval"'
                )
            ).count

        while (n := await waiting()) < len(ids):
            print(
                f"  {n}/{len(ids)} awaiting approval after {time.perf_counter() - t0:.0f}s,"
                f" worker RSS {rss_mb(proc.pid):.0f} MB",
                flush=True,
            )
            if time.perf_counter() - t0 > args.max_wait:
                raise RuntimeError(
                    f"only {n}/{len(ids)} incidents reached awaiting_approval in {args.max_wait}s"
                )
            await asyncio.sleep(5)
        all_waiting_s = time.perf_counter() - t0
        rss_waiting = rss_mb(proc.pid)
        print(
            f"all {len(ids)} awaiting approval after {all_waiting_s:.1f}s; worker RSS {rss_waiting:.0f} MB",
            flush=True,
        )

        sample_ids = ids[: args.approvals]
        update_ms: list[float] = []
        sent_at: dict[str, float] = {}
        for wf_id in sample_ids:
            handle = client.get_workflow_handle(wf_id)
            s = await handle.query(IncidentWorkflow.status)
            d = ApprovalDecision(
                approver="alice", decision=DecisionKind.REJECT, proposal_hash=s.proposal.hash, via="bench",
                request_id=f"bench-{wf_id}",
            )  # fmt: skip
            sent_at[wf_id] = time.time()
            t = time.perf_counter()
            await handle.execute_update(IncidentWorkflow.decide, d, id=d.request_id)
            update_ms.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(args.gap)
        await asyncio.sleep(3)
        resumed = {}
        for line in resume_log.read_text().splitlines():
            rec = json.loads(line)
            resumed.setdefault(rec["wf"], rec["t"])
        resume_ms = [(resumed[w] - sent_at[w]) * 1000 for w in sample_ids if w in resumed]
        stop.set()
        await sampler
        return {
            "incidents": len(ids),
            "start_seconds": round(started_s, 1),
            "starts_per_second": round(len(ids) / started_s, 1),
            "all_awaiting_approval_seconds": round(all_waiting_s, 1),
            "worker_rss_mb_waiting": round(rss_waiting),
            "worker_rss_mb_peak": round(peak["rss"]),
            "approvals": len(update_ms),
            "update_ms": summary(update_ms),
            "resume_ms": summary(resume_ms),
            "resumed": len(resume_ms),
            "sqlite_pragmas": "default" if args.default_pragmas else "journal_mode=wal, synchronous=normal",
        }
    finally:
        stop.set()
        if proc.is_alive():
            proc.terminate()
            proc.join(15)
        dev.stop()
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 1),
        "p90": round(pct(values, 90), 1),
        "p99": round(pct(values, 99), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--incidents", type=int, default=10_000)
    p.add_argument("--approvals", type=int, default=300, help="how many of them to approve, timed")
    p.add_argument("--concurrency", type=int, default=100, help="workflow starts in flight")
    p.add_argument("--gap", type=float, default=0.05, help="seconds between timed approvals")
    p.add_argument("--max-wait", type=float, default=7200, help="seconds to reach awaiting_approval")
    p.add_argument("--default-pragmas", action="store_true", help="SQLite without WAL (slower)")
    p.add_argument("--dir", help="work directory (kept)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = p.parse_args()
    result = asyncio.run(drive(args))
    print(json.dumps(result, indent=2))
    rss_ok = result["worker_rss_mb_peak"] < 2048
    p99 = result["resume_ms"].get("p99")
    print(
        f"worker RSS peak {result['worker_rss_mb_peak']} MB ({'<' if rss_ok else '>='} 2048 MB target); "
        f"approval->resume p99 {p99} ms ({'<' if p99 is not None and p99 < 1000 else '>='} 1000 ms target)"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
