"""Worker-side state of the online anomaly detectors: one `StreamingDetector` per watched series.

Detector state is about 180 KiB per series (measured: 180 KiB pickled, 185-200 KiB in memory
once warm), far too much for workflow history, so it lives beside the worker in a small SQLite
file and in a bounded in-memory cache in front of it:

* `score(key, ts, value)` feeds one point and returns its score. A point at or before the
  series' last timestamp is not fed again: the stored score of that point is returned. So an
  activity retried after a crash or timeout never feeds a detector the same point twice.
* Up to `max_cached` detectors stay in memory (`detectors.max_cached` in the configuration;
  2,000 by default, about 380 MiB when full). Past that, the least recently used one is dropped,
  except within one `score_many` call (one evaluation, every series once): there the one used
  last is dropped instead, so with more series than the cache holds, `max_cached - 1` of them
  stay in memory from pull to pull and only the rest are read back, instead of every series
  missing in turn (plain LRU over a cyclic scan) and being unpickled and written on every pull.
* Only changed detectors are written, in batches (one transaction per `score_many`, per
  `write_batch` dropped ones, and per flush): changed ones every `flush_seconds` and on
  `close()`. A worker that dies loses at most that many seconds of learning, never
  correctness: the detector resumes from the last flushed state.
* Series that are no longer seen are forgotten: rows not written for `retention_seconds`
  (`detectors.retention`, 7 days by default) are deleted, at most hourly, on a flush.
* The blob is a pickle of the detector (about 0.2-0.35 ms to write, 0.06-0.1 ms to read,
  against 40 ms for the portable JSON form); it is a private cache of this worker. A blob that
  no longer loads (after an upgrade of the detector) is dropped and the series starts learning
  again.

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

DEFAULT_MAX_CACHED = 2000
DEFAULT_RETENTION_SECONDS = 7 * 86400.0
PRUNE_EVERY_SECONDS = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detectors (
  key TEXT PRIMARY KEY, last_ts REAL NOT NULL, last_score REAL NOT NULL, points INTEGER NOT NULL,
  state BLOB NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS detectors_updated ON detectors(updated);
"""


@dataclass
class _Entry:
    detector: StreamingDetector
    last_ts: float
    last_score: float
    points: int
    dirty: bool = False
    seen: float = 0.0  # wall time this series was last asked for
    stored: float = -math.inf  # wall time of its row (`updated`), -inf if none
    batch: int = 0  # the score_many call that last used it


