"""Run the streaming detector over a Numenta Anomaly Benchmark style corpus.

Input: ``<data_dir>/<folder>/<file>.csv`` with a header holding ``timestamp`` and ``value``.
Output: ``<out_dir>/<folder>/<file>.csv`` with ``timestamp,anomaly_score``, same rows in the same order.

Each file is scored by its own fresh ``StreamingDetector`` in a single causal pass, so files can be
processed in parallel (one process per core).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argus.analysis.anomaly import DEFAULT_CONFIG, DetectorConfig, StreamingDetector

__all__ = ["NabDataError", "read_series", "run_nab", "score_series"]


class NabDataError(ValueError):
    """A data file is malformed; the message starts with the file path."""


@dataclass(frozen=True)
class _FileResult:
    rel: str
    points: int
    seconds: float


def _parse_time(text: str) -> float:
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    return datetime.fromisoformat(t).timestamp()


def read_series(path: Path) -> tuple[list[str], list[float], list[float]]:
    """Read ``timestamp,value`` rows; returns (timestamp strings, epoch seconds, values).

    Raises ``NabDataError`` naming the file (and line) for a missing/odd header, a short row, an
    unparseable timestamp or value, or a file without data rows.
    """
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise NabDataError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise NabDataError(f"{path}: empty file (expected a 'timestamp,value' header)")
        cols = [h.strip() for h in header]
        if "timestamp" not in cols or "value" not in cols:
            raise NabDataError(f"{path}: header {header!r} must contain 'timestamp' and 'value'")
        it, iv = cols.index("timestamp"), cols.index("value")
        need = max(it, iv) + 1
        raw_ts: list[str] = []
        times: list[float] = []
        values: list[float] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < need:
                raise NabDataError(f"{path}: line {lineno}: expected {need} columns, got {len(row)}")
            ts = row[it].strip()
            try:
                times.append(_parse_time(ts))
            except ValueError:
                raise NabDataError(f"{path}: line {lineno}: bad timestamp {row[it]!r}") from None
            try:
                v = float(row[iv])
            except ValueError:
                raise NabDataError(f"{path}: line {lineno}: bad value {row[iv]!r}") from None
            if not math.isfinite(v):
                raise NabDataError(f"{path}: line {lineno}: non-finite value {row[iv]!r}")
            raw_ts.append(ts)
            values.append(v)
    if not values:
        raise NabDataError(f"{path}: no data rows")
    return raw_ts, times, values


def score_series(
    times: Iterable[float], values: Iterable[float], config: DetectorConfig = DEFAULT_CONFIG
) -> list[float]:
    """Score a whole series with a fresh detector (one causal pass)."""
    det = StreamingDetector(config)
    up = det.update
    return [up(t, v) for t, v in zip(times, values, strict=True)]


def _run_file(args: tuple[Path, Path, str, DetectorConfig]) -> _FileResult:
    data_dir, out_dir, rel, config = args
    raw_ts, times, values = read_series(data_dir / rel)
    t0 = time.perf_counter()
    scores = score_series(times, values, config)
    elapsed = time.perf_counter() - t0
    dest = out_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "anomaly_score"])
        for ts, s in zip(raw_ts, scores, strict=True):
            w.writerow([ts, repr(float(s))])
    return _FileResult(rel, len(values), elapsed)


def run_nab(
    data_dir: Path,
    out_dir: Path,
    config: DetectorConfig = DEFAULT_CONFIG,
    workers: int | None = None,
) -> dict:
    """Score every ``<folder>/<file>.csv`` under ``data_dir`` into ``out_dir``.

    Returns a summary: ``files``, ``points``, ``detector_seconds`` (time inside the detector, summed
    over files), ``points_per_second`` (per core), ``wall_seconds`` and the list of ``results``
    (relative paths). ``workers`` defaults to the number of cores (at most the number of files);
    ``workers=1`` runs in-process.
    """
    data_dir = Path(data_dir)
    out_dir = Path(out_dir)
    if not data_dir.is_dir():
        raise NabDataError(f"{data_dir}: not a directory")
    rels = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.glob("*/*.csv") if p.is_file())
    if not rels:
        raise NabDataError(f"{data_dir}: no <folder>/<file>.csv files found")
    # biggest files first so the pool stays busy
    rels.sort(key=lambda r: -(data_dir / r).stat().st_size)
    jobs = [(data_dir, out_dir, r, config) for r in rels]
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, len(jobs)))
    t0 = time.perf_counter()
    if n_workers == 1:
        results = [_run_file(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(_run_file, jobs))
    wall = time.perf_counter() - t0
    points = sum(r.points for r in results)
    det_s = sum(r.seconds for r in results)
    return {
        "files": len(results),
        "points": points,
        "detector_seconds": det_s,
        "points_per_second": points / det_s if det_s > 0 else float("inf"),
        "wall_seconds": wall,
        "workers": n_workers,
        "results": sorted(r.rel for r in results),
    }
