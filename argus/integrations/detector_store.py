"""Worker-side state of the online anomaly detectors: one `StreamingDetector` per watched series.

Detector state is about 110 kB per series, far too much for workflow history, so it lives
beside the worker in a small SQLite file and in a bounded in-memory cache in front of it:

* `score(key, ts, value)` feeds one point and returns its score. A point at or before the
  series' last timestamp is not fed again: the stored score of that point is returned. So an
  activity retried after a crash or timeout never feeds a detector the same point twice.
* Detectors stay in memory (least recently used dropped past `max_cached`, written first if
  changed); changed ones are written to SQLite every `flush_seconds` and on `close()`. A worker
  that dies loses at most that many seconds of learning, never correctness: the detector
  resumes from the last flushed state.
* The blob is a pickle of the detector (about 0.05 ms to write, 1 ms to read, against 40 ms for
  the portable JSON form); it is a private cache of this worker. A blob that no longer loads
  (after an upgrade of the detector) is dropped and the series starts learning again.

With several workers each keeps its own cache; a series scored on another worker starts from
that worker's last state. Series are cheap to re-learn (the detector warms up in 150 points).
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argus.analysis.anomaly import StreamingDetector

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detectors (
  key TEXT PRIMARY KEY, last_ts REAL NOT NULL, last_score REAL NOT NULL, points INTEGER NOT NULL,
  state BLOB NOT NULL, updated REAL NOT NULL)
"""


@dataclass
class _Entry:
    detector: StreamingDetector
    last_ts: float
    last_score: float
    points: int
    dirty: bool = False


class DetectorStore:
    """Thread-safe; `path=None` keeps everything in memory (backfill, tests of the scorer alone)."""

    def __init__(
        self,
        path: Path | None,
        max_cached: int = 2000,
        flush_seconds: float = 60.0,
        factory: Callable[[], StreamingDetector] = StreamingDetector,
    ) -> None:
        self.path = path
        self.max_cached = max_cached
        self.flush_seconds = flush_seconds
        self.factory = factory
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._last_flush = time.monotonic()
        self._conn: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()

    def _load(self, key: str) -> _Entry:
        entry = self._cache.get(key)
        if entry is not None:
            self._cache.move_to_end(key)
            return entry
        entry = None
        if self._conn is not None:
            row = self._conn.execute(
                "SELECT last_ts, last_score, points, state FROM detectors WHERE key=?", (key,)
            ).fetchone()
            if row is not None:
                try:
                    entry = _Entry(pickle.loads(row[3]), row[0], row[1], row[2])
                except Exception:  # written by an older detector: start learning again
                    entry = None
        if entry is None:
            entry = _Entry(self.factory(), -math.inf, 0.0, 0)
        self._cache[key] = entry
        while len(self._cache) > self.max_cached:
            old_key, old = self._cache.popitem(last=False)
            if old.dirty:
                self._write([(old_key, old)])
        return entry

    def _write(self, entries: list[tuple[str, _Entry]]) -> None:
        if self._conn is None or not entries:
            return
        now = time.time()
        self._conn.executemany(
            "INSERT OR REPLACE INTO detectors(key, last_ts, last_score, points, state, updated) "
            "VALUES (?,?,?,?,?,?)",
            [
                (k, e.last_ts, e.last_score, e.points, pickle.dumps(e.detector, protocol=5), now)
                for k, e in entries
            ],
        )
        self._conn.commit()
        for _, e in entries:
            e.dirty = False

    def score(self, key: str, ts: float, value: float) -> float:
        """Feed (ts, value) to the series' detector once; the point's score in [0, 1]."""
        with self._lock:
            entry = self._load(key)
            if ts <= entry.last_ts:
                return entry.last_score  # already fed: a retried evaluation
            if not math.isfinite(value):
                return 0.0
            s = float(entry.detector.update(ts, value))
            entry.last_ts, entry.last_score, entry.points, entry.dirty = ts, s, entry.points + 1, True
            return s

    def score_many(self, points: list[tuple[str, float, float]]) -> list[float]:
        with self._lock:
            out = [self.score(k, ts, v) for k, ts, v in points]
            if time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
            return out

    def points(self, key: str) -> int:
        with self._lock:
            return self._load(key).points

    def flush(self) -> None:
        with self._lock:
            self._write([(k, e) for k, e in self._cache.items() if e.dirty])
            self._last_flush = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self.flush()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["DetectorStore"]
