"""The payload store: Temporal's external storage for payloads too large for history, on
ARGUS's SQL database (see `argus.integrations.payload_store`)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import update
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriverRetrieveContext,
    StorageDriverSelectContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from argus.integrations.payload_store import (
    THRESHOLD,
    PayloadStoreError,
    SqlPayloadDriver,
    _payloads,
    external_storage,
)
from argus.integrations.sql import sqlite_url
from argus.workers.codec import data_converter


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def run(workflow_id: str, run_id: str | None, type_: str = "MonitoringWorkflow") -> StorageDriverStoreContext:
    return StorageDriverStoreContext(
        target=StorageDriverWorkflowInfo(namespace="argus", id=workflow_id, run_id=run_id, type=type_)
    )


@pytest.fixture
def driver(tmp_path) -> SqlPayloadDriver:  # type: ignore[no-untyped-def]
    return SqlPayloadDriver(sqlite_url(tmp_path / "payloads.db"), keep_for=timedelta(0))


async def test_stored_payloads_come_back_as_they_went_and_are_content_addressed(driver):
    a, b = payload('"state one"'), payload('"state two"')
    claims = await driver.store(run("monitoring-s", "r1"), [a, b])
    assert [c.claim_data["key"] for c in claims] == [
        hashlib.sha256(p.SerializeToString()).hexdigest() for p in (a, b)
    ]
    assert await driver.retrieve(StorageDriverRetrieveContext(), list(reversed(claims))) == [b, a]
    # A retried store (the same bytes) writes nothing twice.
    await driver.store(run("monitoring-s", "r1"), [a])
    assert len(driver.stored("monitoring-s")) == 2


async def test_what_the_last_two_runs_stored_is_kept_and_older_goes(driver):
    """A run's input was stored by the run before it; a run stores while it runs (a refused
    continue-as-new stores, and its run may replay). So the last two runs' payloads stay."""
    await driver.store(run("monitoring-s", "r1"), [payload('"r1 a"'), payload('"r1 b"')])
    await driver.store(run("monitoring-s", "r2"), [payload('"r2"')])
    await driver.store(run("monitoring-other", "x1"), [payload('"x1"')])
    assert {r for _, r, _ in driver.stored("monitoring-s")} == {"r1", "r2"}
    await driver.store(run("monitoring-s", "r3"), [payload('"r3"')])
    assert [r for _, r, _ in driver.stored("monitoring-s")] == ["r2", "r3"]
    # A run that stores again after a newer run stored (a retried task of r2) counts as recent.
    await driver.store(run("monitoring-s", "r2"), [payload('"r2 again"')])
    await driver.store(run("monitoring-s", "r3"), [payload('"r3 again"')])
    assert {r for _, r, _ in driver.stored("monitoring-s")} == {"r2", "r3"}
    assert [r for _, r, _ in driver.stored("monitoring-other")] == ["x1"], "per workflow id"


async def test_nothing_younger_than_keep_for_is_pruned(tmp_path):
    driver = SqlPayloadDriver(sqlite_url(tmp_path / "p.db"), keep_for=timedelta(hours=1))
    for r in ("r1", "r2", "r3", "r4"):
        await driver.store(run("monitoring-s", r), [payload(f'"{r}"')])
    assert len(driver.stored("monitoring-s")) == 4


async def test_a_missing_or_altered_payload_is_a_clear_error(driver):
    [claim] = await driver.store(run("monitoring-s", "r1"), [payload('"kept"')])
    gone = type(claim)(claim_data={"key": "0" * 64})
    with pytest.raises(
        PayloadStoreError, match=r"payload 0{64} is not in the store.*pruned.*temporal.payload_store.url"
    ):
        await driver.retrieve(StorageDriverRetrieveContext(), [gone])
    with driver.engine.begin() as db:
        db.execute(update(_payloads).values(data=b"tampered"))
    with pytest.raises(PayloadStoreError, match="does not match its hash"):
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])


async def test_only_a_monitoring_run_s_own_payloads_are_stored(driver):
    with pytest.raises(PayloadStoreError, match="no workflow run"):
        await driver.store(run("monitoring-s", None), [payload('"a signal from a client"')])
    storage = external_storage(driver)
    big = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * THRESHOLD)

    def picks(ctx: StorageDriverStoreContext, p: Payload) -> bool:
        return storage._select_driver(StorageDriverSelectContext(target=ctx.target), p) is driver

    assert picks(run("monitoring-s", "r1"), big)
    assert not picks(run("monitoring-s", "r1"), payload('"small"')), "small payloads stay in history"
    assert not picks(run("incident-x", "r1", "IncidentWorkflow"), big), "others fail at 2 MiB as before"
    assert not picks(run("monitoring-s", None), big), "a signal or start from a client"


async def test_the_data_converter_round_trips_through_the_store_with_encryption(driver):
    """Stored after the codec: what the store holds is encrypted."""
    from argus.workers.codec import EncryptionCodec

    codec = EncryptionCodec("k1", {"k1": b"k" * 32})
    dc = data_converter(codec, external_storage(driver))._with_store_context(run("monitoring-s", "r1"))
    value = "secret " * 200_000
    [ref] = await dc.encode([value])
    assert ref.ByteSize() < 1000 and ref.external_payloads[0].size_bytes > THRESHOLD
    assert await dc.decode([ref], [str]) == [value]
    [(_, _, size)] = driver.stored("monitoring-s")
    with driver.engine.connect() as db:
        blob = db.execute(_payloads.select()).one().data
    assert b"secret" not in blob and size == len(blob)
