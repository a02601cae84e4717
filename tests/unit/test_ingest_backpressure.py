"""Backpressure: a scope whose workflow falls behind gets new alerts refused (503, Retry-After)
until it catches up; what was acknowledged before stays durable."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from argus.models.agents import FingerprintReport
from argus.models.alert import CompactBatch
from argus.workers.ingest import IngestCoalescer, ScopeBehind
from tests.unit.gateway_kit import gateway_app


class FakeScope:
    """A scope's workflow as the gateway sees it: batches Temporal acknowledged reach it only
    when `receive` is called (until then Temporal holds the signals), and it routes them only
    when `route` is called."""

    def __init__(self) -> None:
        self.in_temporal: list[CompactBatch] = []
        self.queue: list[CompactBatch] = []
        self.received_seq: dict[str, int] = {}
        self.answers = True
        self.handover_soon = self.handing_over = False

    def receive(self) -> None:
        for b in self.in_temporal:
            self.queue.append(b)
            self.received_seq[b.sender] = max(self.received_seq.get(b.sender, 0), b.seq)
        self.in_temporal.clear()

    def route(self) -> None:
        self.queue.clear()

    def report(self, sender: str) -> FingerprintReport:
        if not self.answers:
            raise TimeoutError("query timed out")  # busy, or no worker
        return FingerprintReport(
            tracked=0,
            queued=sum(b.count for b in self.queue),
            received_seq=self.received_seq.get(sender, 0),
            handover_soon=self.handover_soon,
            handing_over=self.handing_over,
        )


def coalescer(scopes: dict[str, FakeScope], **options: float | None) -> IngestCoalescer:
    async def send(scope: str, batch: CompactBatch) -> None:
        scopes[scope].in_temporal.append(batch)

    async def probe(scope: str, sender: str) -> FingerprintReport:
        return scopes[scope].report(sender)

    return IngestCoalescer(
        send, probe=probe, **{"max_backlog": 100, "flush_interval": 0.001, "probe_every": 0.0, **options}
    )


async def eventually(check) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached")


async def test_alerts_temporal_holds_for_a_busy_scope_count_towards_its_backlog():
    """The workflow's own queue is empty, but Temporal holds signals it has not delivered yet:
    the batches' running count (`seq`) tells the gateway how many of its alerts wait there."""
    busy, calm = FakeScope(), FakeScope()
    c = coalescer({"busy": busy, "calm": calm})
    c.start()
    try:
        for i in range(3):
            await c.submit("busy", [{"f": f"a{i}-{j}"} for j in range(40)])
        await c.submit("calm", [{"f": "b"}])
        assert [b.seq for b in busy.in_temporal] == [40, 80, 120]
        assert {b.sender for b in busy.in_temporal} == {c.sender}
        await eventually(lambda: c.backlog("busy") == 120)
        with pytest.raises(ScopeBehind) as refused:
            await c.submit("busy", [{"f": "c"}])
        assert (refused.value.backlog, refused.value.limit) == (120, 100)
        assert "scope 'busy' has 120 alerts not yet routed (limit 100)" in str(refused.value)
        await c.submit("calm", [{"f": "d"}])  # other scopes are not held back

        busy.receive()  # delivered, not routed: still behind
        with pytest.raises(ScopeBehind):
            await c.submit("busy", [{"f": "c"}])
        await eventually(lambda: c.backlog("busy") == 120)
        busy.route()  # caught up; each refused retry asks again
        for _ in range(200):
            try:
                await c.submit("busy", [{"f": "e"}])
                break
            except ScopeBehind:
                await asyncio.sleep(0.005)
        else:
            pytest.fail("still refused after the scope caught up")
        assert c.backlog("busy") <= 1  # "e", unless the probe after it already saw it
    finally:
        await c.close()
    assert [r["f"] for b in calm.in_temporal for r in b.records()] == ["b", "d"]


