"""The span store: a bounded window of recent spans in SQLite under the state dir.

Written by the gateway's OTLP receiver, read by the RCA agent in the worker. Compact rows: ids
as raw bytes, service and operation names dictionary-encoded, times in microseconds; one byte
of the trace id (`bucket`) lets a busy window be sampled by whole traces. Retention is by age
(`traces.retention`) and by count (`traces.max_spans`), enforced as spans arrive.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

from argus.models import SourceHealth
from argus.models.traces import SpanRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, name TEXT NOT NULL,
    UNIQUE(kind, name));
CREATE TABLE IF NOT EXISTS spans (
    trace_id BLOB NOT NULL, span_id BLOB NOT NULL, parent_id BLOB, bucket INTEGER NOT NULL,
    service INTEGER NOT NULL, name INTEGER NOT NULL, kind INTEGER NOT NULL,
    start_us INTEGER NOT NULL, dur_us INTEGER NOT NULL, error INTEGER NOT NULL,
    status TEXT, http INTEGER);
CREATE INDEX IF NOT EXISTS spans_start ON spans(start_us);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
"""
SERVICE, OPERATION = 0, 1
PRUNE_EVERY_S = 30.0


class TraceStore:
    name = "traces"

    def __init__(self, path: Path, retention_s: float = 86400.0, max_spans: int = 2_000_000) -> None:
        self.path = path
        self.retention_s = retention_s
        self.max_spans = max_spans
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._names: dict[tuple[int, str], int] = {}
        self._last_prune = 0.0
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _name_id(self, db: sqlite3.Connection, kind: int, name: str) -> int:
        key = (kind, name)
        found = self._names.get(key)
        if found is None:
            db.execute("INSERT OR IGNORE INTO names(kind, name) VALUES (?, ?)", key)
            found = db.execute("SELECT id FROM names WHERE kind=? AND name=?", key).fetchone()[0]
            self._names[key] = found
        return found

    # --- writing ---------------------------------------------------------------------------------
    def add(self, spans: list[SpanRecord], now: float | None = None) -> int:
        if not spans:
            return 0
        now = now or time.time()
        with self._lock, self._connect() as db:
            rows = [
                (
                    bytes.fromhex(s.trace_id),
                    bytes.fromhex(s.span_id),
                    bytes.fromhex(s.parent_id) if s.parent_id else None,
                    int(s.trace_id[-2:], 16),
                    self._name_id(db, SERVICE, s.service),
                    self._name_id(db, OPERATION, s.name),
                    s.kind,
                    int(s.start * 1e6),
                    int(s.duration * 1e6),
                    int(s.error),
                    s.status_message or None,
                    s.http_status,
                )
                for s in spans
            ]
            db.executemany("INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            if now - self._last_prune >= PRUNE_EVERY_S:
                self._prune(db, now)
        return len(rows)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        self._last_prune = now
        db.execute("DELETE FROM spans WHERE start_us < ?", (int((now - self.retention_s) * 1e6),))
        top = db.execute("SELECT max(rowid) FROM spans").fetchone()[0]
        if top is not None and top > self.max_spans:
            db.execute("DELETE FROM spans WHERE rowid <= ?", (top - self.max_spans,))

    def prune(self, now: float | None = None) -> None:
        with self._lock, self._connect() as db:
            self._prune(db, now or time.time())

    # --- reading ---------------------------------------------------------------------------------
    def _names_by_id(self, db: sqlite3.Connection) -> dict[int, str]:
        return {i: n for i, n in db.execute("SELECT id, name FROM names")}

    def _records(self, db: sqlite3.Connection, rows: list[tuple]) -> list[SpanRecord]:
        names = self._names_by_id(db)
        return [
            SpanRecord(
                trace_id=t.hex(),
                span_id=s.hex(),
                parent_id=p.hex() if p else "",
                service=names[svc],
                name=names[op],
                kind=k,
                start=st / 1e6,
                duration=d / 1e6,
                error=bool(e),
                status_message=msg or "",
                http_status=h,
            )
            for t, s, p, svc, op, k, st, d, e, msg, h in rows
        ]

    def spans_between(self, start: datetime, end: datetime, limit: int = 300_000) -> list[SpanRecord]:
        """Spans that began in [start, end]; past `limit`, whole traces are sampled by bucket."""
        lo, hi = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
        cols = "trace_id, span_id, parent_id, service, name, kind, start_us, dur_us, error, status, http"
        with self._connect() as db:
            n = db.execute("SELECT count(*) FROM spans WHERE start_us BETWEEN ? AND ?", (lo, hi)).fetchone()[
                0
            ]
            buckets = 256 if n <= limit else max(1, int(256 * limit / n))
            rows = db.execute(
                f"SELECT {cols} FROM spans WHERE start_us BETWEEN ? AND ? AND bucket < ? ORDER BY start_us",
                (lo, hi, buckets),
            ).fetchall()
            return self._records(db, rows)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        cols = "trace_id, span_id, parent_id, service, name, kind, start_us, dur_us, error, status, http"
        try:
            tid = bytes.fromhex(trace_id)
        except ValueError:
            return []
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {cols} FROM spans WHERE trace_id=? ORDER BY start_us", (tid,)
            ).fetchall()
            return self._records(db, rows)

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM spans").fetchone()[0]

    # --- TraceSource ------------------------------------------------------------------------------
    async def spans(self, start: datetime, end: datetime, limit: int = 300_000) -> list[SpanRecord]:
        return await asyncio.to_thread(self.spans_between, start, end, limit)

    async def health(self) -> SourceHealth:
        try:
            n = await asyncio.to_thread(self.count)
        except sqlite3.Error as exc:
            return SourceHealth(source=self.name, ok=False, detail=str(exc))
        return SourceHealth(source=self.name, ok=True, detail=f"{n} span(s) kept")
