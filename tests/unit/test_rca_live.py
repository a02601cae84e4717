"""Live RCA pieces: log evidence from the sandbox's own JSON log file, the sigma floor on flat
baselines, change onsets, fault signatures, and `argus rca analyze` on malformed case folders."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from argus.activities.rca_agent import _mine_logs
from argus.analysis.rca import rank_root_causes
from argus.analysis.rca_signals import series_stats
from argus.analysis.signatures import SignalEvidence, signature
from argus.integrations.log_file import JsonLinesLogSource
from argus.sandbox.server import build_runtime

REPO = Path(__file__).resolve().parents[2]


async def test_log_evidence_from_the_sandbox_log_file_points_at_the_root(tmp_path):
    log = tmp_path / "sandbox.log"
    rt = build_runtime(seed=3, warmup_s=300, log_file=log, start_time=1_767_225_600.0)
    onset = rt.world.now
    rt.world.deploy("payments", "9.9.9", bad=True)
    rt.advance(120)
    rt.close()
    source = JsonLinesLogSource(log)
    start = datetime.fromtimestamp(onset - 300, UTC)
    end = datetime.fromtimestamp(onset + 120, UTC)
    records = await source.messages(start, end, 50_000)
    assert records and all(
        start.timestamp() - 1 <= datetime.fromisoformat(r["@timestamp"]).timestamp() for r in records
    )
    services = rt.world.services
    evidence = _mine_logs(records, onset, services)
    assert evidence, "a bad deploy makes new error templates"
    by_service: dict[str, float] = {}
    for ev in evidence:
        by_service[ev.service] = by_service.get(ev.service, 0) + ev.count
    assert max(by_service, key=by_service.get) == "payments"
    own = [ev for ev in evidence if ev.service == "payments" and "logged by" not in ev.template]
    assert own and any("unhandled exception" in ev.template for ev in own) and own[0].baseline_count == 0
    relayed = [ev for ev in evidence if "logged by checkout" in ev.template]
    assert relayed and all(ev.service == "payments" for ev in relayed), "callers' complaints name the callee"
    counts = await source.error_counts(start, end, 60)
    assert sum(c for _, c in counts.get("payments", [])) > 0
    assert (await source.health()).ok


async def test_log_file_source_reads_a_window_of_a_large_file(tmp_path):
    log = tmp_path / "big.log"
    with log.open("w") as fh:
        for i in range(60_000):
            ts = datetime.fromtimestamp(1_700_000_000 + i * 0.1, UTC).isoformat().replace("+00:00", "Z")
            fh.write(
                json.dumps({"@timestamp": ts, "service": "a", "level": "INFO", "message": f"m {i}"}) + "\n"
            )
        fh.write('{"@timestamp": "2023-11-14T')  # a torn last line while the writer appends
    src = JsonLinesLogSource(log)
    got = await src.messages(
        datetime.fromtimestamp(1_700_005_000, UTC), datetime.fromtimestamp(1_700_005_010, UTC), 1000
    )
    assert [r["message"] for r in got] == [f"m {i}" for i in range(50_000, 50_101)]


def test_flat_baseline_gives_a_sane_z_score():
    n = 200
    values = np.full(n, 0.0028)
    values[150:] = 0.27
    st = series_stats("payments", "errors", "errors", values, 100, 100, 2.0, 15)
    assert 50 < st.peak_z < 1000, st.peak_z  # was ~891,000 with a 1e-4 relative floor
    noisy = 0.25 + np.random.default_rng(1).normal(0, 0.012, n)
    noisy[150:] += 0.2
    st2 = series_stats("payments", "latency", "latency", noisy, 100, 100, 2.0, 15)
    assert 10 < st2.peak_z < 25, "a series with real noise keeps its own sigma"


def test_change_evidence_uses_the_onset_that_followed_it():
    t = np.arange(0, 1800, 5.0)
    rows = []
    rng = np.random.default_rng(4)
    for svc in ("api", "db"):
        for ts in t:
            lat = 0.1 + rng.normal(0, 0.003)
            err = 0.01 + rng.normal(0, 0.0005)
            cpu = 0.3 + rng.normal(0, 0.01)
            if svc == "db" and ts >= 1200:
                err += 0.2
                lat += 0.05
            if svc == "db" and 800 <= ts < 1000:
                cpu += 0.2  # an unrelated wobble before the deploy
            if svc == "api" and ts >= 1205:
                err += 0.15
                lat += 0.06
            rows += [(ts, svc, "latency", lat), (ts, svc, "errors", err), (ts, svc, "cpu", cpu)]
    res = rank_root_causes(
        rows, anomaly_start=1200.0, topology=[("api", "db")],
        changes=[{"service": "db", "time": 1195.0, "kind": "deploy", "description": "db v2"}],
    )  # fmt: skip
    assert res.top.service == "db"
    change = next(e for e in res.top.evidence if e.kind == "change")
    assert (
        "own anomaly began +" in change.summary
        and "-" not in change.summary.split("began")[1].split("s later")[0]
    )


def test_signature_puts_the_origin_first():
    overload = [  # what the ranker gives a 2.5x surge at an entry point: the load holds most blame
        SignalEvidence("metric", "latency", 1.1),
        SignalEvidence("metric", "errors", 5.9),
        SignalEvidence("metric", "traffic", 19.3),
        SignalEvidence("metric", "cpu", 0.8),
    ]
    assert signature(overload) == "overload+errors", "a cause before the harm it does"
    wobble = [SignalEvidence("metric", "errors", 3.6), SignalEvidence("metric", "latency", 26.4),
              SignalEvidence("metric", "cpu", 0.2), SignalEvidence("change", None, 1.0)]  # fmt: skip
    assert signature(wobble) == "deploy+latency", "a faint cpu wobble is no cause"
    hog = [SignalEvidence("metric", "latency", 3.0), SignalEvidence("metric", "cpu", 1.0)]
    assert signature(hog) == "cpu+latency"
    effect = [SignalEvidence("metric", "cpu", 3.0, origin=False), SignalEvidence("metric", "errors", 1.0)]
    assert signature(effect) == "errors+cpu", "an anomaly another service explains comes last"
    weak_change = [SignalEvidence("change", None, 0.05), SignalEvidence("metric", "errors", 1.0)]
    assert signature(weak_change) == "errors", "a change nothing followed is no signature"
    assert (
        signature([SignalEvidence("change", None, 0.9), SignalEvidence("metric", "errors", 1.0)])
        == "deploy+errors"
    )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from argus.workers.cli import main; main()", "rca", "analyze", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def case_dir(tmp: Path, metrics: str | None, case: str | None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    if metrics is not None:
        (tmp / "metrics.csv").write_text(metrics)
    if case is not None:
        (tmp / "case.json").write_text(case)
    return tmp


GOOD_ROWS = "timestamp,service,metric,value\n" + "".join(
    f"{1000 + 10 * i},{s},latency,{0.1 + (0.5 if s == 'db' and i >= 60 else 0) + 0.001 * (i % 3)}\n"
    for i in range(90)
    for s in ("api", "db")
)


@pytest.mark.parametrize(
    ("metrics", "case", "file", "problem"),
    [
        (None, '{"anomaly_start": 1600}', "metrics.csv", "file not found"),
        (GOOD_ROWS, None, "case.json", "file not found"),
        (GOOD_ROWS, '{"anomaly_start": "soon"}', "case.json", "must be a number of unix seconds"),
        (GOOD_ROWS, '{"anomaly_start": 1600, ', "case.json", "invalid JSON at line 1"),
        (
            "timestamp,service,value\n1,a,2\n",
            '{"anomaly_start": 1600}',
            "metrics.csv",
            "lacks column(s) metric",
        ),
        (
            "timestamp,service,metric,value\n1,a,m,fast\n",
            '{"anomaly_start": 1}',
            "metrics.csv",
            "line 2: value 'fast'",
        ),
        (GOOD_ROWS, '{"anomaly_start": 99999}', "case.json", "outside the metrics time range"),
        (
            GOOD_ROWS,
            '{"anomaly_start": 1020}',
            "metrics.csv",
            "need at least 12 samples before anomaly_start",
        ),
    ],
)
def test_cli_refuses_malformed_case_folders(tmp_path, metrics, case, file, problem):
    d = case_dir(tmp_path / "case", metrics, case)
    res = run_cli(str(d), "--json")
    assert res.returncode != 0
    err = " ".join(res.stderr.split())
    assert file in err and problem in err, res.stderr
    assert res.stdout == ""


def test_cli_analyzes_a_good_case(tmp_path):
    d = case_dir(tmp_path / "case", GOOD_ROWS, '{"anomaly_start": 1600, "topology": [["api", "db"]]}')
    res = run_cli(str(d), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ranking"][0]["service"] == "db" and out["ranking"][0]["evidence"]


async def test_rca_waits_for_metrics_after_onset_when_the_scraper_had_a_gap(tmp_path):
    """A worker restart leaves the embedded scraper's store ending before the onset. Range queries
    carry the last (calm) value over the gap, so RCA must wait for real post-onset samples."""
    import asyncio
    from datetime import timedelta

    from temporalio.testing import ActivityEnvironment

    from argus.activities.rca_agent import RcaAgent
    from argus.integrations.archive import IncidentArchive
    from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore
    from argus.models import Alert
    from argus.models.agents import RcaRequest
    from argus.models.config import RcaConfig

    services = ["frontend", "checkout", "payments"]
    rng = np.random.default_rng(5)
    store = EmbeddedMetricsStore(tmp_path / "metrics.db", max_gap=2.5)  # 1 s scrapes, as wiring sets
    target = "http://sandbox/metrics"

    def scrape(ts: float, broken: bool) -> None:
        lines = []
        for svc in services:
            cpu = (0.99 if broken and svc == "payments" else 0.33) + rng.normal(0, 0.01)
            mem = 2.6e8 + rng.normal(0, 4e6)
            lines += [f'cpu{{service="{svc}"}} {cpu:.4f}', f'mem{{service="{svc}"}} {mem:.0f}']
        store.ingest_text("\n".join(lines) + "\n", ts)
        store.record_scrape(target, True, "ok", ts)

    now = datetime.now(UTC).timestamp()
    onset = now - 2.0
    for ts in np.arange(onset - 300, onset - 1, 1.0):  # calm history, then the scraper stopped
        scrape(float(ts), broken=False)

    async def scraper_back() -> None:  # the restarted worker scrapes again, 2 s later
        await asyncio.sleep(2.0)
        for k in range(8):
            scrape(onset + 1 + k, broken=True)

    agent = RcaAgent(
        EmbeddedMetricsSource("embedded", store, [target]),
        RcaConfig(metrics={"cpu": "cpu", "memory": "mem"}, step=timedelta(seconds=1)),
        [("frontend", "checkout"), ("checkout", "payments")],
        IncidentArchive(f"sqlite:///{tmp_path / 'archive.db'}"),
    )
    start = datetime.fromtimestamp(onset, UTC)
    req = RcaRequest(
        incident_id="incident-gap",
        service="payments",
        alerts=[Alert(labels={"alertname": "HighCpu", "service": "payments"}, starts_at=start)],
        window_start=start - timedelta(minutes=5),
        window_end=datetime.now(UTC),  # the workflow's "now": still inside the gap
        anomaly_start=start,
        settle_seconds=5.0,
    )
    back = asyncio.create_task(scraper_back())
    report = await ActivityEnvironment().run(agent.analyze, req)
    await back
    assert report.hypotheses[0].service == "payments", [h.service for h in report.hypotheses]


def test_a_rise_in_traffic_explained_by_a_callee_stays_the_services_own():
    """Load descends the call graph: frontend's own surge (it calls checkout) is not the effect of
    checkout's, however the ranker linked them; checkout's surge is frontend's doing. So an
    overloaded entry point reads "overload", and the Recommender scales it out, not restarts it."""
    from argus.activities.rca_agent import _origin
    from argus.analysis.rca import Evidence

    callers = {"checkout": {"frontend"}, "payments": {"checkout"}}  # frontend calls checkout
    surge = Evidence(kind="metric", summary="", metric="requests", metric_kind="traffic", zscore=32.4,
                     explained_by="checkout/requests", weight=23.6)  # fmt: skip
    assert _origin(surge, "frontend", callers), "a callee cannot send its caller more requests"
    down = Evidence(kind="metric", summary="", metric="requests", metric_kind="traffic", zscore=30.0,
                    explained_by="frontend/requests", weight=20.0)  # fmt: skip
    assert not _origin(down, "checkout", callers), "the caller's surge explains the callee's"
    drop = Evidence(kind="metric", summary="", metric="requests", metric_kind="traffic", zscore=-30.0,
                    explained_by="checkout/errors", weight=20.0)  # fmt: skip
    assert not _origin(drop, "frontend", callers), "a fall in traffic is no surge"
    slow = Evidence(kind="metric", summary="", metric="latency", metric_kind="latency", zscore=50.0,
                    explained_by="checkout/latency", weight=1.0)  # fmt: skip
    assert not _origin(slow, "frontend", callers), "latency climbs the call graph: an effect"
    assert not _origin(surge, "frontend", {}), "no topology: as before"
