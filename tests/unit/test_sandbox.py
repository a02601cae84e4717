"""Behaviour of the sandbox: the simulated system ARGUS is demonstrated and tested against."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from argus.sandbox.exposition import render
from argus.sandbox.server import SandboxServer, start_sandbox
from argus.sandbox.topology import Topology
from argus.sandbox.world import ActionConflict, ActionRefused, UnknownService, World

GAUGES = {
    "sandbox_up",
    "sandbox_request_rate",
    "sandbox_error_ratio",
    "sandbox_latency_p50_seconds",
    "sandbox_latency_p99_seconds",
    "sandbox_cpu_utilization",
    "sandbox_memory_bytes",
    "sandbox_replicas",
    "sandbox_version_info",
}
MIB = 2**20


def warm(seed: int = 1, seconds: float = 60) -> World:
    world = World(seed=seed)
    world.advance(seconds)
    return world


def mean_of(world: World, seconds: float, service: str, field: str) -> float:
    """Average of one stat over the next `seconds`: single ticks are noisy, as real scrapes are."""
    values = [getattr(s.services[service], field) for s in world.history(seconds)]
    return sum(values) / len(values)


# ---- the simulation ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_world_and_another_seed_does_not():
    def run(seed: int) -> list[tuple[float, str, str, float]]:
        world = warm(seed, 30)
        world.inject("payments-db", "latency", 200)
        world.restart("checkout", key="k")
        return [row for snap in world.history(30) for row in snap.rows()]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_topology_is_configurable_and_exposed_as_pairs():
    topo = Topology.from_pairs([("web", "api"), ("api", "db")])
    world = World(topo, seed=1)
    assert world.edges == [("web", "api"), ("api", "db")]
    assert world.topology.spec("db").kind == "db"
    assert world.latest.services["db"].request_rate > 0  # load flows down from the entry
    with pytest.raises(ValueError, match="cycle"):
        Topology.from_pairs([("a", "b"), ("b", "a")])
    assert World().edges[0] == ("frontend", "checkout")


def test_latency_at_a_leaf_shows_more_in_its_callers_than_at_itself():
    world = warm()
    before = {s: mean_of(world, 20, s, "latency_p99_s") for s in ("payments-db", "payments", "checkout")}
    world.inject("payments-db", "latency", 300)
    world.advance(5)
    after = {s: mean_of(world, 20, s, "latency_p99_s") for s in ("payments-db", "payments", "checkout")}
    rise = {s: after[s] - before[s] for s in before}
    assert rise["payments-db"] > 0.25
    # two queries per payment: the caller's p99 grows more in absolute terms than the root's
    assert rise["payments"] > rise["payments-db"]
    assert rise["checkout"] > rise["payments-db"]
    # ...while the root's relative change is the largest
    assert after["payments-db"] / before["payments-db"] > after["checkout"] / before["checkout"]
    assert world.latest.services["payments-db"].cpu_utilization < 0.6  # slowness is not CPU


def test_errors_at_a_database_propagate_to_its_callers():
    world = warm()
    world.inject("payments-db", "errors", 0.3)
    world.advance(3)
    s = world.latest.services
    assert 0.28 < s["payments-db"].error_ratio < 0.33
    assert s["payments"].error_ratio > s["payments-db"].error_ratio  # two calls per request
    assert s["checkout"].error_ratio > 0.3
    assert s["catalog"].error_ratio < 0.01  # not on the path


def test_memory_leak_grows_until_an_oom_kill_spikes_errors():
    world = warm()
    base = world.latest.services["payments"].memory_bytes
    world.inject("payments", "memory_leak", 20)
    kills = []
    for _ in range(40):
        snap = world.step()
        kills += [e for e in snap.events if e.kind == "oom_killed"]
        if kills:
            break
    assert kills and kills[0].service == "payments"
    stats = world.latest.services["payments"]
    assert stats.error_ratio > 0.4
    assert stats.memory_bytes < base + 50 * MIB  # the fresh processes start small
    assert world.totals("payments").restarts == 2
    world.advance(10)
    assert world.latest.services["payments"].error_ratio < 0.05  # back up, leaking again


def test_restart_clears_a_memory_leak_but_not_a_bad_deploy():
    world = warm()
    world.inject("payments", "memory_leak", 3)
    world.advance(40)
    leaking = world.latest.services["payments"].memory_bytes
    world.restart("payments", key="r1")
    world.advance(30)
    assert world.latest.services["payments"].memory_bytes < leaking - 80 * MIB
    assert not world.faults(active_only=True)
    assert world.faults()[0].ended_by == "restart"

    fault = world.inject("catalog", "bad_deploy")
    world.advance(10)
    assert world.latest.services["catalog"].error_ratio > 0.2
    record, _ = world.restart("catalog", key="r2")
    assert "no process-level fault" in record.detail
    world.advance(10)
    assert world.latest.services["catalog"].error_ratio > 0.2
    assert world.fault(fault.id).active


def test_restart_does_not_fix_latency_at_a_dependency():
    world = warm()
    world.inject("payments-db", "latency", 400)
    world.advance(10)
    world.restart("payments", key="r")
    world.advance(15)
    assert world.latest.services["payments"].latency_p50_s > 0.7


def test_rollback_fixes_a_bad_deploy_and_both_are_change_events():
    world = warm()
    fault = world.inject("catalog", "bad_deploy")
    assert world.version("catalog") == "5.1.4"
    world.advance(10)
    assert world.latest.services["catalog"].error_ratio > 0.2
    assert world.latest.services["frontend"].error_ratio > 0.1

    record, _ = world.rollback("catalog", key="rb")
    assert "5.1.4 to 5.1.3" in record.detail
    world.advance(10)
    assert world.version("catalog") == "5.1.3"
    assert world.latest.services["catalog"].error_ratio < 0.01
    assert world.fault(fault.id).ended_by == "rollback"
    assert [(c.kind, c.version) for c in world.changes] == [("deploy", "5.1.4"), ("rollback", "5.1.3")]
    with pytest.raises(ActionRefused, match="no previous version"):
        world.rollback("catalog", key="rb-again")


def test_scale_relieves_overload():
    world = warm()
    normal_p99 = mean_of(world, 10, "frontend", "latency_p99_s")
    world.inject("frontend", "overload", 2.0)
    world.advance(15)
    hot = world.latest.services["frontend"]
    assert hot.cpu_utilization > 0.95
    assert hot.latency_p99_s > 5 * normal_p99
    assert hot.error_ratio > 0.1  # a full queue sheds

    world.scale("frontend", key="s", replicas=6)
    world.advance(10)
    cool = world.latest.services["frontend"]
    assert cool.cpu_utilization < 0.85
    assert cool.error_ratio < 0.02
    # what remains is the doubled load on the services behind the frontend
    assert mean_of(world, 10, "frontend", "latency_p99_s") < min(hot.latency_p99_s / 3, 3 * normal_p99)


@pytest.mark.parametrize("hour", [3, 9, 15, 21])
def test_a_scaled_frontend_absorbs_a_doubled_load_at_any_hour(hour):
    # Traffic follows the time of day (peak at 15:00 UTC), and the sandbox runs on the wall clock,
    # so the e2e scale-out scenario meets whatever hour CI runs at: the services behind the frontend
    # must take its doubled load at the daily peak, noise included, once the frontend is scaled.
    start = 86400.0 * 20_000 + 3600.0 * hour
    worst: dict[str, float] = {}
    for seed in range(3):
        world = World(seed=seed, start_time=start)
        world.advance(120)
        world.inject("frontend", "overload", 2.0)
        world.advance(30)
        assert world.latest.services["frontend"].saturation > 1, "the surge saturates the frontend"
        world.scale("frontend", key="s", replicas=6)
        world.advance(60)
        for snap in world.history(180):
            for name, stats in snap.services.items():
                worst[name] = max(worst.get(name, 0.0), stats.latency_p99_s)
    assert max(worst.values()) < 1.0, worst


def test_scale_relieves_a_cpu_hog_and_restart_ends_it():
    world = warm()
    normal_p99 = mean_of(world, 10, "payments", "latency_p99_s")
    world.inject("payments", "cpu", 0.8)
    world.advance(15)
    hog = world.latest.services["payments"]
    assert hog.cpu_utilization > 0.98 and hog.saturation > 1
    assert hog.latency_p99_s > 5 * normal_p99
    world.scale("payments", key="s", replicas=6)  # the hog runs on every replica: scaling dilutes it
    world.advance(10)
    assert world.latest.services["payments"].saturation < 0.8
    assert mean_of(world, 10, "payments", "latency_p99_s") < 2 * normal_p99
    world.restart("payments", key="r")
    world.advance(10)
    assert world.latest.services["payments"].cpu_utilization < 0.3


def test_faults_expire_after_their_duration_and_clear_fault_ends_them():
    world = warm()
    world.inject("inventory", "errors", 0.5, duration_s=10)
    world.advance(5)
    assert world.latest.services["inventory"].error_ratio > 0.4
    world.advance(6)
    assert world.latest.services["inventory"].error_ratio < 0.01
    assert world.faults()[0].ended_by == "expired"

    world.inject("inventory", "latency", 500)
    record, _ = world.clear_fault("inventory", key="c")
    assert record.detail.startswith("cleared latency")
    assert not world.faults(active_only=True)
    with pytest.raises(ValueError, match="magnitude"):
        world.inject("inventory", "errors", 1.5)


def test_action_keys_are_idempotent():
    world = warm()
    first, dup = world.restart("payments", key="wf-1/step-2")
    assert not dup
    world.advance(5)
    again, dup = world.restart("payments", key="wf-1/step-2")
    assert dup and again is first
    assert world.totals("payments").restarts == 2  # one rolling restart of two replicas
    assert world.action("wf-1/step-2") is first
    assert world.action("never") is None
    with pytest.raises(ActionConflict):
        world.rollback("payments", key="wf-1/step-2")
    with pytest.raises(UnknownService, match="known: frontend"):
        world.restart("nope", key="x")


def test_metrics_parse_as_prometheus_text():
    world = warm(seconds=20)
    families = {f.name: f for f in text_string_to_metric_families(render(world).decode())}
    assert GAUGES <= set(families)
    assert families["sandbox_requests"].type == "counter"
    assert families["sandbox_errors"].type == "counter"
    assert families["sandbox_request_duration_seconds"].type == "histogram"
    up = {s.labels["service"]: s.value for s in families["sandbox_up"].samples}
    assert up == dict.fromkeys(world.services, 1.0)
    versions = {s.labels["service"]: s.labels["version"] for s in families["sandbox_version_info"].samples}
    assert versions["payments"] == "1.12.0"

    buckets = [
        s
        for s in families["sandbox_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["service"] == "frontend"
    ]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    total = next(
        s.value
        for s in families["sandbox_requests"].samples
        if s.name == "sandbox_requests_total" and s.labels["service"] == "frontend"
    )
    assert total == counts[-1] > 1000


# ---- over HTTP --------------------------------------------------------------------------------


class _ChangeSink(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def changes_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChangeSink)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/changes"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, changes_url: str) -> Iterator[SandboxServer]:
    log_file = tmp_path_factory.mktemp("sandbox") / "logs" / "sandbox.jsonl"
    with start_sandbox(seed=3, speed=50, warmup_s=30, log_file=log_file, changes_url=changes_url) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=5) as c:
        yield c


def test_server_serves_metrics_topology_state_and_health(client: httpx.Client, sandbox: SandboxServer):
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert GAUGES <= {f.name for f in text_string_to_metric_families(metrics.text)}
    assert client.get("/topology").json()["edges"][0] == ["frontend", "checkout"]
    state = client.get("/state").json()
    assert state["services"]["payments"]["version"] == "1.12.0"
    tick = state["tick"]
    time.sleep(0.2)  # the clock runs at 50 ticks a second
    assert client.get("/state").json()["tick"] > tick


def test_server_faults_can_be_injected_listed_and_deleted(client: httpx.Client):
    created = client.post("/faults", json={"service": "inventory", "type": "latency", "magnitude": 50})
    assert created.status_code == 201
    fault_id = created.json()["id"]
    assert any(f["id"] == fault_id and f["active"] for f in client.get("/faults").json()["faults"])
    ended = client.delete(f"/faults/{fault_id}")
    assert ended.json()["active"] is False and ended.json()["ended_by"] == "cleared"
    assert client.delete("/faults/f-9999").status_code == 404


def test_server_actions_are_idempotent_and_readable_by_key(client: httpx.Client):
    key = "incident-42/scale-checkout"
    first = client.post("/actions/scale", json={"service": "checkout", "key": key, "replicas": 3})
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "done" and body["action"] == "scale" and body["duplicate"] is False
    assert set(body) >= {"key", "action", "service", "status", "detail", "at"}
    again = client.post("/actions/scale", json={"service": "checkout", "key": key, "replicas": 3}).json()
    assert again == {**body, "duplicate": True}
    recorded = client.get(f"/actions/{key}")
    assert recorded.status_code == 200 and recorded.json()["detail"] == body["detail"]
    other = client.post("/actions/scale", json={"service": "checkout", "key": key, "replicas": 4})
    assert other.status_code == 409 and key in other.json()["detail"]


def test_server_errors_say_what_is_wrong(client: httpx.Client):
    missing = client.get("/actions/never-happened")
    assert missing.status_code == 404 and "never-happened" in missing.json()["detail"]

    unknown = client.post("/actions/restart", json={"service": "nope", "key": "k1"})
    assert unknown.status_code == 404 and "unknown service 'nope'" in unknown.json()["detail"]

    no_replicas = client.post("/actions/scale", json={"service": "checkout", "key": "k2"})
    assert no_replicas.status_code == 422
    assert no_replicas.json()["errors"] == [{"field": "replicas", "message": "Field required"}]

    bad_type = client.post("/faults", json={"service": "checkout", "type": "meteor"})
    assert bad_type.status_code == 422 and bad_type.json()["errors"][0]["field"] == "type"

    bad_magnitude = client.post("/faults", json={"service": "checkout", "type": "errors", "magnitude": 3})
    assert bad_magnitude.status_code == 422 and "magnitude" in bad_magnitude.json()["detail"]

    typo = client.post("/actions/restart", json={"service": "checkout", "key": "k3", "replica": 2})
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "replica"

    not_json = client.post("/actions/restart", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["errors"][0]["field"] == "body"

    no_history = client.post("/actions/rollback", json={"service": "inventory-db", "key": "k4"})
    assert no_history.status_code == 409 and "no previous version" in no_history.json()["detail"]


def test_server_deploy_records_and_forwards_a_change(client: httpx.Client, sandbox: SandboxServer):
    response = client.post("/deploy", json={"service": "payments", "version": "1.13.0", "bad": True})
    assert response.status_code == 201
    body = response.json()
    assert body["previous_version"] == "1.12.0" and body["fault_id"]
    deadline = time.monotonic() + 5
    while not _ChangeSink.received and time.monotonic() < deadline:
        time.sleep(0.02)
    change = _ChangeSink.received[-1]
    assert set(change) == {"service", "at", "kind", "version", "description"}
    assert change["service"] == "payments" and change["kind"] == "deploy" and change["version"] == "1.13.0"
    assert change["at"].endswith("Z")

    rolled = client.post("/actions/rollback", json={"service": "payments", "key": "rb-payments"}).json()
    assert "1.13.0 to 1.12.0" in rolled["detail"]
    assert client.get("/state").json()["services"]["payments"]["version"] == "1.12.0"


def test_server_logs_are_json_lines_that_name_the_fault(client: httpx.Client, sandbox: SandboxServer):
    client.post("/faults", json={"service": "inventory", "type": "memory_leak", "magnitude": 200})
    log_file = sandbox.runtime.log_path
    assert log_file is not None
    deadline = time.monotonic() + 5
    text = ""
    while "OutOfMemoryError" not in text[: text.rfind("\n") + 1] and time.monotonic() < deadline:
        time.sleep(0.1)
        text = log_file.read_text()
    # Read while the sandbox appends: the last line may be half written (a CI run caught one).
    complete = text[: text.rfind("\n") + 1]
    records = [json.loads(line) for line in complete.splitlines()]
    assert all(set(r) == {"@timestamp", "service", "level", "message"} for r in records)
    assert {r["level"] for r in records} >= {"INFO", "WARN", "ERROR"}
    oom = [r for r in records if "OutOfMemoryError" in r["message"]]
    assert oom and oom[0]["service"] == "inventory"
    assert any(r["message"].startswith("connection refused to inventory") for r in records) or any(
        "call to inventory failed" in r["message"] for r in records
    )


def test_in_process_server_starts_on_a_free_port_and_stops_cleanly():
    server = start_sandbox(seed=1, warmup_s=5, run_clock=False)
    assert server.port > 0
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/healthz").status_code == 200
        tick = c.get("/state").json()["tick"]
        server.runtime.advance(10)  # a frozen clock moves only when told
        assert c.get("/state").json()["tick"] == tick + 10
    server.stop()
    assert not server.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_command_line_starts_the_server(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_file = tmp_path / "cli.log"
    cmd = [sys.executable, "-m", "argus.sandbox", "--port", str(port), "--log-file", str(log_file)]
    proc = subprocess.Popen([*cmd, "--seed", "2", "--warmup", "10"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not come up"
                time.sleep(0.05)
        assert health.json()["status"] == "ok"
        assert log_file.read_text().count("\n") > 50  # the warm-up wrote a baseline
    finally:
        proc.terminate()
        proc.wait(timeout=10)
