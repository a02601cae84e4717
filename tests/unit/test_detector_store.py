"""DetectorStore past its cache, write-back in batches, forgetting series that went away,
and its settings from the configuration."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

from argus.integrations.detector_store import DetectorStore
from argus.models import ArgusConfig
from argus.workers.settings import Secrets
from argus.workers.wiring import build_runtime

DAY = 86400.0


class Counting:
    """Counts detector reads (unpickles) and SQLite commits of a store."""

    def __init__(self, monkeypatch, store: DetectorStore) -> None:  # type: ignore[no-untyped-def]
        self.loads = 0
        self.commits = 0
        real = pickle.loads

        def loads(data, *a, **kw):  # type: ignore[no-untyped-def]
            self.loads += 1
            return real(data, *a, **kw)

        monkeypatch.setattr(pickle, "loads", loads)
        store._conn.set_trace_callback(self._trace)  # type: ignore[union-attr]

    def _trace(self, sql: str) -> None:
        if sql.strip().upper() == "COMMIT":
            self.commits += 1

    def take(self) -> tuple[int, int]:
        out = (self.loads, self.commits)
        self.loads = self.commits = 0
        return out


def test_more_series_than_the_cache_holds_do_not_thrash(tmp_path: Path, monkeypatch):
    store = DetectorStore(tmp_path / "d.db", max_cached=100, flush_seconds=3600)
    count = Counting(monkeypatch, store)
    per_pull = []
    for t in range(5):  # 120 series, one point each per pull, as the Evaluator feeds them
        store.score_many([(f"rule/{i}", float(t), float(i % 7)) for i in range(120)])
        per_pull.append(count.take())
    for loads, commits in per_pull[1:]:
        assert loads <= 21, f"{loads} detectors read back: only those the cache cannot hold"
        assert commits <= 1, f"{commits} commits: one write-back per evaluation"
    assert all(store.points(f"rule/{i}") == 5 for i in range(120)), "no point lost on the way"
    store.close()


def test_only_changed_detectors_are_written(tmp_path: Path, monkeypatch):
    store = DetectorStore(tmp_path / "d.db", max_cached=10, flush_seconds=0)
    store.score_many([(f"s{i}", 1.0, 1.0) for i in range(30)])
    dumps = []
    real = pickle.dumps
    monkeypatch.setattr(pickle, "dumps", lambda obj, *a, **kw: dumps.append(1) or real(obj, *a, **kw))
    store.score_many([(f"s{i}", 1.0, 1.0) for i in range(30)])  # a retried evaluation: nothing new
    store.flush()
    assert dumps == []
    store.close()


def test_series_not_seen_for_the_retention_are_forgotten(tmp_path: Path):
    now = [1_000_000.0]
    path = tmp_path / "d.db"
    store = DetectorStore(
        path, max_cached=50, flush_seconds=0, retention_seconds=7 * DAY, clock=lambda: now[0]
    )
    store.score_many([(f"gone/{i}", 1.0, 1.0) for i in range(40)] + [("kept", 1.0, 1.0), ("quiet", 1.0, 1.0)])
    now[0] += 6 * DAY
    store.score_many([("kept", 2.0, 1.0)])
    now[0] += 2 * DAY  # 8 days after `gone/*` and `quiet` last had a point, 2 after `kept`
    store.score_many([("quiet", 1.0, 1.0)])  # asked again, with no new point: still a live series
    store.score_many([("new", 1.0, 1.0)])  # its flush forgets what was not seen for 7 days
    keys = {k for (k,) in sqlite3.connect(path).execute("SELECT key FROM detectors")}
    assert keys == {"kept", "quiet", "new"}
    assert set(store._cache) == {"kept", "quiet", "new"}, "forgotten in memory too"
    assert store.points("quiet") == 1 and store.points("gone/0") == 0, "a forgotten series starts over"
    store.close()


def test_cache_size_flush_and_retention_come_from_the_configuration(tmp_path: Path):
    cfg = ArgusConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "detectors": {"max_cached": 12345, "flush_interval": "30s", "retention": "3d"},
        }
    )
    rt = build_runtime(cfg, Secrets({"link_secret": "x" * 32}))
    try:
        assert rt.detectors is not None
        assert rt.detectors.max_cached == 12345
        assert rt.detectors.flush_seconds == 30.0 and rt.detectors.retention_seconds == 3 * DAY
    finally:
        rt.detectors.close()
    default = ArgusConfig().detectors
    assert default.max_cached == 2000 and default.retention.total_seconds() == 7 * DAY
