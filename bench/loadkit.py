"""What the load benchmarks share: ARGUS as its own process (`argus up --temporal ADDR`) against
a dev server on a SQLite file, killed and restarted at will, its memory read from /proc, and
the read that tells which acknowledged alerts the monitoring scope holds.

Used by `nothing_lost_bench.py` and `sustained_bench.py`; not a benchmark itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from temporalio.client import Client, WorkflowHandle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.models.agents import FingerprintCheck, FingerprintReport  # noqa: E402
from argus.workflows.monitoring import MonitoringWorkflow  # noqa: E402

CHECK_CHUNK = 2000  # fingerprints per query: request and answer stay far below payload limits


def argus_config(tmp: Path, temporal: str, gw_port: int, route: dict, resolve_timeout: str = "1h") -> Path:
    cfg = {
        "state_dir": str(tmp / "argus-state"),
        "temporal": {"address": temporal},
        "gateway": {"host": "127.0.0.1", "port": gw_port},
        "sandbox": {"enabled": False},
        "notify": {"channels": ["outbox"], "echo": False},
        "policy": {
            "routing": {"route": route, "resolve_timeout": resolve_timeout},
            "phases": {"monitoring": True, "incident": True, "docgen": False},
            "rca_settle": "0s",
        },
    }
    path = tmp / "argus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def add_stack_options(ap) -> None:  # type: ignore[no-untyped-def]
    """The options every load benchmark's stack takes."""
    ap.add_argument(
        "--dev-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dev server dynamic config, e.g. limit.historySize.error=8000000 (repeatable)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")


def dev_config_args(values: list[str]) -> list[str]:
    """`--dev-config KEY=VALUE` options as the dev server's dynamic-config flags, e.g.
    `limit.historySize.error=8000000` to meet a history limit in a short run."""
    out: list[str] = []
    for v in values:
        out += ["--dynamic-config-value", v]
    return out


