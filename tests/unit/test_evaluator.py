"""The Evaluator (threshold `for`/`keep_firing_for`, online anomaly rules, SLO burn rates, log
rules), the Collector's source health, and load-time checks of rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from argus.activities.collector import Collector
from argus.activities.evaluator import Evaluator, evaluate_rules
from argus.analysis import slo as slo_analysis
from argus.analysis.promql_check import output_labels, parse
from argus.integrations.detector_store import DetectorStore
from argus.integrations.prometheus import PrometheusSource
from argus.models import AlertStatus, Sample
from argus.models.agents import CollectRequest, EvaluateRequest, EvaluatorState, RuleResult
from argus.models.config import RuleConfig
from argus.models.monitoring import SloConfig
from argus.workers.settings import ConfigError, load_config
from tests.fakes.prometheus import FakePrometheus

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def rule(**kw) -> RuleConfig:
    return RuleConfig.model_validate({"name": "HighLatency", "expr": "latency > 1", **kw})


def sample(value: float, at: datetime = T0, **labels) -> Sample:
    return Sample(
        labels={"__name__": "latency", "service": "checkout", **labels}, value=value, ts=at.timestamp()
    )


# --- threshold life cycle ------------------------------------------------------------------------
def test_for_duration_then_fire_then_resolve():
    r = rule(**{"for": "30s", "annotations": {"summary": "{{ $labels.service }} at {{ $value }}"}})
    state = EvaluatorState()
    out = evaluate_rules([r], [RuleResult(rule=r.name, samples=[sample(2.0)])], state, T0)
    assert out.alerts == [], "pending during `for`"
    out = evaluate_rules(
        [r], [RuleResult(rule=r.name, samples=[sample(2.5)])], out.state, T0 + timedelta(seconds=30)
    )
    [a] = out.alerts
    assert (
        a.status == AlertStatus.FIRING and a.starts_at == T0 and a.annotations["summary"] == "checkout at 2.5"
    )
    assert a.labels == {"service": "checkout", "alertname": "HighLatency"}
    # The source fails: state is kept, nothing resolves; the firing alert is sent again as it was.
    failed = evaluate_rules(
        [r], [RuleResult(rule=r.name, error="down")], out.state, T0 + timedelta(seconds=40)
    )
    assert failed.state == out.state and failed.errors == ["rule HighLatency: down"]
    assert [(x.status, x.starts_at, x.labels, x.value) for x in failed.alerts] == [
        (AlertStatus.FIRING, T0, a.labels, 2.5)
    ]
    gone = evaluate_rules([r], [RuleResult(rule=r.name)], out.state, T0 + timedelta(seconds=50))
    [a] = gone.alerts
    assert a.status == AlertStatus.RESOLVED and a.ends_at == T0 + timedelta(seconds=50)
    assert gone.state.firing == {} and gone.state.pending == {}


def test_keep_firing_for_holds_an_alert_through_short_gaps():
    """As Prometheus: `keep_firing_for` counts from the first evaluation that found the series
    gone, not from its last breach, and a breach in between starts it over."""
    r = rule(keep_firing_for="1m")

    def pull(state, s: int, breach: bool = False):  # type: ignore[no-untyped-def]
        samples = [sample(2)] if breach else []
        out = evaluate_rules(
            [r], [RuleResult(rule=r.name, samples=samples)], state, T0 + timedelta(seconds=s)
        )
        return out, [a.status for a in out.alerts]

    out, _ = pull(EvaluatorState(), 0, breach=True)
    for s in (20, 50, 79):  # gone since 20: kept until 20 + 60
        out, got = pull(out.state, s)
        assert got == [AlertStatus.FIRING], s
    out, got = pull(out.state, 80)
    assert got == [AlertStatus.RESOLVED]
    # A keep of one pull interval holds an alert through one missed pull.
    r = rule(keep_firing_for="30s")
    out, _ = pull(EvaluatorState(), 0, breach=True)
    out, got = pull(out.state, 30)
    assert got == [AlertStatus.FIRING], "one missed pull"
    out, _ = pull(out.state, 60, breach=True)
    out, got = pull(out.state, 90)
    assert got == [AlertStatus.FIRING], "the breach at 60 started the keep over"
    out, got = pull(out.state, 120)
    assert got == [AlertStatus.RESOLVED]


def test_source_outage_longer_than_resolve_timeout_keeps_alerts_firing():
    """An outage is not a recovery: the router must not resolve what the evaluator holds firing."""
    from argus.analysis.routing import Router, RouterState
    from argus.models import Policy

    r, r2 = rule(), rule(name="Pending", expr="errors > 0", **{"for": "1h"})
    policy = Policy()
    router = Router(policy.routing, RouterState(), "s")
    timeout = policy.routing.resolve_timeout
    state, first = EvaluatorState(), None
    minutes = int(2 * timeout.total_seconds() // 60) + 4
    for minute in range(minutes):
        at = T0 + timedelta(minutes=minute)
        down = 2 <= minute < minutes - 2
        results = [
            RuleResult(rule=r.name, error="source prom is down (timed out)")
            if down
            else RuleResult(rule=r.name, samples=[sample(2.0)]),
            RuleResult(rule=r2.name, error="source prom is down (timed out)")
            if down
            else RuleResult(rule=r2.name, samples=[sample(1.0)]),
        ]
        out = evaluate_rules([r, r2], results, state, at)
        state = out.state
        if first is None:
            first = out.alerts[0]
        assert [a.fingerprint for a in out.alerts] == [first.fingerprint], "the pending rule stays pending"
        [a] = out.alerts
        assert a.status == AlertStatus.FIRING and a.starts_at == T0 and a.labels == first.labels
        assert ("source_down" in a.annotations) == down
        if down:
            assert "source prom is down (timed out)" in a.annotations["source_down"]
        router.ingest(out.alerts, at)
        decisions = router.sweep(at)
        assert not [d for d in decisions if d.kind.value == "resolved"], f"resolved at minute {minute}"
    assert len(state.pending) == 2 and len(state.firing) == 1


def test_log_error_threshold():
    r = RuleConfig.model_validate(
        {"name": "LogErrors", "type": "log_errors", "expr": "level:error", "threshold": 10}
    )
    res = RuleResult(
        rule="LogErrors",
        samples=[
            Sample(labels={"service": "a"}, value=9, ts=0),
            Sample(labels={"service": "b"}, value=10, ts=0),
        ],
    )
    out = evaluate_rules([r], [res], EvaluatorState(), T0)
    assert [a.labels["service"] for a in out.alerts] == ["b"]


# --- anomaly rules -------------------------------------------------------------------------------
def series(n: int, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    return [100 + 5 * math.sin(i / 15) + rng.normal(0, 0.5) for i in range(n)]


async def test_anomaly_rule_scores_online_fires_on_a_jump_and_survives_restart_and_retries(tmp_path: Path):
    r = rule(name="LatencyAnomaly", type="anomaly", expr="latency", keep_firing_for="5m")
    store_path = tmp_path / "detectors.db"
    values = [*series(400), 160.0, *series(30, seed=4)]
    ev = Evaluator([r], Collector({}, [r]), detectors=DetectorStore(store_path, flush_seconds=0))
    state, fired_at, firing_seen = EvaluatorState(), None, []
    for i, v in enumerate(values):
        at = T0 + timedelta(seconds=10 * i)
        req = EvaluateRequest(
            scope="s", at=at, state=state, results=[RuleResult(rule=r.name, samples=[sample(v, at)])]
        )
        out = await ev.evaluate(req)
        if i == 200:
            # A retried activity (same request) must not feed the point twice.
            again = await ev.evaluate(req)
            assert again.model_dump() == out.model_dump()
            assert ev.detectors.points(f"{r.name}/" + _series_key(sample(v, at))) == 201
        if i == 300:
            # The worker restarts: the next one resumes from the flushed SQLite state.
            ev.detectors.close()
            ev = Evaluator([r], Collector({}, [r]), detectors=DetectorStore(store_path))
            assert ev.detectors.points(f"{r.name}/" + _series_key(sample(v, at))) == 301
        state = out.state
        firing = [a for a in out.alerts if a.status == AlertStatus.FIRING]
        if firing and fired_at is None:
            fired_at = i
            assert float(firing[0].annotations["anomaly_score"]) >= 0.4
        firing_seen.append(bool(firing))
    assert fired_at == 400, "fires on the jump, not on the seasonal baseline"
    assert all(firing_seen[400:430]), "keep_firing_for holds it past the single high score"
    ev.detectors.close()


def _series_key(s: Sample) -> str:
    from argus.models import labels_fingerprint

    return labels_fingerprint(s.labels)


def test_detector_store_keeps_many_series_bounded_and_causal(tmp_path: Path):
    store = DetectorStore(tmp_path / "d.db", max_cached=10, flush_seconds=3600)
    for t in range(3):
        store.score_many([(f"s{i}", float(t), 1.0 + i) for i in range(50)])
    assert len(store._cache) == 10, "least recently used detectors are written out and dropped"
    assert all(store.points(f"s{i}") == 3 for i in range(50)), "evicted ones reload with their state"
    # Causal: a point's score does not change with what comes after it.
    a, b = DetectorStore(None), DetectorStore(None)
    xs = series(300)
    sa = [a.score("k", float(i), x) for i, x in enumerate(xs)]
    sb = [b.score("k", float(i), x) for i, x in enumerate(xs[:250])]
    assert sa[:250] == sb
    store.close()


# --- SLOs ----------------------------------------------------------------------------------------
def slo_config(**kw) -> SloConfig:
    return SloConfig.model_validate(
        {
            "name": "CheckoutAvailability",
            "objective": 99.9,
            "service": "checkout",
            "errors": "sum(rate(errors[$window]))",
            "total": "sum(rate(requests[$window]))",
            **kw,
        }
    )


def ratio(value: float) -> list[Sample]:
    return [Sample(labels={}, value=value, ts=0)]


def test_multi_window_multi_burn_rate_pairs():
    slo = slo_config()
    h, m5, h6, m30 = 3600.0, 300.0, 21600.0, 1800.0
    # 1.5 % errors: 15x burn over 1h and 5m (page), 0.2 % over 6h (no second page pair).
    breaches = slo_analysis.evaluate(
        slo, {h: ratio(0.015), m5: ratio(0.02), h6: ratio(0.002), m30: ratio(0.03)}
    )
    [b] = breaches
    assert b.severity == "critical" and b.pairs == ["1h/5m"] and round(b.burn_rate, 1) == 15.0
    # The burn stopped 5 minutes ago: the long window is still high, the short one resets the alert.
    assert slo_analysis.evaluate(slo, {h: ratio(0.015), m5: ratio(0.0)}) == []
    # A slow burn pages nobody but opens a ticket.
    slow = {86400.0: ratio(0.004), 7200.0: ratio(0.0045), h: ratio(0.004), m5: ratio(0.004)}
    [b] = slo_analysis.evaluate(slo, slow)
    assert b.severity == "warning" and b.pairs == ["1d/2h"]
    assert slo_analysis.budget_spent(slo.windows[0]) == pytest.approx(0.02)


def test_error_ratio_join_and_no_traffic():
    errs = [Sample(labels={"__name__": "e", "service": "a"}, value=2, ts=0)]
    total = [
        Sample(labels={"service": "a"}, value=100, ts=0),
        Sample(labels={"service": "b"}, value=50, ts=0),
        Sample(labels={"service": "c"}, value=0, ts=0),
    ]
    got = {s.labels["service"]: s.value for s in slo_analysis.error_ratios(errs, total)}
    assert got == {"a": 0.02, "b": 0.0}, "no errors series means 0; no traffic means no ratio"


def test_slo_alerts_through_the_evaluator():
    slo = slo_config(labels={"team": "payments"})
    results = [
        RuleResult(rule=slo.name, window_seconds=w, samples=ratio(0.02)) for w in (3600, 300, 21600, 1800)
    ]
    out = evaluate_rules([], results, EvaluatorState(), T0, slos=[slo])
    [a] = out.alerts
    assert a.labels == {
        "alertname": "CheckoutAvailability",
        "team": "payments",
        "slo": "CheckoutAvailability",
        "service": "checkout",
        "severity": "critical",
    }
    assert (
        a.annotations["burn_windows"] == "1h/5m, 6h/30m" and "20.0x over 1h" in a.annotations["description"]
    )
    # One window failed to answer: no verdict, and the firing alert is kept (sent again), not resolved.
    partial = [RuleResult(rule=slo.name, window_seconds=3600, error="timeout")]
    kept = evaluate_rules([], partial, out.state, T0 + timedelta(minutes=1), slos=[slo])
    assert kept.state.firing == out.state.firing
    [k] = kept.alerts
    assert (k.status, k.labels, k.starts_at) == (AlertStatus.FIRING, a.labels, a.starts_at)
    assert k.annotations["source_down"].startswith("slo CheckoutAvailability (3600s): timeout")
    calm = [RuleResult(rule=slo.name, window_seconds=w, samples=ratio(0.0)) for w in (3600, 300, 21600, 1800)]
    done = evaluate_rules([], calm, out.state, T0 + timedelta(minutes=2), slos=[slo])
    assert [a.status for a in done.alerts] == [AlertStatus.RESOLVED]


# --- the Collector: a down or slow source never stops the loop, and recovers -----------------------
async def test_down_source_is_backed_off_reported_and_recovers():
    good, bad = FakePrometheus().start(), FakePrometheus().start()
    try:
        good.values["up_ratio > 0"] = [{"metric": {"service": "a"}, "value": [T0.timestamp(), "1"]}]
        rules = [
            rule(name="GoodRule", expr="up_ratio > 0", source="good"),
            rule(name="BadRule", expr="errors > 0", source="bad"),
        ]
        sources = {
            "good": PrometheusSource("good", good.url, timeout=1),
            "bad": PrometheusSource("bad", bad.url, timeout=1),
        }
        collector = Collector(sources, rules, base_backoff=0.3, max_backoff=0.3)
        req = CollectRequest(scope="s", at=T0)
        bad.fail("GET", r"/api/v1/query", status=503, times=None)
        first = await collector.collect(req)
        assert first.results[0].samples[0].labels == {"service": "a"}
        assert "HTTP Status Code 503" in first.results[1].error
        health = {h.source: h for h in first.health}
        assert health["good"].ok and health["good"].latency_ms is not None
        assert (
            not health["bad"].ok and health["bad"].consecutive_failures == 1 and "503" in health["bad"].detail
        )
        asked = len(bad.requests)
        second = await collector.collect(req)  # within the backoff: not asked again
        assert len(bad.requests) == asked
        assert "is down" in second.results[1].error and "next try in" in second.results[1].error
        assert second.results[0].samples, "the good source is still read"
        bad.clear_faults()
        bad.slow("GET", r"/api/v1/query", delay=3.0, times=None)
        import asyncio

        await asyncio.sleep(0.35)
        slow = await collector.collect(req)
        assert "timed out" in slow.results[1].error
        assert {h.source: h.consecutive_failures for h in slow.health}["bad"] == 2
        bad.clear_faults()
        await asyncio.sleep(0.35)
        back = await collector.collect(req)
        assert back.results[1].error is None
        assert (
            all(h.ok for h in back.health)
            and {h.source: h.consecutive_failures for h in back.health}["bad"] == 0
        )
    finally:
        good.stop()
        bad.stop()


# --- load-time checks ----------------------------------------------------------------------------
def write(tmp_path: Path, rules: list[dict], sources=None, slos=None) -> Path:
    import yaml

    cfg = {
        "state_dir": str(tmp_path / "st"),
        "sources": sources or [{"name": "prom", "type": "prometheus", "url": "http://127.0.0.1:9"}],
        "rules": rules,
        "slos": slos or [],
    }
    path = tmp_path / "argus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{"name": "Bad", "expr": "sum(rate(x[5m])"}],
            "rule 'Bad': malformed PromQL 'sum(rate(x[5m])': unclosed left parenthesis",
        ),
        ([{"name": "Bad", "expr": "rate(x[5m]) >"}], "rule 'Bad': malformed PromQL"),
        ([{"name": "Bad", "expr": "x[5m]"}], "rule 'Bad': expression 'x[5m]' is a range vector"),
        (
            [
                {
                    "name": "NoSvc",
                    "expr": "sum by (job) (rate(x[5m])) > 1",
                    "annotations": {"summary": "{{ $labels.service }} slow"},
                }
            ],
            "rule 'NoSvc': annotations.summary uses unknown label 'service': "
            "the expression returns only ['job']",
        ),
        (
            [{"name": "OnOnly", "expr": "a / on(instance) b > 1", "labels": {"team": "{{ $labels.pod }}"}}],
            "rule 'OnOnly': labels.team uses unknown label 'pod': the expression returns only ['instance']",
        ),
        (
            [{"name": "BadLabel", "expr": "up == 0", "labels": {"my-team": "x"}}],
            "rule 'BadLabel': label name 'my-team' is invalid",
        ),
        (
            [{"name": "Dup", "expr": "up == 0"}, {"name": "Dup", "expr": "up == 1"}],
            "rule 'Dup': the name is used twice",
        ),
        (
            [{"name": "Logs", "type": "log_errors", "expr": "level:error"}],
            "rule 'Logs': type log_errors needs a log source (elasticsearch); none is configured",
        ),
    ],
)
def test_config_errors_name_the_rule_and_the_problem(tmp_path, rules, message):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, rules))
    assert message in str(exc.value)
    assert str(tmp_path / "argus.yaml") in str(exc.value)


def test_anomaly_rule_with_for_is_refused_naming_the_rule(tmp_path):
    # The detector scores only an incident's onset: `for` would keep such a rule from ever firing.
    rules = [{"name": "LatAnom", "type": "anomaly", "expr": "latency", "for": "1m", "keep_firing_for": "10m"}]
    with pytest.raises(ConfigError, match=r"rule 'LatAnom': `for: 1m` does not apply to anomaly rules"):
        load_config(write(tmp_path, rules))
    rules[0]["for"] = "0s"
    assert load_config(write(tmp_path, rules)).rules[0].type == "anomaly"


def test_valid_rules_and_slos_load(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            [
                {
                    "name": "Ok",
                    "expr": "histogram_quantile(0.99, sum by (le, service) "
                    '(rate(h_bucket{job="x"}[5m]))) > 1',
                    "annotations": {"summary": "{{ $labels.service }} p99 {{ $value }}"},
                },
                {"name": "Anom", "type": "anomaly", "expr": "sum by (service) (rate(requests_total[1m]))"},
            ],
            slos=[
                {
                    "name": "Avail",
                    "objective": 99.5,
                    "errors": "sum by (service) (rate(errors_total[$window]))",
                    "total": "sum by (service) (rate(requests_total[$window]))",
                    "annotations": {"summary": "{{ $labels.service }} burning"},
                }
            ],
        )
    )
    assert [r.type for r in cfg.rules] == ["threshold", "anomaly"] and cfg.slos[0].budget == pytest.approx(
        0.005
    )


def test_slo_label_and_window_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"slo 'Avail': annotations.summary uses unknown label 'service'"):
        load_config(
            write(
                tmp_path,
                [],
                slos=[
                    {
                        "name": "Avail",
                        "objective": 99.9,
                        "errors": "sum(rate(e[$window]))",
                        "total": "sum(rate(t[$window]))",
                        "annotations": {"summary": "{{ $labels.service }}"},
                    }
                ],
            )
        )
    with pytest.raises(ConfigError, match=r"needs the \$window placeholder"):
        load_config(
            write(tmp_path, [], slos=[{"name": "A", "objective": 99.9, "errors": "e", "total": "t[$window]"}])
        )
    with pytest.raises(ConfigError, match=r"objective 100\.0 must be a percentage"):
        load_config(
            write(
                tmp_path,
                [],
                slos=[{"name": "A", "objective": 100, "errors": "e[$window]", "total": "t[$window]"}],
            )
        )


def test_output_labels_follow_prometheus():
    def labels(q: str):
        return output_labels(parse(q))

    assert labels("vector(1)").describe() == "no labels"
    assert labels("sum without (pod) (x)").has("service") and not labels("sum without (pod) (x)").has("pod")
    assert (
        labels('label_replace(sum by (job) (x), "svc", "$1", "job", "(.*)")').describe()
        == "only ['job', 'svc']"
    )
    many_to_one = labels("a * on(service) group_left(team) b")  # keeps the many side's labels, adds team
    assert many_to_one.has("team") and many_to_one.has("pod") and not many_to_one.has("__name__")
    assert labels('absent(up{job="api", env=~"p.*"})').describe() == "only ['job']"
    assert labels('count_values("version", build_info)').describe() == "only ['version']"
