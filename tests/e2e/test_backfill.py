"""`argus backfill` end to end: a real Prometheus (Debian package) on a TSDB backfilled with planted
history (`promtool tsdb create-blocks-from openmetrics`), a real Temporal dev server, a worker
process that is SIGKILLed mid-backfill and restarted, the CLI with its progress bar, and a rerun
that creates nothing twice. Also: `--docs-only` builds the archive and documents from history,
and bad ranges are refused by the CLI with a clear message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import yaml

from argus.models import ArgusConfig
from argus.models.agents import BackfillProgress
from argus.workers.client import connect
from argus.workers.devserver import DevServer, free_port

from .stackkit import REPO, eventually, outbox

pytestmark = pytest.mark.e2e
ARGUS = str(Path(sys.executable).parent / "argus")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
BASE = NOW - timedelta(hours=4)  # the planted history: BASE .. BASE+3h, all in the past
# Error-ratio episodes (service, start, end) in minutes after BASE. The second crosses the 20-minute
# window edge at 120 min: stitching must keep it one incident.
EPISODES = [("payments", 30, 50), ("payments", 100, 130), ("checkout", 141, 156)]
RANGE = (BASE, BASE + timedelta(hours=3))


def openmetrics() -> str:
    lines = ["# TYPE sandbox_error_ratio gauge"]
    for service in ("payments", "checkout"):
        for s in range(0, 3 * 3600 + 1, 15):
            minute = s / 60
            bad = any(svc == service and a <= minute < b for svc, a, b in EPISODES)
            value = 0.3 if bad else 0.01
            lines.append(f'sandbox_error_ratio{{service="{service}"}} {value} {BASE.timestamp() + s:.0f}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        pytest.fail("prometheus and promtool are needed (Debian package `prometheus`)")
    root = tmp_path_factory.mktemp("prom")
    (root / "history.om").write_text(openmetrics())
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(root / "history.om"),
            str(root / "data"),
        ],
        check=True,
        capture_output=True,
    )
    (root / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def temporal(tmp_path_factory) -> Iterator[str]:
    dev = DevServer(tmp_path_factory.mktemp("temporal"), "argus", port=free_port(), ui_port=None)
    dev.start()
    try:
        yield dev.address
    finally:
        dev.stop()


def config(tmp: Path, prom: str, address: str, **extra) -> tuple[ArgusConfig, Path]:
    cfg = {
        "state_dir": str(tmp / "state"),
        "temporal": {"address": address, "task_queue": f"bf-{tmp.name[-12:]}", "ui_port": None},
        "sources": [{"name": "prom", "type": "prometheus", "url": prom, "timeout": "5s"}],
        "rules": [
            {
                "name": "HighErrorRate",
                "expr": "sandbox_error_ratio > 0.05",
                "for": "2m",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "{{ $labels.service }} errors"},
            },
        ],
        "services": [
            {"name": "checkout", "depends_on": ["payments"], "owners": ["team-payments"]},
            {"name": "payments", "owners": ["team-payments"]},
        ],
        "rca": {"source": "prom", "step": "30s", "metrics": {"errors": "sandbox_error_ratio"}},
        "policy": {
            "rca_lookback": "10m",
            "routing": {
                "route": {
                    "receiver": "oncall",
                    "group_by": ["alertname", "service"],
                    "group_wait": "30s",
                    "group_interval": "1m",
                    "repeat_interval": "4h",
                }
            },
            "approval": {"approvers": ["alice"], "timeout": "1d"},
            "verification": {"period": "1s", "interval": "1s", "max_wait": "1m", "watch": "0s"},
            "phases": {"monitoring": True, "incident": True, "docgen": False},
        },
        "remediation": {"playbooks_dir": str(REPO / "playbooks")},
        "notify": {"channels": ["outbox"], "echo": False},
        "sandbox": {"enabled": False},
        **extra,
    }
    path = tmp / "argus.yaml"
    tmp.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return ArgusConfig.model_validate(cfg), path


def cli(*args: str, cfg: Path, address: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ARGUS, *args, "--config", str(cfg), "--temporal", address],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def span() -> list[str]:
    return ["--from", RANGE[0].isoformat(), "--to", RANGE[1].isoformat()]


def start_worker(cfg: Path, address: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [ARGUS, "worker", "--config", str(cfg), "--temporal", address],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest_asyncio.fixture
async def client(temporal):
    return await connect(temporal, "argus")


async def incident_ids(client) -> list[str]:
    return sorted(
        {
            w.id
            async for w in client.list_workflows('WorkflowType="IncidentWorkflow" AND IncidentBackfill=true')
        }
    )


async def test_backfill_survives_a_worker_crash_and_a_rerun_creates_nothing_twice(
    prometheus, temporal, client, tmp_path
):
    cfg, path = config(tmp_path, prometheus, temporal)
    log = tmp_path / "worker.log"
    worker = start_worker(path, temporal, log)
    try:
        started = cli(
            "backfill",
            *span(),
            "--window",
            "20m",
            "--step",
            "10s",
            "--concurrency",
            "1",
            "--no-wait",
            cfg=path,
            address=temporal,
        )
        assert started.returncode == 0, started.stderr
        wf_id = re.search(r"backfill (\S+) started", started.stderr).group(1)
        handle = client.get_workflow_handle(wf_id, result_type=BackfillProgress)

        async def some_windows_done():
            p = await handle.query("status", result_type=BackfillProgress)
            return p if 1 <= p.windows_done else None

        before = await eventually(some_windows_done, timeout=120, interval=0.05, what="first window")
        assert before.windows_done < before.windows_total == 9, before
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-backfill
        worker.wait()
        worker = start_worker(path, temporal, log)
        result = await asyncio.wait_for(handle.result(), timeout=240)
        assert result.done and result.windows_done == 9 and not result.errors, result
        assert (result.incidents_found, result.incidents_started, result.incidents_existing) == (3, 3, 0)
        history = await handle.fetch_history()
        scheduled = [
            e
            for e in history.events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "evaluate_window"
        ]
        assert len(scheduled) == 9  # resumed: no window was scheduled twice

        ids = await eventually(lambda: _exactly(client, 3), timeout=30, what="3 backfilled incidents")
        states = [await asyncio.wait_for(client.get_workflow_handle(wf).result(), timeout=120) for wf in ids]
        rerun = await asyncio.to_thread(
            cli, "backfill", *span(), "--window", "30m", "--step", "10s", cfg=path, address=temporal
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    starts = sorted(min(datetime.fromisoformat(a["starts_at"]) for a in s["alerts"]) for s in states)
    planted = sorted(BASE + timedelta(minutes=a) for _, a, _ in EPISODES)
    assert all(abs((s - p).total_seconds()) <= 20 for s, p in zip(starts, planted, strict=True)), (
        starts,
        planted,
    )
    assert all(s["backfill"] for s in states)
    assert rerun.returncode == 0, rerun.stderr
    assert "incidents found 3, started 0, already existing 3" in rerun.stdout, rerun.stdout + rerun.stderr
    assert await incident_ids(client) == ids  # nothing created twice, even with other window sizes
    kinds = {r["kind"] for r in outbox(cfg_state(cfg))}
    assert not kinds & {"opened", "approval_request", "reminder", "escalation"}, kinds  # nobody paged


async def _exactly(client, n: int):
    ids = await incident_ids(client)
    return ids if len(ids) == n else None


def cfg_state(cfg: ArgusConfig) -> Path:
    return Path(cfg.state_dir)


async def test_docs_only_builds_archive_and_documents_once(prometheus, temporal, client, tmp_path):
    from argus.integrations.archive import IncidentArchive
    from argus.integrations.git_docs import GitDocsRepo
    from argus.workers.wiring import archive_url, build_runtime
    from argus.workers.worker import make_worker

    cfg, path = config(tmp_path, prometheus, temporal)
    rt = build_runtime(cfg)
    worker = make_worker(client, rt)
    async with worker:
        first = await asyncio.to_thread(
            cli, "backfill", *span(), "--window", "1h", "--docs-only", cfg=path, address=temporal
        )
        assert first.returncode == 0, first.stderr
        assert "incidents found 3, archived 3, already archived 0, post-mortems started 3" in first.stdout, (
            first.stdout
        )

        docs = GitDocsRepo(Path(cfg.state_dir) / "docs-repo")

        async def three_postmortems():
            return len(docs.documents("postmortem")) == 3 or None

        await eventually(three_postmortems, timeout=120, what="3 post-mortems")
        again = await asyncio.to_thread(
            cli, "backfill", *span(), "--window", "1h", "--docs-only", cfg=path, address=temporal
        )
    assert again.returncode == 0, again.stderr
    assert "archived 0, already archived 3, post-mortems started 0" in again.stdout, again.stdout
    archive = IncidentArchive(archive_url(cfg, Path(cfg.state_dir)))
    rows = archive.all_states(True)
    assert len(rows) == 3 and all(s.backfill and s.rca and s.rca.top for s in rows)
    assert sorted(s.rca.top.service for s in rows) == ["checkout", "payments", "payments"]
    assert len(docs.documents("postmortem")) == 3
    pngs = list((docs.path / "postmortems").glob("*-errors.png"))
    assert len(pngs) == 3  # charts drawn from the real Prometheus history
    _, front, body = docs.documents("postmortem")[0]
    assert front["backfill"] is True and "backfilled from history" in body
    assert not {r["kind"] for r in outbox(Path(cfg.state_dir))} & {"opened", "approval_request"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "-1h", "--to", "-2h"], "reversed or empty range"),
        (["--from", "-1h", "--to", (NOW + timedelta(days=1)).isoformat()], "is in the future"),
        (
            ["--from", (NOW + timedelta(days=1)).isoformat(), "--to", (NOW + timedelta(days=2)).isoformat()],
            "--from",
        ),
        (["--from", "yesterday"], "is not a time"),
        (["--from", "-2h", "--source", "graphite"], "no source of that name or type"),
    ],
)
def test_cli_refuses_bad_ranges_with_a_clear_message(tmp_path, args, message):
    _, path = config(tmp_path, "http://127.0.0.1:9", "127.0.0.1:9")
    out = cli("backfill", *args, cfg=path, address="127.0.0.1:9", timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in " ".join(out.stderr.split()), out.stderr
