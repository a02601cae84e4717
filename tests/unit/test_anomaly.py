"""Behavioural tests of the streaming anomaly detector and the NAB runner."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from argus.analysis.anomaly import DEFAULT_CONFIG, DetectorConfig, StreamingDetector
from argus.analysis.nab import NabDataError, read_series, run_nab, score_series

REPORT = DEFAULT_CONFIG.report_level


def _periodic(n: int, period: int = 48, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50.0 + 10.0 * np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n)


def _scores(values, det: StreamingDetector | None = None) -> list[float]:
    det = det or StreamingDetector()
    return [det.update(float(i * 300), float(v)) for i, v in enumerate(values)]


def test_scores_are_in_unit_interval_for_awkward_inputs():
    rng = np.random.default_rng(1)
    series = [
        np.full(400, 7.0),  # constant
        rng.standard_normal(400) * 1e9 + 1e12,  # huge values
        np.r_[np.zeros(200), np.full(200, 1e-12)],  # tiny step
        rng.exponential(1.0, 400) ** 3,  # heavy tail
        np.arange(400, dtype=float),  # trend
    ]
    for x in series:
        s = _scores(x)
        assert len(s) == len(x)
        assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in s)


def test_non_finite_values_are_ignored():
    det = StreamingDetector()
    _scores(_periodic(300), det)
    before = det.to_state()
    assert det.update(1.0, float("nan")) == 0.0
    assert det.update(2.0, float("inf")) == 0.0
    assert det.to_state() == before


def test_causal_prefix_scores_do_not_change_when_future_points_are_appended():
    x = _periodic(900, seed=2)
    x[700] += 40.0
    prefix = _scores(x[:600])
    full = _scores(x)
    assert full[:600] == prefix
    # also through the batch helper used by the NAB runner
    assert score_series(range(600), x[:600].tolist()) == prefix


def test_clean_periodic_and_flat_series_stay_low():
    assert max(_scores(_periodic(1500, seed=3))) < REPORT
    assert max(_scores(np.full(1000, 3.0))) == 0.0


def test_spike_gets_a_high_score():
    x = _periodic(1000, seed=4)
    x[800] += 30.0
    s = _scores(x)
    assert max(s[800:806]) >= REPORT
    assert max(s[:800]) < REPORT


def test_level_shift_gets_a_high_score_once():
    x = _periodic(1200, seed=5)
    x[900:] += 25.0
    s = _scores(x)
    assert max(s[900:910]) >= REPORT
    assert max(s[:900]) < REPORT
    # reported at the onset, not on every point of the new level
    assert sum(v >= REPORT for v in s[900:]) <= 3


def test_state_round_trip_gives_identical_subsequent_scores():
    x = _periodic(2600, period=64, seed=6)
    x[2300] -= 20.0
    det = StreamingDetector()
    _scores(x[:2200], det)
    state = json.loads(json.dumps(det.to_state()))  # must be JSON compatible
    clone = StreamingDetector.from_state(state)
    a = [det.update(float(i), float(v)) for i, v in enumerate(x[2200:])]
    b = [clone.update(float(i), float(v)) for i, v in enumerate(x[2200:])]
    assert a == b
    assert max(a) > 0.0


def test_bytes_round_trip_gives_identical_subsequent_scores():
    x = _periodic(1500, seed=9)
    x[1300:] += 15.0
    det = StreamingDetector()
    _scores(x[:1200], det)
    clone = StreamingDetector.from_bytes(det.to_bytes())
    assert _scores(x[1200:], det) == _scores(x[1200:], clone)


def test_state_from_fresh_detector_round_trips():
    det = StreamingDetector()
    clone = StreamingDetector.from_state(json.loads(json.dumps(det.to_state())))
    x = _periodic(300, seed=7)
    assert _scores(x, det) == _scores(x, clone)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="window"):
        DetectorConfig(window=1)


def test_state_with_wrong_version_is_rejected():
    state = StreamingDetector().to_state()
    state["version"] = 999
    with pytest.raises(ValueError, match="version"):
        StreamingDetector.from_state(state)


def _write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_run_nab_writes_one_score_per_row(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    x = _periodic(500, seed=8)
    rows = [["timestamp", "value"]] + [
        [f"2014-04-01 {h:02d}:{m:02d}:00", f"{v:.4f}"]
        for (h, m), v in zip(((i // 60 % 24, i % 60) for i in range(500)), x, strict=True)
    ]
    _write(data / "folderA" / "a.csv", rows)
    _write(data / "folderB" / "b.csv", rows[:300])
    summary = run_nab(data, out, workers=1)
    assert summary["files"] == 2 and summary["points"] == 799
    for rel, n in (("folderA/a.csv", 500), ("folderB/b.csv", 299)):
        got = list(csv.DictReader(open(out / rel)))
        assert len(got) == n
        assert [g["timestamp"] for g in got] == [r[0] for r in rows[1 : n + 1]]
        assert all(0.0 <= float(g["anomaly_score"]) <= 1.0 for g in got)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([["time", "value"], ["2014-01-01 00:00:00", "1"]], "header"),
        ([["timestamp", "value"], ["2014-01-01 00:00:00", "abc"]], "bad value"),
        ([["timestamp", "value"], ["not a time", "1.0"]], "bad timestamp"),
        ([["timestamp", "value"], ["2014-01-01 00:00:00"]], "columns"),
        ([["timestamp", "value"]], "no data rows"),
    ],
)
def test_malformed_csv_error_names_the_file(tmp_path: Path, rows, problem):
    bad = tmp_path / "data" / "f" / "broken.csv"
    _write(bad, rows)
    with pytest.raises(NabDataError) as exc:
        read_series(bad)
    assert str(bad) in str(exc.value) and problem in str(exc.value)
    with pytest.raises(NabDataError, match=r"broken\.csv"):
        run_nab(tmp_path / "data", tmp_path / "out", workers=1)
