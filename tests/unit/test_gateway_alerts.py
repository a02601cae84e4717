"""The alert endpoints' size check: an alert too large for a signal is refused (413, named)
before it joins a coalesced batch, whatever the source, so a concurrent good request in the
same batch still succeeds; and the Alertmanager v2 fast path measures nothing for small bodies.

The Temporal client here is a fake that records the batches signalled: what is tested is the
gateway's own decision, before anything reaches Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import random
import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from argus.integrations.normalizers.fast_v2 import RECORD_GROWTH, compact_from_v2
from argus.models import ArgusConfig
from argus.models.agents import FingerprintReport
from argus.models.alert import CompactBatch
from argus.workers.gateway import alerts as alerts_module
from argus.workers.gateway import create_app
from argus.workers.ingest import MAX_ALERT_BYTES
from tests.unit.gateway_kit import gateway_context


class _Handle:
    async def query(self, *args: Any, **kwargs: Any) -> FingerprintReport:
        return FingerprintReport(queued=0, received_seq=0)


class FakeTemporal:
    """Takes every signal-with-start and keeps the batch."""

    def __init__(self) -> None:
        self.batches: list[CompactBatch] = []

    async def start_workflow(self, name: str, arg: Any, **kwargs: Any) -> None:
        self.batches.extend(kwargs["start_signal_args"])

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle()


@contextlib.asynccontextmanager
async def fake_gateway(
    tmp_path: Path, **gateway: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeTemporal]]:
    config = ArgusConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "gateway": {"flush_interval": "1ms", **gateway},
            "temporal": {"payload_store": {"enabled": False}},
        }
    )
    temporal = FakeTemporal()
    ctx = gateway_context(config, temporal, tmp_path)
    ctx.coalescer.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://argus"
        ) as http:
            yield http, temporal
    finally:
        await ctx.coalescer.close()


def _noise(n: int, seed: int) -> str:
    """Text that does not compress (as a long host name or output might not)."""
    rnd = random.Random(seed)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


async def test_an_amplified_alert_is_refused_413_before_it_joins_a_batch_and_a_concurrent_request_succeeds(
    tmp_path: Path,
):
    # A 200 kB Nagios notification (under MAX_ALERT_BYTES as a body) whose host ARGUS keeps three
    # times (label host, label service, the summary): two alerts of 600 kB each.
    nagios = {
        "notification_type": "PROBLEM",
        "host_name": _noise(200_000, 1),
        "service_description": "Disk",
        "state": "CRITICAL",
    }
    assert len(orjson.dumps(nagios)) < MAX_ALERT_BYTES
    good = [{"labels": {"alertname": "Innocent", "service": "checkout"}}]
    # A long flush interval: both requests wait for the same batch.
    async with fake_gateway(tmp_path, flush_interval="300ms") as (http, temporal):
        bad_r, good_r = await asyncio.gather(
            http.post("/api/v1/alerts/nagios", json=nagios), http.post("/api/v2/alerts", json=good)
        )
        assert bad_r.status_code == 413, bad_r.text
        body = bad_r.json()
        assert "nothing was accepted" in body["error"]
        assert len(body["problems"]) == 2
        assert body["problems"][0].startswith("alert 0: ") and "alertname 'Disk'" in body["problems"][0]
        assert good_r.status_code == 200, good_r.text
        [batch] = temporal.batches
        assert [r["l"]["alertname"] for r in batch.records()] == ["Innocent"]

        # Splunk: 17,000 short fields, each kept as `result_<field>`: a body under the limit,
        # an alert over it.
        splunk = {"search_name": "wide", "result": {f"f{i}": _noise(8, i) for i in range(17_000)}}
        assert len(orjson.dumps(splunk)) < MAX_ALERT_BYTES
        r = await http.post("/api/v1/alerts/splunk", json=splunk)
        assert r.status_code == 413 and r.json()["problems"][0].startswith("alert 0: ")
        assert len(temporal.batches) == 1, "nothing of the refused requests was signalled"


async def test_small_v2_bodies_are_not_measured_alert_by_alert_other_sources_always_are(
    tmp_path: Path, monkeypatch
):
    measured: list[int] = []

    def dumps(obj: Any) -> bytes:
        data = orjson.dumps(obj)
        measured.append(len(data))
        return data

    monkeypatch.setattr(alerts_module, "orjson", types.SimpleNamespace(dumps=dumps))
    now = datetime.now(UTC).isoformat()
    v2 = [{"labels": {"alertname": "Disk", "instance": f"db-{i}"}, "startsAt": now} for i in range(50)]
    async with fake_gateway(tmp_path) as (http, _):
        assert (await http.post("/api/v2/alerts", json=v2)).status_code == 200
        assert measured == [], "the v2 hot path measured records of a small body"
        r = await http.post(
            "/api/v1/alerts/nagios",
            json={"notification_type": "PROBLEM", "host_name": "db-1", "state": "DOWN"},
        )
        assert r.status_code == 200 and len(measured) == 2, "Nagios alerts are always measured"


def test_a_v2_record_is_never_more_than_record_growth_larger_than_its_body():
    """The bound that lets the v2 path skip measuring small bodies, on awkward inputs: the
    shortest alerts (no startsAt: the record adds one), escapes JSON spells longer than orjson
    writes them, empty labels (dropped), duplicate keys, and long times."""
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    bodies = [
        b'[{"labels":{"alertname":"X"}}]',
        b'[{"labels":{"alertname":"X"},"endsAt":"9999-12-31T23:59:59.999999999+14:00"}]',
        b'[{"labels":{"alertname":"\\u00e9\\/\\u0001\\t","a":""},"annotations":{"s":"\\"\\\\"}}]',
        b'[{"labels":{"alertname":"X","alertname":"Y"},"generatorURL":"g","startsAt":1,"endsAt":2}]',
    ]
    for body in bodies:
        [rec] = compact_from_v2(orjson.loads(body), now)
        rec["f"] = "0123456789abcdef"  # what `CompactBatch.of` adds later
        assert len(orjson.dumps(rec)) <= len(body) + RECORD_GROWTH, body
