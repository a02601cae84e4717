"""The Evaluator against what Prometheus alerting rules and the SRE workbook do: the `for` life
cycle across reloads and clock steps, alert identity and templates, duplicate label sets, the
rule set changing under the state, and SLO alerts' labels and annotations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from argus.activities.evaluator import _render, evaluate_rules
from argus.models import AlertStatus, Sample
from argus.models.agents import EvaluatorState, RuleResult
from argus.models.config import RuleConfig
from argus.models.monitoring import SloConfig

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def rule(**kw) -> RuleConfig:
    return RuleConfig.model_validate({"name": "HighLatency", "expr": "latency > 1", **kw})


def sample(value: float, **labels) -> Sample:
    return Sample(labels={"__name__": "latency", "service": "checkout", **labels}, value=value, ts=0)


def run(r: RuleConfig, samples: list[Sample], state: EvaluatorState, at: datetime):
    return evaluate_rules([r], [RuleResult(rule=r.name, samples=samples)], state, at)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- the `for` life cycle ------------------------------------------------------------------------
def test_pending_resets_when_the_series_misses_one_evaluation():
    r = rule(**{"for": "1m"})
    out = run(r, [sample(2)], EvaluatorState(), at(0))
    out = run(r, [sample(2)], out.state, at(30))
    out = run(r, [], out.state, at(45))  # gone once: pending starts over
    assert out.alerts == [] and out.state.pending == {}
    out = run(r, [sample(2)], out.state, at(60))
    assert out.alerts == [], "60 s after the first breach, but only 0 s after the new one"
    out = run(r, [sample(2)], out.state, at(119))
    assert out.alerts == []
    [a] = run(r, [sample(2)], out.state, at(120)).alerts
    assert a.status == AlertStatus.FIRING and a.starts_at == at(60)


def test_a_firing_alert_stays_firing_when_for_is_raised_by_a_reload():
    # Prometheus keeps a firing alert firing across a reload; `for` only holds pending ones back.
    # Before the fix the alert went silent (no refresh) until the new `for` had passed since it
    # first breached: the router resolved it after `resolve_timeout`, then it fired again.
    fired = run(rule(), [sample(2)], EvaluatorState(), at(0))
    assert [a.status for a in fired.alerts] == [AlertStatus.FIRING]
    reloaded = rule(**{"for": "10m"})
    out = run(reloaded, [sample(2.5)], fired.state, at(60))
    [a] = out.alerts
    assert (a.status, a.starts_at, a.value) == (AlertStatus.FIRING, T0, 2.5)
    assert out.state.firing == {
        k: v.model_copy(update={"value": 2.5, "last_breach": at(60)}) for k, v in fired.state.firing.items()
    }


def test_the_clock_stepping_back_neither_silences_nor_ends_before_the_start():
    fired = run(rule(), [sample(2)], EvaluatorState(), at(60))
    [a] = run(rule(), [sample(2)], fired.state, at(30)).alerts
    assert (a.status, a.starts_at) == (AlertStatus.FIRING, at(60))
    [gone] = run(rule(), [], fired.state, at(30)).alerts
    assert gone.status == AlertStatus.RESOLVED and gone.ends_at == gone.starts_at == at(60)


def test_a_skipped_pull_does_not_reset_pending():
    # As Prometheus: `for` counts from the first evaluation that saw the series; a worker that
    # was down in between changes nothing, the series was there before and after.
    r = rule(**{"for": "5m"})
    out = run(r, [sample(2)], EvaluatorState(), at(0))
    [a] = run(r, [sample(2)], out.state, at(600)).alerts
    assert (a.status, a.starts_at) == (AlertStatus.FIRING, T0)


# --- the rule set changing under the state ---------------------------------------------------------
def test_a_removed_or_renamed_rule_resolves_what_it_fired_and_forgets_what_was_pending():
    old, pend = rule(name="OldName"), rule(name="Slow", **{"for": "1h"})
    results = [RuleResult(rule="OldName", samples=[sample(2)]), RuleResult(rule="Slow", samples=[sample(2)])]
    out = evaluate_rules([old, pend], results, EvaluatorState(), at(0))
    assert len(out.state.firing) == 1 and len(out.state.pending) == 2
    new = rule(name="NewName")
    after = evaluate_rules([new], [RuleResult(rule="NewName", samples=[sample(2)])], out.state, at(60))
    by_name = {(a.labels["alertname"], a.status) for a in after.alerts}
    assert by_name == {("OldName", AlertStatus.RESOLVED), ("NewName", AlertStatus.FIRING)}
    assert [k.split("/")[0] for k in after.state.pending] == ["NewName"]
    assert [k.split("/")[0] for k in after.state.firing] == ["NewName"]


# --- identity and templates -------------------------------------------------------------------------
def test_labels_are_series_plus_rule_labels_which_win_and_a_value_never_changes_the_fingerprint():
    r = rule(labels={"severity": "critical", "service": "override"})
    one = run(r, [sample(2, severity="info", pod="p1")], EvaluatorState(), at(0))
    two = run(r, [sample(3, severity="info", pod="p1")], one.state, at(60))
    assert one.alerts[0].labels == {
        "alertname": "HighLatency",
        "service": "override",
        "severity": "critical",
        "pod": "p1",
    }
    assert one.alerts[0].fingerprint == two.alerts[0].fingerprint and two.alerts[0].value == 3


@pytest.mark.parametrize(
    ("text", "value", "want"),
    [
        ("{{ $labels.service }} at {{ $value }}", 2.5, "checkout at 2.5"),
        ("{{$labels.service}} at {{$value}}", 2.5, "checkout at 2.5"),  # the most common spelling
        ("{{ .Labels.service }} at {{ .Value }}", 2.5, "checkout at 2.5"),
        ('{{ index $labels "service" }}', 1, "checkout"),
        ("ratio {{ $value }}", 0.052345678, "ratio 0.052345678"),  # Go's %v: every digit
        ("{{ $value }}", 1e6, "1e+06"),
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ $value | humanizePercentage }}", 0.0523, "5.23%"),
        ("{{ $value | humanizeDuration }}", 3725.0, "1h 2m 5s"),
        ('{{ printf "%.2f" $value }}', 0.056789, "0.06"),
        ('{{ $value | printf "%.1f" }}s', 1.25, "1.2s"),
        ("{{ $labels.service | toUpper }}", 1, "CHECKOUT"),
        ("[{{ $labels.zone }}]", 1, "[]"),  # a missing label is empty, as Prometheus's missingkey=zero
        ("a {{- $labels.service -}} b", 1, "acheckoutb"),
        ("{{ if gt $value 1.0 }}big{{ end }}", 2, "{{ if gt $value 1.0 }}big{{ end }}"),  # kept as written
    ],
)
def test_annotation_templates_render_as_prometheus_renders_them(text, value, want):
    [a] = run(rule(annotations={"summary": text}), [sample(value)], EvaluatorState(), at(0)).alerts
    assert a.annotations["summary"] == want


def test_rule_labels_are_templates_expanded_per_series():
    # Prometheus expands rule labels with the series' labels; an empty result is no label.
    r = rule(labels={"team": "{{ $labels.owner }}", "page": "{{ $labels.pager }}", "severity": "critical"})
    out = run(r, [sample(2, owner="payments"), sample(2, service="search")], EvaluatorState(), at(0))
    got = sorted((a.labels["service"], a.labels.get("team"), "page" in a.labels) for a in out.alerts)
    assert got == [("checkout", "payments", False), ("search", None, False)]
    assert all("{{" not in v for a in out.alerts for v in a.labels.values())


@pytest.mark.parametrize("text", ["{{ $value }}", "{{$value | humanize}}", "{{ .Value }}"])
def test_a_label_templated_on_the_value_is_refused(text):
    # Labels are the alert's identity: a value in one makes every new value a new alert.
    with pytest.raises(ValidationError, match="label 'sev' uses the value"):
        rule(labels={"sev": text})
    with pytest.raises(ValidationError, match="label 'sev' uses the value"):
        SloConfig.model_validate(
            {
                "name": "A",
                "objective": 99.9,
                "errors": "e[$window]",
                "total": "t[$window]",
                "labels": {"sev": text},
            }
        )
    assert rule(annotations={"summary": text}).annotations == {"summary": text}


def test_two_series_that_become_one_alert_are_a_rule_error_as_in_prometheus():
    # `__name__` dropped, two series can make one label set: Prometheus fails the evaluation
    # ("vector contains metrics with the same labelset after applying alert labels").
    r = rule()
    out = run(r, [sample(2)], EvaluatorState(), at(0))
    twins = [sample(2), Sample(labels={"__name__": "other", "service": "checkout"}, value=9, ts=0)]
    bad = run(r, twins, out.state, at(60))
    assert bad.errors and "same labelset after applying alert labels" in bad.errors[0]
    [a] = bad.alerts
    assert a.status == AlertStatus.FIRING and a.value == 2 and "source_down" in a.annotations
    assert bad.state == out.state


# --- SLOs ----------------------------------------------------------------------------------------
def slo(**kw) -> SloConfig:
    return SloConfig.model_validate(
        {
            "name": "CheckoutAvailability",
            "objective": 99.9,
            "errors": "sum by (service) (rate(errors[$window]))",
            "total": "sum by (service) (rate(requests[$window]))",
            **kw,
        }
    )


def slo_results(name: str, per_service: dict[str, float], windows=(3600, 300, 21600, 1800)):
    return [
        RuleResult(
            rule=name,
            window_seconds=w,
            samples=[Sample(labels={"service": s}, value=v, ts=0) for s, v in per_service.items()],
        )
        for w in windows
    ]


def test_slo_annotations_from_the_configuration_win_over_the_defaults():
    s = slo(annotations={"summary": "{{ $labels.service }} burns its budget", "runbook_url": "https://rb/x"})
    [a] = evaluate_rules([], slo_results(s.name, {"api": 0.02}), EvaluatorState(), T0, slos=[s]).alerts
    assert (
        a.annotations["summary"] == "api burns its budget" and a.annotations["runbook_url"] == "https://rb/x"
    )
    assert a.annotations["burn_windows"] == "1h/5m, 6h/30m", "what ARGUS adds and nobody set stays"


def test_slo_alerts_are_per_series_and_severity_and_resolve_when_the_short_window_recovers():
    s = slo(labels={"team": "{{ $labels.service }}-owners"})
    out = evaluate_rules(
        [], slo_results(s.name, {"api": 0.02, "web": 0.0005}), EvaluatorState(), T0, slos=[s]
    )
    [a] = out.alerts
    assert a.labels == {
        "alertname": "CheckoutAvailability",
        "slo": "CheckoutAvailability",
        "service": "api",
        "team": "api-owners",
        "severity": "critical",
    }
    # The burn stopped: the long windows still burn, the short ones do not, the page ends.
    calm = [
        RuleResult(rule=s.name, window_seconds=w, samples=[Sample(labels={"service": "api"}, value=v, ts=0)])
        for w, v in ((3600, 0.02), (300, 0.0), (21600, 0.02), (1800, 0.0))
    ]
    [done] = evaluate_rules([], calm, out.state, T0 + timedelta(minutes=1), slos=[s]).alerts
    assert (done.status, done.labels, done.ends_at) == (
        AlertStatus.RESOLVED,
        a.labels,
        T0 + timedelta(minutes=1),
    )


@pytest.mark.parametrize(
    "text", ['{{ "\\x" }}', "{{ }}", "{{ printf }}", '{{ "abc }}', '{{ printf "%c" $value }}']
)
def test_a_template_it_cannot_render_stays_as_written_and_never_fails_the_pull(text):
    assert _render(text, {"a": "x"}, 2.5) == text