def rss_mb(pid: int | None) -> float | None:
    """Resident set size of a process, from /proc (no psutil needed)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU a process has used so far, from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def wait_quiet(busy_below: float = 0.15, window: float = 1.0, timeout: float = 60) -> float:
    """Wait until the machine's CPU is mostly idle over `window` seconds (at most `timeout`);
    returns the seconds waited. A phase measured while an earlier one's process still works off
    its backlog would be charged for that process's CPU."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        b0, t0 = _cpu_times()
        await asyncio.sleep(window)
        b1, t1 = _cpu_times()
        if (b1 - b0) / max(1, t1 - t0) < busy_below:
            break
    return time.monotonic() - started


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (e.g. the gateway `argus up` starts), from /proc."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def argus_children(pid: int) -> dict[str, int]:
    """The processes `argus up` starts, by role: "gateway", "monitoring worker"."""
    out: dict[str, int] = {}
    for child in child_pids(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gateway" in argv:
            out["gateway"] = child
        elif b"worker" in argv:
            out["monitoring worker"] = child
    return out


async def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


class ArgusProcess:
    """`argus up` (main worker; gateway and monitoring worker as its children) as a child this
    benchmark may SIGKILL."""

    def __init__(self, cfg: Path, temporal: str, gw_port: int, log: Path) -> None:
        self.cfg, self.temporal, self.log = cfg, temporal, log
        self.url = f"http://127.0.0.1:{gw_port}"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    async def start(self) -> None:
        exe = Path(sys.executable).parent / "argus"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
                [str(exe), "up", "--config", str(self.cfg), "--temporal", self.temporal],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "ARGUS_LINK_SECRET": "bench-secret-0123456789abcdef"},
                start_new_session=True,
            )
        try:
            await wait_http(f"{self.url}/healthz")
        except RuntimeError:
            print("argus exit code", self.proc.poll(), file=sys.stderr)
            print(self.log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        for _ in range(300):  # the monitoring worker starts alongside the gateway
            if "monitoring worker" in argus_children(self.proc.pid):
                break
            await asyncio.sleep(0.1)

    @property
    def scope_pid(self) -> int | None:
        """The process whose worker runs the monitoring scopes (and holds their state): the
        monitoring worker `argus up` starts, or `argus up` itself if it runs them in-process."""
        if self.pid is None:
            return None
        return argus_children(self.pid).get("monitoring worker", self.pid)

    def kill(self) -> None:
        """SIGKILL of every ARGUS process at once (`argus up`, its gateway and its monitoring
        worker): no shutdown path runs (no graceful worker stop, no gateway drain)."""
        if self.proc is not None and self.proc.poll() is None:
            for pid in [*argus_children(self.proc.pid).values(), self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def monitoring(client: Client, scope: str = "default") -> WorkflowHandle:
    return client.get_workflow_handle(f"monitoring-{scope}")


async def report(handle: WorkflowHandle, fingerprints: list[str] | None = None) -> FingerprintReport:
    from datetime import timedelta

    return await handle.query(
        MonitoringWorkflow.check_fingerprints,
        FingerprintCheck(fingerprints=fingerprints or []),
        rpc_timeout=timedelta(seconds=30),
    )


async def last_task_failure(client: Client, workflow_id: str) -> str | None:
    """Why the workflow's last workflow task failed (newest WorkflowTaskFailed event), if one did."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
    from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest

    resp = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
            maximum_page_size=100,
        )
    )
    for e in resp.history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            a = e.workflow_task_failed_event_attributes
            return f"event {e.event_id}: {WorkflowTaskFailedCause.Name(a.cause)}: {a.failure.message}"
    return None


async def task_trouble(client: Client, workflow_id: str) -> dict[str, int]:
    """Failed and timed-out workflow tasks across every run of `workflow_id`, by cause: what a
    stall of the workflow (a deadlock, a replay after eviction) leaves in its histories."""
    from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause

    found: dict[str, int] = {}
    async for wf in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        async for e in client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                a = e.workflow_task_failed_event_attributes
                why = f"failed: {WorkflowTaskFailedCause.Name(a.cause)}: {a.failure.message[:80]}"
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                why = "timed out"
            else:
                continue
            found[why] = found.get(why, 0) + 1
    return found


async def wait_drained(
    handle: WorkflowHandle, timeout: float = 300, stuck_after: float = 60
) -> tuple[FingerprintReport, float]:
    """Until nothing is queued and the tracked count held still for two reads: every signal the
    gateway had persisted has been routed. Returns the last report and the seconds it took.

    Raises, with the cause from the history, when the workflow's task keeps failing (queries
    are refused while it does) for `stuck_after` seconds."""
    t0 = time.monotonic()
    last: FingerprintReport | None = None
    stable = 0
    failing_since: float | None = None
    said = ""
    while time.monotonic() - t0 < timeout:
        try:
            now = await report(handle)
            failing_since = None
        except Exception as exc:  # a worker still restarting, or a workflow task that keeps failing
            text = f"{type(exc).__name__}: {exc}"
            if text != said:
                print(f"  (query not answered: {text})", flush=True)
                said = text
            if "failed state" in str(exc):
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > stuck_after:
                    why = await last_task_failure(handle._client, handle.id)
                    raise RuntimeError(
                        f"the monitoring workflow is stuck: its workflow task keeps failing ({why}); "
                        f"last report before: {last}"
                    ) from exc
            await asyncio.sleep(1)
            continue
        if now.queued == 0 and last is not None and now.tracked == last.tracked:
            stable += 1
            if stable >= 2:
                return now, time.monotonic() - t0
        else:
            stable = 0
        last = now
        await asyncio.sleep(1)
    raise RuntimeError(f"the monitoring workflow did not drain in {timeout}s (last: {last})")


async def missing(handle: WorkflowHandle, fingerprints: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(fingerprints), CHECK_CHUNK):
        out += (await report(handle, fingerprints[i : i + CHECK_CHUNK])).missing
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]
