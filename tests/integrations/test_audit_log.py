"""The audit log off the request path (argus/workers/auth/audit_log.py): entries queue in memory
and are written in batches by a background task, in order, one transaction per flush; shutdown
writes what is queued; a full queue makes callers wait rather than lose entries; a failed write
is logged with its entries. Through the gateway: every state-changing request is in the log,
in order, once the gateway shuts down, and none of it was written in the request path."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import httpx

from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.models import ArgusConfig
from argus.models.security import AuditEntry, Role
from argus.workers.auth import AuthService, AuthStore
from argus.workers.auth.audit_log import AuditLog
from argus.workers.gateway import GatewayContext, create_app
from argus.workers.settings import Secrets
from tests.integrations.dev_temporal import dev_temporal  # noqa: F401
from tests.workflows import kit


class Recorder:
    """The real store's batch write, with each call's size noted (one call = one transaction)."""

    def __init__(self, store: AuthStore, delay: float = 0.0, fail_first: int = 0) -> None:
        self.store = store
        self.delay = delay
        self.fail_first = fail_first
        self.batches: list[int] = []

    def __call__(self, entries: list[AuditEntry]) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("disk full")
        time.sleep(self.delay)
        self.store.audit_many(entries)
        self.batches.append(len(entries))


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC), actor="tester", action="POST /x", target=f"t{i}", outcome="ok:200"
    )


def targets(store: AuthStore) -> list[str]:
    return [e.target for e in reversed(store.audit_entries(limit=10_000))]  # oldest first


async def until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def store_at(tmp_path) -> AuthStore:
    return AuthStore(f"sqlite:///{tmp_path / 'auth.db'}")


async def test_entries_are_written_after_the_interval_in_one_transaction_in_order(tmp_path):
    store = store_at(tmp_path)
    rec = Recorder(store)
    log = AuditLog(rec, interval=0.2, max_batch=1000)
    for i in range(50):
        await log.put(entry(i))
    assert store.audit_count() == 0 and log.pending == 50  # nothing written in the caller's path
    await until(lambda: store.audit_count() == 50)  # by the writer alone: no flush, no close
    assert rec.batches == [50]
    assert targets(store) == [f"t{i}" for i in range(50)]
    ids = [e.id for e in store.audit_entries(limit=100)]
    assert ids == sorted(ids, reverse=True)
    await log.close()


async def test_a_full_batch_is_written_without_waiting_out_the_interval(tmp_path):
    store = store_at(tmp_path)
    rec = Recorder(store)
    log = AuditLog(rec, interval=60.0, max_batch=10)
    for i in range(25):
        await log.put(entry(i))
    await until(lambda: store.audit_count() >= 20, timeout=15.0)  # two full batches, long before 60 s
    assert all(n >= 10 for n in rec.batches)
    await log.close()  # the remaining 5
    assert targets(store) == [f"t{i}" for i in range(25)]


async def test_shutdown_writes_what_is_queued_and_later_entries_still_count(tmp_path):
    store = store_at(tmp_path)
    log = AuditLog(Recorder(store), interval=60.0, max_batch=100)
    for i in range(7):
        await log.put(entry(i))
    assert store.audit_count() == 0
    await log.close()
    assert targets(store) == [f"t{i}" for i in range(7)]
    await log.put(entry(7))  # after shutdown (a late request): written at once, not dropped
    assert targets(store)[-1] == "t7"


async def test_a_full_queue_makes_callers_wait_instead_of_losing_entries(tmp_path):
    store = store_at(tmp_path)
    rec = Recorder(store, delay=0.05)  # a slow disk
    log = AuditLog(rec, interval=0.01, max_batch=4, capacity=4)
    peak = 0
    for i in range(40):
        await log.put(entry(i))
        peak = max(peak, log.pending)
    await log.close()
    assert peak <= 4 and max(rec.batches) <= 4
    assert targets(store) == [f"t{i}" for i in range(40)]


async def test_a_failed_write_is_logged_with_its_entries_and_the_writer_goes_on(tmp_path, caplog):
    store = store_at(tmp_path)
    log = AuditLog(Recorder(store, fail_first=1), interval=0.05, max_batch=100)
    with caplog.at_level(logging.ERROR, logger="argus.auth"):
        await log.put(entry(0))
        await until(lambda: any("audit record lost" in r.getMessage() for r in caplog.records))
    assert any('"target":"t0"' in r.getMessage() for r in caplog.records)
    await log.put(entry(1))
    await until(lambda: store.audit_count() == 1)
    assert targets(store) == ["t1"]
    await log.close()


def test_bad_settings_are_refused():
    for kw in ({"interval": 0}, {"max_batch": 0}, {"max_batch": 10, "capacity": 5}):
        try:
            AuditLog(lambda _: None, **kw)
        except ValueError as exc:
            assert "audit log" in str(exc)
        else:
            raise AssertionError(f"accepted {kw}")


async def test_gateway_requests_are_recorded_in_order_off_the_request_path(dev_temporal, tmp_path):  # noqa: F811
    base = kit.test_config(tmp_path).model_dump(mode="json", by_alias=True)
    base["auth"] = {"enabled": True}
    config = ArgusConfig.model_validate(base)
    store = store_at(tmp_path)
    svc = AuthService(config, store, Secrets({}))
    svc.audit_log = AuditLog(store.audit_many, interval=60.0)  # only the shutdown writes here
    archive = IncidentArchive(f"sqlite:///{tmp_path / 'a.db'}")
    ctx = GatewayContext(config, dev_temporal.client, archive, LinkSigner(b"k" * 32),
                         NonceStore(tmp_path / "n.db"), extras={"auth": svc})  # fmt: skip
    admin = store.create_token("root", Role.ADMIN).token
    viewer = store.create_token("vera", Role.VIEWER).token
    app = create_app(ctx)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
            expected = []
            for i in range(12):
                who, token = ("root", admin) if i % 3 else ("vera", viewer)
                r = await http.post(
                    "/api/v1/tokens",
                    json={"user": f"u{i}", "role": "viewer"},
                    headers={"authorization": f"Bearer {token}"},
                )
                assert r.status_code == (201 if who == "root" else 403)
                expected.append((who, "ok:201" if who == "root" else "refused:403"))
            r = await http.get("/api/v1/tokens", headers={"authorization": f"Bearer {admin}"})
            assert r.status_code == 200  # a read is not a change: not recorded
        assert store.audit_count() == 0 and svc.audit_log.pending == 12  # nothing in the request path
    entries = list(reversed(store.audit_entries(limit=100)))
    assert [(e.actor, e.outcome) for e in entries] == expected
    assert all(e.action == "POST /api/v1/tokens" for e in entries)
    assert next(e.detail for e in entries if e.outcome == "ok:201") == "for u1 as viewer"
