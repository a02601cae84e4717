"""Temporal external storage (a claim check) on ARGUS's SQL database.

Temporal refuses any payload over 2 MiB. A monitoring scope hands its whole state to its next
run through continue-as-new, and a scope tracking thousands of alerts with long labels and
annotations outgrows that. With this store, a payload of a monitoring workflow's own run over
`THRESHOLD` is written here (after the payload codec, so it is encrypted when encryption is
on), and history holds a small reference that the SDK resolves before the workflow sees it
(`temporalio.converter.ExternalStorage`, experimental in the SDK).

Payloads are content-addressed (SHA-256 of the stored bytes), so a retried store writes
nothing twice and a read checks what it got. Only the monitoring workflows' own payloads come
here, because only for those is it known when one is no longer needed: a run's input was
stored by the run before it, and a run stores while it runs. So for each workflow id the store
keeps everything stored by the two runs that stored last (the current run, and the one whose
hand-over started it) plus everything younger than `keep_for`, and drops the rest. A closed
run older than that can no longer be replayed from its history alone.

Every worker of a deployment must reach the same store: the embedded default is a SQLite file
in the state directory (one machine); several machines need a shared database URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, delete, func, select
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverSelectContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from .sql import make_engine

THRESHOLD = 1024 * 1024  # payloads at least this large leave history (Temporal's limit: 2 MiB)
STORED_WORKFLOW_TYPES = frozenset({"MonitoringWorkflow"})
KEEP_RUNS = 2  # per workflow id: what the last two runs that stored wrote

_meta = MetaData()
_payloads = Table(
    "temporal_payloads",
    _meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # store order, for pruning
    Column("key", String(64), nullable=False, unique=True),
    Column("workflow_id", String(255), nullable=False, index=True),
    Column("run_id", String(64), nullable=False),
    Column("stored_at", Float, nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


class PayloadStoreError(RuntimeError):
    """A reference that cannot be resolved; the message says which payload and why."""


class SqlPayloadDriver(StorageDriver):
    def __init__(self, url: str, keep_for: timedelta = timedelta(hours=1), name: str = "argus-sql") -> None:
        self.keep_for = keep_for
        self._name = name
        self.engine = make_engine(url)
        _meta.create_all(self.engine)

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return "argus.sql"

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        target = context.target
        if not isinstance(target, StorageDriverWorkflowInfo) or not target.id or not target.run_id:
            # The selector lets only a workflow run's own payloads through; anything else could
            # not be pruned safely.
            raise PayloadStoreError(f"payload store {self._name}: no workflow run to store for ({target})")
        blobs = [p.SerializeToString() for p in payloads]
        keys = await asyncio.to_thread(self._store, target.id, target.run_id, blobs)
        return [StorageDriverClaim(claim_data={"key": k}) for k in keys]

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        keys = [c.claim_data.get("key", "") for c in claims]
        out = []
        for blob in await asyncio.to_thread(self._load, keys):
            p = Payload()
            p.ParseFromString(blob)
            out.append(p)
        return out

    def _store(self, workflow_id: str, run_id: str, blobs: list[bytes]) -> list[str]:
        keys = [hashlib.sha256(b).hexdigest() for b in blobs]
        now = time.time()
        with self.engine.begin() as db:
            for key, blob in zip(keys, blobs, strict=True):
                # Stored again (a retried task): it becomes the newest, as the store that counts.
                db.execute(delete(_payloads).where(_payloads.c.key == key))
                db.execute(
                    _payloads.insert().values(
                        key=key,
                        workflow_id=workflow_id,
                        run_id=run_id,
                        stored_at=now,
                        size=len(blob),
                        data=blob,
                    )
                )
            self._prune(db, workflow_id, now)
        return keys

    def _prune(self, db, workflow_id: str, now: float) -> None:  # type: ignore[no-untyped-def]
        last = func.max(_payloads.c.seq)
        recent_runs = [
            r.run_id
            for r in db.execute(
                select(_payloads.c.run_id, last.label("last"))
                .where(_payloads.c.workflow_id == workflow_id)
                .group_by(_payloads.c.run_id)
                .order_by(last.desc())
                .limit(KEEP_RUNS)
            )
        ]
        db.execute(
            delete(_payloads).where(
                _payloads.c.workflow_id == workflow_id,
                _payloads.c.run_id.not_in(recent_runs),
                _payloads.c.stored_at < now - self.keep_for.total_seconds(),
            )
        )

    def _load(self, keys: list[str]) -> list[bytes]:
        with self.engine.connect() as db:
            found = {
                r.key: r.data
                for r in db.execute(
                    select(_payloads.c.key, _payloads.c.data).where(_payloads.c.key.in_(keys))
                )
            }
        out = []
        for key in keys:
            blob = found.get(key)
            if blob is None:
                raise PayloadStoreError(
                    f"payload store {self._name}: payload {key or '(no key)'} is not in the store; it was "
                    f"pruned (kept: the last {KEEP_RUNS} runs that stored, and {self.keep_for}) or this "
                    "process uses another store than the worker that wrote it (temporal.payload_store.url)"
                )
            if hashlib.sha256(blob).hexdigest() != key:
                raise PayloadStoreError(f"payload store {self._name}: payload {key} does not match its hash")
            out.append(blob)
        return out

    def stored(self, workflow_id: str | None = None) -> list[tuple[str, str, int]]:
        """(key, run id, size) of what is kept, oldest first: for inspecting the store."""
        q = select(_payloads.c.key, _payloads.c.run_id, _payloads.c.size).order_by(_payloads.c.seq)
        if workflow_id is not None:
            q = q.where(_payloads.c.workflow_id == workflow_id)
        with self.engine.connect() as db:
            return [(r.key, r.run_id, r.size) for r in db.execute(q)]


def external_storage(driver: SqlPayloadDriver, threshold: int = THRESHOLD) -> ExternalStorage:
    """What the data converter gets: the monitoring workflows' own large payloads go to `driver`."""

    def select_driver(context: StorageDriverSelectContext, payload: Payload) -> StorageDriver | None:
        t = context.target
        if isinstance(t, StorageDriverWorkflowInfo) and t.type in STORED_WORKFLOW_TYPES and t.run_id:
            return driver
        return None

    return ExternalStorage(drivers=[driver], driver_selector=select_driver, payload_size_threshold=threshold)
