"""The embedded metrics store: scrapes Prometheus-format endpoints into SQLite and answers queries.

It stands in for Prometheus when `argus up` runs with no accounts and nothing installed.
Samples are kept for `retention`; queries use the language in `promql_lite`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from argus.models import Sample, Series, SourceHealth

from .base import IntegrationError, PermanentError
from .promql_lite import ExpressionError, LiteExpr, parse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL,
                                   UNIQUE(name, labels));
CREATE TABLE IF NOT EXISTS samples (series INTEGER NOT NULL, ts REAL NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_series_ts ON samples(series, ts);
CREATE TABLE IF NOT EXISTS scrapes (target TEXT PRIMARY KEY, ok INTEGER, detail TEXT, ts REAL,
                                    failures INTEGER DEFAULT 0, last_success REAL);
"""


class EmbeddedMetricsStore:
    """Thread-safe; one writer (the scraper) and many readers (activities) share the file."""

    def __init__(self, path: Path, retention_seconds: float = 6 * 3600, max_gap: float = 15.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention = retention_seconds
        # A range query carries a sample forward at most this long (a few scrape intervals), so a
        # scraper outage shows as missing data, not as the last value held flat.
        self.max_gap = max_gap
        self._local = threading.local()
        self._series_ids: dict[tuple[str, str], int] = {}
        self._write_lock = threading.Lock()
        with self._conn() as c:
            c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    # --- writing ---------------------------------------------------------------------------------
    def _series_id(self, c: sqlite3.Connection, name: str, labels: dict[str, str]) -> int:
        key = (name, json.dumps(labels, sort_keys=True))
        sid = self._series_ids.get(key)
        if sid is None:
            c.execute("INSERT OR IGNORE INTO series(name, labels) VALUES (?, ?)", key)
            sid = c.execute("SELECT id FROM series WHERE name=? AND labels=?", key).fetchone()[0]
            self._series_ids[key] = sid
        return sid

    def ingest_text(self, text: str, ts: float, extra_labels: dict[str, str] | None = None) -> int:
        """Store every sample of a Prometheus text exposition at time `ts`."""
        rows = []
        with self._write_lock:
            c = self._conn()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    labels = {**(extra_labels or {}), **s.labels}
                    rows.append((self._series_id(c, s.name, labels), s.timestamp or ts, float(s.value)))
            c.executemany("INSERT INTO samples(series, ts, value) VALUES (?, ?, ?)", rows)
            c.commit()
        return len(rows)

    def record_scrape(self, target: str, ok: bool, detail: str, ts: float) -> None:
        with self._write_lock:
            c = self._conn()
            prev = c.execute(
                "SELECT failures, last_success FROM scrapes WHERE target=?", (target,)
            ).fetchone()
            failures = 0 if ok else ((prev[0] if prev else 0) + 1)
            last_success = ts if ok else (prev[1] if prev else None)
            c.execute(
                "INSERT OR REPLACE INTO scrapes(target, ok, detail, ts, failures, last_success) "
                "VALUES (?,?,?,?,?,?)",
                (target, int(ok), detail, ts, failures, last_success),
            )
            c.commit()

    def prune(self, now: float) -> None:
        with self._write_lock:
            c = self._conn()
            c.execute("DELETE FROM samples WHERE ts < ?", (now - self.retention,))
            c.commit()

    # --- reading ---------------------------------------------------------------------------------
    def _matching_series(self, expr: LiteExpr) -> list[tuple[int, dict[str, str]]]:
        c = self._conn()
        out = []
        for sid, labels_json in c.execute("SELECT id, labels FROM series WHERE name=?", (expr.metric,)):
            labels = json.loads(labels_json)
            if all(m.matches(labels) for m in expr.matchers):
                out.append((sid, labels))
        return out

    def _points(self, sid: int, start: float, end: float) -> list[tuple[float, float]]:
        c = self._conn()
        return list(
            c.execute(
                "SELECT ts, value FROM samples WHERE series=? AND ts>=? AND ts<=? ORDER BY ts",
                (sid, start, end),
            )
        )

    @staticmethod
    def _rate(points: list[tuple[float, float]]) -> float | None:
        if len(points) < 2:
            return None
        increase, prev = 0.0, points[0][1]
        for _, v in points[1:]:
            increase += v - prev if v >= prev else v  # counter reset
            prev = v
        span = points[-1][0] - points[0][0]
        return increase / span if span > 0 else None

    def _value_at(self, sid: int, expr: LiteExpr, at: float, lookback: float) -> tuple[float, float] | None:
        if expr.rate_window:
            pts = self._points(sid, at - expr.rate_window, at)
            r = self._rate(pts)
            return (at, r) if r is not None else None
        row = (
            self._conn()
            .execute(
                "SELECT ts, value FROM samples WHERE series=? AND ts<=? AND ts>=? ORDER BY ts DESC LIMIT 1",
                (sid, at, at - lookback),
            )
            .fetchone()
        )
        return (row[0], row[1]) if row else None

    def instant(self, query: str, at: float, lookback: float = 300.0) -> list[Sample]:
        expr = parse(query)
        out = []
        for sid, labels in self._matching_series(expr):
            hit = self._value_at(sid, expr, at, lookback)
            if hit is not None and expr.keep(hit[1]):
                out.append(Sample(labels={"__name__": expr.metric, **labels}, value=hit[1], ts=at))
        return out

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        expr = parse(query)
        out = []
        for sid, labels in self._matching_series(expr):
            raw = self._points(sid, start - (expr.rate_window or 0), end)
            if not raw:
                continue
            points: list[tuple[float, float]] = []
            if expr.rate_window:
                t = start
                while t <= end + 1e-9:
                    window = [p for p in raw if t - expr.rate_window <= p[0] <= t]
                    r = self._rate(window)
                    if r is not None and expr.keep(r):
                        points.append((t, r))
                    t += step
            else:
                # Align to the step grid like Prometheus: last sample at or before each step.
                i, t = 0, start
                last: tuple[float, float] | None = None
                while t <= end + 1e-9:
                    while i < len(raw) and raw[i][0] <= t:
                        last = raw[i]
                        i += 1
                    if last is not None and t - last[0] <= max(step * 2, self.max_gap) and expr.keep(last[1]):
                        points.append((t, last[1]))
                    t += step
            if points:
                out.append(Series(labels={"__name__": expr.metric, **labels}, points=points))
        return out

    def scrape_health(self) -> list[SourceHealth]:
        rows = self._conn().execute("SELECT target, ok, detail, failures, last_success FROM scrapes")
        return [
            SourceHealth(source=t, ok=bool(ok), detail=d or "", consecutive_failures=f or 0, last_success=ls)
            for t, ok, d, f, ls in rows
        ]


class EmbeddedScraper:
    """Scrapes targets on an interval into the store. One bad target never stops the others."""

    def __init__(
        self, store: EmbeddedMetricsStore, targets: list[str], interval: float, timeout: float
    ) -> None:
        self.store = store
        self.targets = targets
        self.interval = interval
        self.timeout = timeout

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        async def one(target: str) -> None:
            now = time.time()
            try:
                resp = await client.get(target, timeout=self.timeout)
                resp.raise_for_status()
                n = await asyncio.to_thread(self.store.ingest_text, resp.text, now)
                await asyncio.to_thread(self.store.record_scrape, target, True, f"{n} samples", now)
            except Exception as exc:  # a failed scrape is recorded as the target's health
                await asyncio.to_thread(
                    self.store.record_scrape, target, False, f"{type(exc).__name__}: {exc}", now
                )

        await asyncio.gather(*(one(t) for t in self.targets))

    async def run(self, stop: asyncio.Event) -> None:
        last_prune = 0.0
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                started = time.monotonic()
                await self.scrape_once(client)
                if time.time() - last_prune > 600:
                    await asyncio.to_thread(self.store.prune, time.time())
                    last_prune = time.time()
                delay = max(0.0, self.interval - (time.monotonic() - started))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass


class EmbeddedMetricsSource:
    """`MetricsSource` over the embedded store."""

    def __init__(self, name: str, store: EmbeddedMetricsStore, targets: list[str]) -> None:
        self.name = name
        self.store = store
        self.targets = targets

    @staticmethod
    def validate(expr: str) -> None:
        parse(expr)

    async def instant(self, expr: str, at: datetime) -> list[Sample]:
        try:
            return await asyncio.to_thread(self.store.instant, expr, at.timestamp())
        except ExpressionError as exc:
            raise PermanentError(str(exc)) from exc

    async def range(self, expr: str, start: datetime, end: datetime, step_seconds: float) -> list[Series]:
        try:
            return await asyncio.to_thread(
                self.store.range, expr, start.timestamp(), end.timestamp(), step_seconds
            )
        except ExpressionError as exc:
            raise PermanentError(str(exc)) from exc

    async def health(self) -> SourceHealth:
        rows = [h for h in await asyncio.to_thread(self.store.scrape_health) if h.source in self.targets]
        if not rows:
            return SourceHealth(source=self.name, ok=False, detail="no scrape has completed yet")
        bad = [h for h in rows if not h.ok]
        if bad:
            detail = "; ".join(f"{h.source}: {h.detail}" for h in bad)
            return SourceHealth(
                source=self.name,
                ok=False,
                detail=detail,
                consecutive_failures=max(h.consecutive_failures for h in bad),
                last_success=max((h.last_success or 0) for h in rows) or None,
            )
        return SourceHealth(source=self.name, ok=True, detail=f"{len(rows)} targets up")


__all__ = ["EmbeddedMetricsSource", "EmbeddedMetricsStore", "EmbeddedScraper", "IntegrationError"]