async def test_a_scope_that_does_not_answer_the_probe_is_taken_to_fall_behind():
    """A workflow too busy to answer (or a worker that is down) must not read as keeping up:
    every alert acknowledged beyond its last answer counts."""
    scope = FakeScope()
    c = coalescer({"s": scope})
    c.start()
    try:
        await c.submit("s", [{"f": "a"}])
        await eventually(lambda: c.backlog("s") == 1)
        scope.receive()
        scope.route()
        await c.submit("s", [{"f": "a2"}])
        scope.receive()
        scope.route()
        await eventually(lambda: c.backlog("s") == 0)
        scope.answers = False  # from now on, no answer
        for i in range(4):
            await c.submit("s", [{"f": f"b{i}-{j}"} for j in range(30)])
        assert c.backlog("s") == 120
        with pytest.raises(ScopeBehind):
            await c.submit("s", [{"f": "c"}])
        scope.answers = True  # it answers again, and had received and routed everything
        scope.receive()
        scope.route()
        await eventually(lambda: c.backlog("s") == 0)
        await c.submit("s", [{"f": "d"}])
    finally:
        await c.close()


async def test_batches_for_a_scope_handing_over_wait_for_its_next_run():
    """A scope that packed its state for continue-as-new gets no batch until it answers again
    (a batch during the hand-over makes the server refuse it, and the SDK replay the run);
    the requests are answered once the held batch is durable, other scopes are not held."""
    busy, calm = FakeScope(), FakeScope()
    c = coalescer({"busy": busy, "calm": calm}, probe_every=10.0, handover_probe_every=0.01)
    c.start()
    try:
        busy.handover_soon = True
        await c.submit("busy", [{"f": "a"}])  # its probe learns a hand-over is near
        await eventually(lambda: "busy" in c._soon)
        busy.handing_over = True
        await asyncio.sleep(0.02)
        await c.submit("busy", [{"f": "b"}])  # the flush after 10 ms asks again, not after 10 s
        await eventually(lambda: c.held("busy"))
        waiting = asyncio.create_task(c.submit("busy", [{"f": "c"}]))
        await c.submit("calm", [{"f": "d"}])
        await asyncio.sleep(0.1)
        assert not waiting.done()
        assert [r["f"] for b in busy.in_temporal for r in b.records()] == ["a", "b"]
        busy.handover_soon = busy.handing_over = False  # the next run answers
        await asyncio.wait_for(waiting, 5)
        assert [r["f"] for b in busy.in_temporal for r in b.records()] == ["a", "b", "c"]
        assert not c.held("busy") and "busy" not in c._soon
    finally:
        await c.close()
    assert [r["f"] for b in calm.in_temporal for r in b.records()] == ["d"]


async def test_a_hold_ends_on_its_own_when_the_scope_never_says_it_is_done():
    scope = FakeScope()
    c = coalescer({"s": scope}, handover_probe_every=0.01, max_hold=0.3)
    c.start()
    try:
        scope.handing_over = True
        await c.submit("s", [{"f": "a"}])
        await eventually(lambda: c.held("s"))
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(c.submit("s", [{"f": "b"}]), 5)  # still handing over, but 0.3 s passed
        assert 0.1 < asyncio.get_running_loop().time() - t0 < 2
    finally:
        await c.close()


async def test_a_batch_that_cannot_be_built_fails_its_requests_and_the_next_batch_goes():
    scope = FakeScope()
    c = coalescer({"s": scope})
    c.start()
    try:
        # Fingerprints are computed as the batch is built; a label that is not encodable text
        # (no JSON body can carry one, but nothing else may hang on it) fails that batch only.
        with pytest.raises(UnicodeEncodeError):
            await asyncio.wait_for(c.submit("s", [{"l": {"alertname": "\ud800"}}]), 5)
        await asyncio.wait_for(c.submit("s", [{"l": {"alertname": "Fine"}}]), 5)
        [batch] = scope.in_temporal
        assert [r["l"] for r in batch.records()] == [{"alertname": "Fine"}]
    finally:
        await c.close()


