"""A tiny SQLite record of what was already sent or created, per idempotency key.

Channels and ticket systems consult it before an outside effect and write to it right after,
so a Temporal retry, a repeated activity or a restarted worker finds the first result instead of
making a second message or ticket. It lives in a file (one per worker host, under the state dir);
`":memory:"` is for tests.

The window between "the vendor accepted it" and "we wrote it down" cannot be closed from here: a
crash exactly there gives at-least-once. Vendors with their own dedupe (PagerDuty `dedup_key`,
Opsgenie `alias`, ServiceNow `correlation_id`, Jira label) close it on their side.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from argus.models import Delivery


class SentKeys:
    """`(scope, key) -> JSON value`, durable across process restarts, safe across threads."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: sync activities run in a thread pool.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sent_keys ("
                " scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, at REAL NOT NULL,"
                " PRIMARY KEY (scope, key))"
            )

    def get(self, scope: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM sent_keys WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, scope: str, key: str, value: dict[str, Any]) -> None:
        """Record (or overwrite) the result for a key."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sent_keys (scope, key, value, at) VALUES (?, ?, ?, ?)",
                (scope, key, json.dumps(value, default=str), time.time()),
            )

    def forget(self, scope: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sent_keys WHERE scope = ? AND key = ?", (scope, key))

    def count(self, scope: str | None = None) -> int:
        with self._lock:
            if scope is None:
                return self._db.execute("SELECT COUNT(*) FROM sent_keys").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM sent_keys WHERE scope = ?", (scope,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def memory_store() -> SentKeys:
    return SentKeys(":memory:")


def previous_delivery(store: SentKeys, channel: str, key: str) -> Delivery | None:
    """The first delivery made for `key` on `channel`, marked as a duplicate; None if none yet."""
    value = store.get(f"channel:{channel}", key)
    if value is None:
        return None
    return Delivery.model_validate(value).model_copy(update={"duplicate": True})


def remember_delivery(store: SentKeys, delivery: Delivery) -> Delivery:
    store.put(f"channel:{delivery.channel}", delivery.key, delivery.model_dump(mode="json"))
    return delivery
