"""A local journal of remediation actions by idempotency key.

For targets that cannot be asked "did you already do this?", the Executor writes the key
before acting and the result after. A key found started but never finished means the
previous attempt's outcome is unknown, and the Executor will not blindly act again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path


class ActionJournal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS actions (key TEXT PRIMARY KEY, status TEXT, result TEXT, at REAL)"
        )
        self._conn.commit()

    def get(self, key: str) -> tuple[str, dict] | None:
        with self._lock:
            row = self._conn.execute("SELECT status, result FROM actions WHERE key=?", (key,)).fetchone()
        return (row[0], json.loads(row[1] or "{}")) if row else None

    def start(self, key: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO actions VALUES (?,?,?,?)", (key, "started", "{}", time.time())
            )
            self._conn.commit()

    def finish(self, key: str, status: str, result: dict) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO actions VALUES (?,?,?,?)",
                (key, status, json.dumps(result), time.time()),
            )
            self._conn.commit()
