"""Behaviour tests for root-cause ranking (argus.analysis.rca*) and the labelled case generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from argus.analysis.rca import (
    Candidate,
    ChangeEvent,
    Evidence,
    LogEvidence,
    MetricSeries,
    RcaResult,
    rank_root_causes,
)
from argus.analysis.rca_case import CaseError, analyze_case, load_case
from argus.analysis.rca_signals import metric_kind
from argus.sandbox.rca_cases import GeneratorOptions, generate_case, generate_cases, write_case

STEP = 15.0
T0 = 1_700_000_000.0
N = 200
START_IDX = 160  # anomaly starts here: 40 min of baseline, 10 min after


def _series(rng: np.random.Generator, level: float, noise: float, shift: float = 0.0, at: int = START_IDX):
    v = level + rng.normal(0.0, noise, N)
    v[at:] += shift
    return v


def _chain_metrics(root_shift_sigma: float = 3.0) -> tuple[list[MetricSeries], list[tuple[str, str]]]:
    """frontend -> api -> db.  db's latency moves a little (noisy metric), callers a lot (quiet metrics):
    the caller that moves most is not the root cause."""
    rng = np.random.default_rng(7)
    t = T0 + STEP * np.arange(N)
    db_shift = root_shift_sigma * 1.0  # db latency noise is 1.0 ms
    series = {
        ("db", "latency_ms"): _series(rng, 5.0, 1.0, db_shift, START_IDX),
        ("api", "latency_ms"): _series(rng, 40.0, 0.3, 3 * db_shift, START_IDX + 1),  # 3 calls per request
        ("frontend", "latency_ms"): _series(rng, 120.0, 0.5, 3 * db_shift, START_IDX + 2),
        ("db", "cpu_percent"): _series(rng, 30.0, 1.0),
        ("api", "cpu_percent"): _series(rng, 40.0, 1.0),
        ("frontend", "cpu_percent"): _series(rng, 35.0, 1.0),
        ("frontend", "requests_per_sec"): _series(rng, 200.0, 3.0),
        ("api", "requests_per_sec"): _series(rng, 200.0, 3.0),
        ("db", "requests_per_sec"): _series(rng, 600.0, 6.0),
    }
    metrics = [MetricSeries(s, m, t, v) for (s, m), v in series.items()]
    return metrics, [("frontend", "api"), ("api", "db")]


ANOMALY_START = T0 + STEP * START_IDX


# ----------------------------------------------------------------------------------------- the method


def test_root_ranks_first_when_callers_move_more():
    metrics, topo = _chain_metrics(root_shift_sigma=3.0)
    res = rank_root_causes(metrics, ANOMALY_START, topology=topo, symptom={"service": "frontend"})
    assert res.ranking[0].service == "db"
    assert res.graph_source == "given"
    # the callers' anomalies are larger in sigmas than the root's, yet they are discounted as explained
    assert any("api" in d and "explained by its call to db" in d for d in res.discounted), res.discounted
    assert abs(sum(c.confidence for c in res.ranking) - 1.0) < 1e-9
    assert res.ranking[0].confidence > 0.5


def test_inferred_topology_when_none_given():
    metrics, _ = _chain_metrics(root_shift_sigma=3.0)
    res = rank_root_causes(metrics, ANOMALY_START, topology=None)
    assert res.graph_source == "inferred"
    assert res.ranking[0].service == "db"
    assert ("api", "db") in res.topology  # the edge that carried blame was inferred with the right direction


def test_generated_case_with_amplifying_callers_ranks_root_first(tmp_path: Path):
    """A generated hard case: a caller of the root moves more (in robust z) than the root itself."""
    data = generate_case(325, GeneratorOptions(topology_prob=1.0, symptom_prob=1.0))
    write_case(tmp_path / "c", data)
    case = load_case(tmp_path / "c")
    root = data["label"]["root_cause"]
    callers = {a for a, b in data["label"]["true_topology"] if b == root}

    def max_robust_z(service: str) -> float:
        best = 0.0
        for m in case.metrics:
            if m.service == service:
                before = m.values[m.timestamps < case.anomaly_start]
                after = m.values[m.timestamps >= case.anomaly_start]
                q75, q25 = np.percentile(before, [75, 25])
                best = max(best, float(np.max(np.abs(after - np.median(before)))) / ((q75 - q25) or 1.0))
        return best

    assert max(max_robust_z(c) for c in callers) > 1.5 * max_robust_z(root)  # precondition: amplification
    res = case.analyze()
    assert res.ranking[0].service == root
    # and without the call graph
    case.topology = None
    res2 = case.analyze()
    assert res2.graph_source == "inferred"
    assert res2.ranking[0].service == root


def test_evidence_has_values_and_times():
    metrics, topo = _chain_metrics()
    res = rank_root_causes(
        metrics,
        ANOMALY_START,
        topology=topo,
        changes=[ChangeEvent("db", ANOMALY_START - 30, "deploy", "db v2")],
        log_evidence=[LogEvidence("db", "slow query <*> ms", count=40, baseline_count=0)],
    )
    top = res.ranking[0]
    assert isinstance(top, Candidate) and top.service == "db"
    metric_ev = [e for e in top.evidence if e.kind == "metric"]
    assert metric_ev
    ev = metric_ev[0]
    assert isinstance(ev, Evidence)
    assert ev.metric == "latency_ms" and ev.metric_kind == "latency"
    assert ev.baseline == pytest.approx(5.0, abs=0.5)
    assert ev.value is not None and ev.value > ev.baseline
    assert ev.zscore is not None and ev.zscore > 2
    assert ev.onset is not None and abs(ev.onset - ANOMALY_START) <= 4 * STEP
    kinds = {e.kind for e in top.evidence}
    assert {"metric", "propagation", "change", "log"} <= kinds
    doc = res.to_json_dict()
    json.dumps(doc)  # serialisable
    assert doc["ranking"][0]["service"] == "db"
    assert set(doc["ranking"][0]) >= {"service", "score", "confidence", "evidence"}
    assert doc["ranking"][0]["evidence"][0]["summary"]


def test_change_event_breaks_a_tie_and_decoys_do_not():
    """Two independent services with similar own anomalies; the one deployed just before wins.  A decoy
    deploy at a quiet service changes nothing."""
    rng = np.random.default_rng(3)
    t = T0 + STEP * np.arange(N)
    series = [
        MetricSeries("a", "error_rate", t, _series(rng, 1.0, 0.1, 0.8)),
        MetricSeries("b", "error_rate", t, _series(rng, 1.0, 0.1, 0.8)),
        MetricSeries("c", "error_rate", t, _series(rng, 1.0, 0.1)),
    ]
    changes = [ChangeEvent("b", ANOMALY_START - 20), ChangeEvent("c", ANOMALY_START - 20)]
    res = rank_root_causes(series, ANOMALY_START, topology=[], changes=changes)
    assert res.ranking[0].service == "b"
    assert res.ranking[-1].service == "c"


def test_accepts_rows_and_mapping_inputs():
    metrics, topo = _chain_metrics()
    rows = [
        (float(ts), m.service, m.metric, float(v))
        for m in metrics
        for ts, v in zip(m.timestamps, m.values, strict=True)
    ]
    mapping = {(m.service, m.metric): (m.timestamps, m.values) for m in metrics}
    a = rank_root_causes(rows, ANOMALY_START, topology=topo)
    b = rank_root_causes(mapping, ANOMALY_START, topology=topo)
    assert [c.service for c in a.ranking] == [c.service for c in b.ranking]
    assert isinstance(a, RcaResult)


def test_metric_kind_recognition():
    assert metric_kind("http_request_duration_p99_ms") == "latency"
    assert metric_kind("error_rate") == "errors"
    assert metric_kind("http_5xx_ratio") == "errors"
    assert metric_kind("requests_per_sec") == "traffic"
    assert metric_kind("qps") == "traffic"
    assert metric_kind("container_cpu_percent") == "cpu"
    assert metric_kind("mem_rss_mb") == "memory"
    assert metric_kind("jvm_gc_pause_ms") == "memory"
    assert metric_kind("threadpool_active") == "saturation"
    assert metric_kind("widget_score") == "other"


def test_too_little_baseline_is_a_clear_error():
    metrics, topo = _chain_metrics()
    with pytest.raises(ValueError, match="before anomaly_start"):
        rank_root_causes(metrics, T0 + STEP * 3, topology=topo)


# ----------------------------------------------------------------------------------------- case files


def _write_minimal_case(d: Path) -> None:
    metrics, topo = _chain_metrics()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "metrics.csv", "w") as f:
        f.write("timestamp,service,metric,value\n")
        for m in metrics:
            for ts, v in zip(m.timestamps, m.values, strict=True):
                f.write(f"{int(ts)},{m.service},{m.metric},{v:.5g}\n")
    (d / "case.json").write_text(json.dumps({"anomaly_start": ANOMALY_START, "topology": topo}))


def test_case_folder_roundtrip_and_label_is_never_read(tmp_path: Path):
    _write_minimal_case(tmp_path / "c")
    (tmp_path / "c" / "label.json").write_text("{ this is not json")  # must not matter
    res = analyze_case(tmp_path / "c")
    assert res.ranking[0].service == "db"


def test_case_error_names_the_csv_file_and_line(tmp_path: Path):
    d = tmp_path / "c"
    _write_minimal_case(d)
    lines = (d / "metrics.csv").read_text().splitlines()
    lines[2] = "1700000015,api,latency_ms,fast"
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(CaseError) as ei:
        load_case(d)
    msg = str(ei.value)
    assert "metrics.csv" in msg and "line 3" in msg and "'fast'" in msg


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("metrics.csv", "time,svc,value\n1,a,2\n", "lacks column"),
        ("metrics.csv", "timestamp,service,metric,value\n1,a,b\n", "line 2: expected 4 fields"),
        ("metrics.csv", "timestamp,service,metric,value\n", "no data rows"),
        ("metrics.csv", "", "empty"),
        ("case.json", "{not json", "invalid JSON"),
        ("case.json", "{}", "anomaly_start"),
        ("case.json", '{"anomaly_start": "soon"}', "anomaly_start"),
        ("case.json", '{"anomaly_start": 1700002400, "topology": [["a"]]}', "topology[0]"),
        ("case.json", '{"anomaly_start": 1700002400, "symptom": "frontend"}', "symptom"),
        ("case.json", '{"anomaly_start": 1}', "outside the metrics time range"),
        ("changes.json", '[{"service": "db"}]', "time"),
    ],
)
def test_case_error_names_the_file(tmp_path: Path, filename: str, content: str, expected: str):
    d = tmp_path / "c"
    _write_minimal_case(d)
    (d / filename).write_text(content)
    with pytest.raises(CaseError) as ei:
        load_case(d)
    msg = str(ei.value)
    assert filename in msg.split(":")[0] or filename in msg
    assert expected in msg


def test_case_error_for_missing_files(tmp_path: Path):
    with pytest.raises(CaseError, match="not a directory"):
        load_case(tmp_path / "nope")
    d = tmp_path / "c"
    d.mkdir()
    with pytest.raises(CaseError, match=r"case\.json: file not found"):
        load_case(d)
    (d / "case.json").write_text('{"anomaly_start": 1}')
    with pytest.raises(CaseError, match=r"metrics\.csv: file not found"):
        load_case(d)


# ----------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic(tmp_path: Path):
    a = generate_case(42)
    b = generate_case(42)
    assert a["rows"] == b["rows"] and a["case"] == b["case"] and a["label"] == b["label"]
    assert a["changes"] == b["changes"]
    assert generate_case(43)["rows"] != a["rows"]
    pa = generate_cases(tmp_path / "x", 2, seed=5)
    pb = generate_cases(tmp_path / "y", 2, seed=5)
    for p, q in zip(pa, pb, strict=True):
        for name in ("metrics.csv", "case.json", "label.json"):
            assert (p / name).read_bytes() == (q / name).read_bytes()


def test_generator_writes_the_case_format(tmp_path: Path):
    paths = generate_cases(tmp_path, 3, seed=9)
    for p in paths:
        case = json.loads((p / "case.json").read_text())
        label = json.loads((p / "label.json").read_text())
        assert isinstance(case["anomaly_start"], float)
        assert "root_cause" in label and label["fault"] in GeneratorOptions().faults
        assert "root_cause" not in case and "fault" not in case  # the answer stays in label.json
        header = (p / "metrics.csv").read_text().splitlines()[0]
        assert header == "timestamp,service,metric,value"
        c = load_case(p)  # loads and validates
        services = {m.service for m in c.metrics}
        assert 5 <= len(services) <= 20


def test_generator_bad_deploy_has_its_change_event():
    opts = GeneratorOptions(faults=("bad_deploy",))
    d = generate_case(11, opts)
    root = d["label"]["root_cause"]
    assert any(c["service"] == root and c["kind"] == "deploy" for c in d["changes"])


def test_degenerate_series_do_not_break_the_ranking():
    """Constant series, gaps, NaNs, a series that starts after the anomaly, an empty (given) call graph."""
    metrics, topo = _chain_metrics()
    t = T0 + STEP * np.arange(N)
    gappy = _series(np.random.default_rng(1), 10.0, 1.0)
    gappy[50:60] = np.nan
    metrics += [
        MetricSeries("db", "connections", t, np.full(N, 12.0)),
        MetricSeries("api", "queue_depth", t, gappy),
        MetricSeries("newcomer", "latency_ms", t[START_IDX + 5 :], np.ones(N - START_IDX - 5)),
    ]
    res = rank_root_causes(metrics, ANOMALY_START, topology=topo)
    assert res.ranking[0].service == "db"
    assert any("newcomer" in w for w in res.warnings)
    res2 = rank_root_causes(metrics, ANOMALY_START, topology=[])
    assert res2.graph_source == "given" and res2.topology == []
