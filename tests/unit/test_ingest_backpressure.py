"""Backpressure: a scope whose workflow falls behind gets new alerts refused (503, Retry-After)
until it catches up; what was acknowledged before stays durable."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from argus.models.alert import CompactBatch
from argus.workers.ingest import IngestCoalescer, ScopeBehind
from tests.unit.gateway_kit import gateway_app


async def test_coalescer_refuses_a_scope_over_its_backlog_until_a_probe_says_it_caught_up():
    sent: list[tuple[str, CompactBatch]] = []
    backlog = {"busy": 500, "calm": 0}
    probed: list[str] = []

    async def send(scope: str, batch: CompactBatch) -> None:
        sent.append((scope, batch))

    async def probe(scope: str) -> int:
        probed.append(scope)
        return backlog[scope]

    c = IngestCoalescer(send, flush_interval=0.001, probe=probe, max_backlog=100, probe_every=0.0)
    c.start()
    try:
        await c.submit("busy", [{"f": "a"}])  # accepted; the flush triggers a probe
        await c.submit("calm", [{"f": "b"}])
        for _ in range(100):
            if c.backlog("busy") == 500:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ScopeBehind) as refused:
            await c.submit("busy", [{"f": "c"}])
        assert (refused.value.backlog, refused.value.limit) == (500, 100)
        assert "scope 'busy' has 500 alerts not yet routed (limit 100)" in str(refused.value)
        await c.submit("calm", [{"f": "d"}])  # other scopes are not held back
        backlog["busy"] = 3  # the workflow caught up; each refused retry asks again
        for _ in range(100):
            try:
                await c.submit("busy", [{"f": "e"}])
                break
            except ScopeBehind:
                await asyncio.sleep(0.01)
        assert 3 <= c.backlog("busy") <= 4  # its answer, and "e" if acknowledged after the probe went out
    finally:
        await c.close()
    assert [(s, b.records()) for s, b in sent] == [
        ("busy", [{"f": "a"}]),
        ("calm", [{"f": "b"}]),
        ("calm", [{"f": "d"}]),
        ("busy", [{"f": "e"}]),
    ]


async def test_a_scope_that_does_not_answer_the_probe_is_taken_to_fall_behind():
    """A workflow too busy to answer (or a worker that is down) must not read as keeping up: the
    backlog counts every alert acknowledged since the last answer."""
    answer: list[int | None] = [0]

    async def send(scope: str, batch: CompactBatch) -> None:
        pass

    async def probe(scope: str) -> int:
        if answer[0] is None:
            raise TimeoutError("query timed out")
        return answer[0]

    c = IngestCoalescer(send, flush_interval=0.001, probe=probe, max_backlog=100, probe_every=0.0)
    c.start()
    try:
        await c.submit("s", [{"f": "a"}])
        for _ in range(100):
            if "s" in c._acked_at_probe:
                break
            await asyncio.sleep(0.01)
        assert c.backlog("s") == 0, "the scope answered: nothing behind"
        answer[0] = None  # from now on, no answer
        for i in range(4):
            await c.submit("s", [{"f": f"b{i}-{j}"} for j in range(30)])
        assert c.backlog("s") == 120
        with pytest.raises(ScopeBehind) as refused:
            await c.submit("s", [{"f": "c"}])
        assert refused.value.backlog == 120
        answer[0] = 7  # it answers again: the figure is its answer plus what came since
        for _ in range(100):
            try:
                await c.submit("s", [{"f": "d"}])
                break
            except ScopeBehind:
                await asyncio.sleep(0.01)
        else:
            pytest.fail("still refused after the scope answered")
        assert 7 <= c.backlog("s") <= 8
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
    # The real probe asks the scope's workflow, which has routed everything by now.
    for _ in range(100):
        if await ctx.scope_backlog(scope) == 0:
            break
        await asyncio.sleep(0.05)
    assert await ctx.scope_backlog(scope) == 0

    # The workflow reports a backlog over gateway.max_scope_backlog (1000).
    async def far_behind(_: str) -> int:
        return 5000

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