async def test_a_batch_too_large_for_one_signal_goes_as_several_and_the_requests_wait_for_all():
    """Temporal refuses a payload over 2 MiB: a coalesced batch whose data would pass the
    limit is sent in parts, in order, each with its own id and the running count up to it."""
    import random

    rnd = random.Random(3)
    scope = FakeScope()
    c = coalescer({"s": scope}, flush_interval=0.05, max_signal_bytes=20_000, max_backlog=None)
    c.start()
    try:
        requests = [
            [
                {"l": {"alertname": "Big", "i": f"{r}-{i}"}, "a": {"note": rnd.randbytes(400).hex()}}
                for i in range(25)
            ]
            for r in range(4)
        ]
        await asyncio.wait_for(asyncio.gather(*(c.submit("s", recs) for recs in requests)), 10)
        parts = scope.in_temporal
        assert len(parts) >= 4 and all(len(b.data) <= 20_000 for b in parts)
        sent = [r for recs in requests for r in recs]
        assert [r["l"] for b in parts for r in b.records()] == [r["l"] for r in sent], "each once, in order"
        assert [b.seq for b in parts] == [sum(b.count for b in parts[: i + 1]) for i in range(len(parts))]
        assert len({b.batch_id for b in parts}) == len(parts)
        # One alert that does not fit a signal even alone fails its batch with a clear error.
        with pytest.raises(ValueError, match="does not fit one signal"):
            await asyncio.wait_for(
                c.submit("s", [{"l": {"a": "b"}, "a": {"note": rnd.randbytes(20_000).hex()}}]), 5
            )
    finally:
        await c.close()


@pytest.fixture
async def gateway(ts_env, tmp_path: Path):
    async with gateway_app(ts_env, tmp_path, max_scope_backlog=1000) as (http, ctx):
        yield http, ctx


def alerts(n: int, run: str) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {"labels": {"alertname": "DiskFull", "instance": f"{run}-{i}"}, "startsAt": now} for i in range(n)
    ]


async def test_gateway_answers_503_with_retry_after_while_the_scope_is_behind(gateway):
    http, ctx = gateway
    scope = f"bp-{uuid.uuid4().hex[:8]}"
    r = await http.post(f"/api/v2/alerts?scope={scope}", json=alerts(5, "a"))
    assert r.status_code == 200
    # The real probe asks the scope's workflow, which has received this gateway's 5 alerts
    # (its running count travels with each batch) and routed them by now.
    sender = ctx.coalescer.sender
    for _ in range(100):
        report = await ctx.scope_backlog(scope, sender)
        if (report.queued, report.received_seq) == (0, 5):
            break
        await asyncio.sleep(0.05)
    assert (report.queued, report.received_seq, report.handing_over) == (0, 5, False)
    other = await ctx.scope_backlog(scope, "another-gateway")
    assert (other.queued, other.received_seq) == (0, 0)
    await ctx.coalescer._probe(scope)
    assert ctx.coalescer.backlog(scope) == 0

    # The workflow reports a backlog over gateway.max_scope_backlog (1000).
    async def far_behind(_: str, __: str) -> FingerprintReport:
        return FingerprintReport(tracked=0, queued=5000, received_seq=10**9)

    ctx.coalescer.probe = far_behind
    ctx.coalescer.probe_every = 0.0
    await http.post(f"/api/v2/alerts?scope={scope}", json=alerts(1, "b"))  # flushes, then probes
    for _ in range(100):
        if ctx.coalescer.backlog(scope) == 5000:
            break
        await asyncio.sleep(0.01)
    r = await http.post(f"/api/v2/alerts?scope={scope}", json=alerts(3, "c"))
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    body = r.json()
    assert "5000 alerts not yet routed (limit 1000)" in body["error"]
    assert "nothing was accepted" in body["error"] and "gateway.max_scope_backlog" in body["error"]