class DetectorStore:
    """Thread-safe; `path=None` keeps everything in memory (backfill, tests of the scorer alone)."""

    def __init__(
        self,
        path: Path | None,
        max_cached: int = DEFAULT_MAX_CACHED,
        flush_seconds: float = 60.0,
        factory: Callable[[], StreamingDetector] = StreamingDetector,
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        write_batch: int = 128,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_cached = max(1, max_cached)
        self.flush_seconds = flush_seconds
        self.factory = factory
        self.retention_seconds = retention_seconds
        self.write_batch = max(1, write_batch)
        self.clock = clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, _Entry] = {}  # dropped from the cache, changed, not yet written
        self._batch = 0
        self._in_batch = False
        self._lock = threading.RLock()
        self._last_flush = time.monotonic()
        self._last_prune = clock()
        self._conn: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # a cache: no fsync per commit
            self._conn.executescript(_SCHEMA)
            self._conn.commit()

    # --- cache -----------------------------------------------------------------------------------
    def _load(self, key: str) -> _Entry:
        entry = self._cache.get(key)
        if entry is not None:
            self._cache.move_to_end(key)
        else:
            entry = self._pending.pop(key, None) or self._read(key)
            self._admit(key, entry)
        entry.seen = self.clock()
        entry.batch = self._batch if self._in_batch else 0
        return entry

    def _read(self, key: str) -> _Entry:
        if self._conn is not None:
            row = self._conn.execute(
                "SELECT last_ts, last_score, points, state, updated FROM detectors WHERE key=?", (key,)
            ).fetchone()
            if row is not None:
                try:
                    return _Entry(pickle.loads(row[3]), row[0], row[1], row[2], stored=row[4])
                except Exception:  # written by an older detector: start learning again
                    pass
        return _Entry(self.factory(), -math.inf, 0.0, 0)

    def _admit(self, key: str, entry: _Entry) -> None:
        while self._cache and len(self._cache) >= self.max_cached:
            oldest = next(iter(self._cache.values()))
            # Within one evaluation every series comes once, in turn: if even the least recently
            # used was used in it, drop the one used last, so the rest stay for the next pull.
            mru = self._in_batch and oldest.batch == self._batch
            old_key, old = self._cache.popitem(last=mru)
            if old.dirty:
                self._pending[old_key] = old
        self._cache[key] = entry
        if len(self._pending) >= self.write_batch:
            self._write_pending()

    # --- SQLite ----------------------------------------------------------------------------------
    def _write(self, entries: list[tuple[str, _Entry]]) -> None:
        if self._conn is None or not entries:
            for _, e in entries:
                e.dirty = False
            return
        now = self.clock()
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
            e.dirty, e.stored = False, now

    def _write_pending(self) -> None:
        if self._pending:
            self._write(list(self._pending.items()))
            self._pending.clear()

    # --- scoring ---------------------------------------------------------------------------------
    def _score(self, key: str, ts: float, value: float) -> float:
        entry = self._load(key)
        if ts <= entry.last_ts:
            return entry.last_score  # already fed: a retried evaluation
        if not math.isfinite(value):
            return 0.0
        s = float(entry.detector.update(ts, value))
        entry.last_ts, entry.last_score, entry.points, entry.dirty = ts, s, entry.points + 1, True
        return s

    def score(self, key: str, ts: float, value: float) -> float:
        """Feed (ts, value) to the series' detector once; the point's score in [0, 1]."""
        with self._lock:
            s = self._score(key, ts, value)
            if not self._in_batch:
                self._write_pending()
            return s

    def score_many(self, points: list[tuple[str, float, float]]) -> list[float]:
        with self._lock:
            self._batch += 1
            self._in_batch = True
            try:
                out = [self._score(k, ts, v) for k, ts, v in points]
            finally:
                self._in_batch = False
                self._write_pending()
            if time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
            return out

    def points(self, key: str) -> int:
        with self._lock:
            n = self._load(key).points
            self._write_pending()
            return n

    # --- write back, forget ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write every changed detector (one transaction); forget stale series at most hourly."""
        with self._lock:
            self._write([*self._pending.items(), *((k, e) for k, e in self._cache.items() if e.dirty)])
            self._pending.clear()
            self._last_flush = time.monotonic()
            if self.clock() - self._last_prune >= min(PRUNE_EVERY_SECONDS, self.retention_seconds):
                self.prune()

    def prune(self) -> int:
        """Forget series not seen for `retention_seconds`: their rows and cached detectors.

        Returns the number of rows deleted.
        """
        with self._lock:
            now = self.clock()
            cutoff = now - self.retention_seconds
            self._last_prune = now
            for key in [k for k, e in self._cache.items() if e.seen < cutoff]:
                del self._cache[key]
            for key in [k for k, e in self._pending.items() if e.seen < cutoff]:
                del self._pending[key]
            for e in self._cache.values():
                if -math.inf < e.stored < cutoff:
                    e.dirty = True  # seen lately but its row is old: rewrite it, never delete it
            self._write([*self._pending.items(), *((k, e) for k, e in self._cache.items() if e.dirty)])
            self._pending.clear()
            if self._conn is None:
                return 0
            deleted = self._conn.execute("DELETE FROM detectors WHERE updated < ?", (cutoff,)).rowcount
            self._conn.commit()
            return deleted

    def close(self) -> None:
        with self._lock:
            self.flush()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["DEFAULT_MAX_CACHED", "DEFAULT_RETENTION_SECONDS", "DetectorStore"]
