"""Push normalisers (Alertmanager, Grafana, Datadog, Nagios, Splunk, generic) and their gateway
endpoints: one alert model, stable fingerprints across paths, bad input named field by field."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from temporalio.service import RPCError

from argus.integrations.normalizers import PayloadError
from argus.integrations.normalizers.alertmanager import from_v2, from_webhook
from argus.integrations.normalizers.datadog import from_datadog
from argus.integrations.normalizers.fast_v2 import compact_from_v2
from argus.integrations.normalizers.fields import label_name, tag_labels
from argus.integrations.normalizers.generic import from_generic
from argus.integrations.normalizers.grafana import from_grafana
from argus.integrations.normalizers.nagios import from_nagios, normalise
from argus.integrations.normalizers.splunk import from_splunk
from argus.models import Alert, AlertBatch, AlertStatus, ArgusConfig, labels_fingerprint
from argus.models.alert import CompactBatch, alert_from_compact, labels_fingerprints
from argus.workers.gateway import create_app
from tests.unit.gateway_kit import gateway_app, gateway_context

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
LABELS = {"alertname": "HighLatency", "service": "checkout", "severity": "critical"}


def problems(fn, payload) -> list[str]:
    with pytest.raises(PayloadError) as exc:
        fn(payload, NOW)
    return exc.value.problems


# --- fingerprints ----------------------------------------------------------------------------------
def test_fingerprint_is_alertmanagers_and_identical_across_paths():
    # The fingerprint Alertmanager 0.25 put in its webhook for these labels (shared/docs/integrations.md).
    captured = {"alertname": "ArgusTestAlwaysFiring", "service": "checkout", "severity": "critical"}
    assert labels_fingerprint(captured) == "788c31fa4103a1bb"
    v2 = from_v2([{"labels": LABELS, "startsAt": "2026-05-04T11:59:00Z"}], NOW)[0]
    hook = from_webhook(
        {
            "version": "4",
            "alerts": [{"status": "firing", "labels": LABELS, "startsAt": "2026-05-04T13:59:00+02:00"}],
        },
        NOW,
    )[0]
    graf = from_grafana(
        {
            "version": "1",
            "alerts": [{"status": "firing", "labels": LABELS, "startsAt": "2026-05-04T11:59:00.123456789Z"}],
        },
        NOW,
    )[0]
    generic = from_generic(
        {"name": "HighLatency", "labels": {"service": "checkout", "severity": "critical"}}, NOW
    )[0]
    assert v2.fingerprint == hook.fingerprint == graf.fingerprint == generic.fingerprint
    assert v2.starts_at == hook.starts_at == datetime(2026, 5, 4, 11, 59, tzinfo=UTC), "offsets become UTC"
    assert v2.source == "prometheus" and hook.source == "alertmanager" and graf.source == "grafana"


def test_fingerprints_computed_side_by_side_equal_one_by_one():
    # Label sets of many lengths (lanes finish at different rounds), non-ASCII and empty
    # values, enough of them for the numpy lanes, and one batch small enough for plain Python.
    sets = [
        {"alertname": f"A{i % 7}", "instance": "h" * (i % 37), "zone": "zürich" * (i % 3), "x": ""}
        for i in range(300)
    ]
    sets.append({"alertname": "ArgusTestAlwaysFiring", "service": "checkout", "severity": "critical"})
    expected = [labels_fingerprint(s) for s in sets]
    assert labels_fingerprints(sets) == expected
    assert labels_fingerprints(sets[-5:]) == expected[-5:]
    assert expected[-1] == "788c31fa4103a1bb"  # Alertmanager's own, as above
    assert len(set(expected)) == len({tuple(sorted(s.items())) for s in sets})


def test_a_compact_batch_fingerprints_the_records_that_have_none():
    records = [{"l": {"alertname": "Disk", "instance": f"db-{i}"}, "s": "f", "t": 0.0} for i in range(40)]
    records.append({"f": "kept-as-given", "l": {"alertname": "Disk"}, "s": "f", "t": 0.0})
    got = CompactBatch.of("b1", records).records()
    assert [r["f"] for r in got[:40]] == [labels_fingerprint(r["l"]) for r in got[:40]]
    assert got[40]["f"] == "kept-as-given"


def test_label_names_are_mapped_to_prometheus_names_deterministically():
    assert label_name("availability-zone") == "availability_zone"
    assert label_name("host.name") == "host_name"
    assert label_name("9lives") == "_9lives"
    assert tag_labels("env:prod, service:checkout,canary") == {
        "env": "prod",
        "service": "checkout",
        "canary": "true",
    }


# --- Grafana ---------------------------------------------------------------------------------------
GRAFANA = {
    "receiver": "argus",
    "status": "firing",
    "orgId": 1,
    "version": "1",
    "groupKey": "{}:{}",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "High memory",
                "grafana_folder": "Infra",
                "service": "payments",
                "team-name": "pay",
            },
            "annotations": {"summary": "memory at 93%"},
            "startsAt": "2026-05-04T13:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://grafana.local/alerting/grafana/abc/view",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://grafana.local/alerting/silence/new",
            "dashboardURL": "https://grafana.local/d/x",
            "panelURL": "",
            "values": {"B": 93.2, "C": 1},
            "valueString": "[ var='B' value=93.2 ]",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "Disk", "service": "db"},
            "annotations": {},
            "startsAt": "2026-05-04T10:00:00Z",
            "endsAt": "2026-05-04T11:00:00Z",
        },
    ],
}


def test_grafana_unified_payload():
    firing, resolved = from_grafana(GRAFANA, NOW)
    assert firing.labels["team_name"] == "pay" and firing.value == 93.2
    assert firing.starts_at == datetime(2026, 5, 4, 11, 51, 3, 157076, tzinfo=UTC)
    assert firing.ends_at is None, "Grafana's zero time means unset"
    assert firing.annotations["grafana_dashboard_url"] == "https://grafana.local/d/x"
    assert resolved.status == AlertStatus.RESOLVED and resolved.ends_at == datetime(
        2026, 5, 4, 11, tzinfo=UTC
    )


def test_grafana_legacy_payload_and_errors():
    legacy = {
        "ruleName": "CPU high",
        "ruleId": 7,
        "state": "alerting",
        "title": "[Alerting] CPU high",
        "message": "cpu",
        "tags": {"service": "web"},
        "evalMatches": [{"metric": "cpu", "value": 97.5, "tags": {"host": "web-1"}}],
    }
    [a] = from_grafana(legacy, NOW)
    assert a.labels == {"alertname": "CPU high", "service": "web", "host": "web-1", "metric": "cpu"}
    assert a.value == 97.5 and a.status == AlertStatus.FIRING
    assert problems(from_grafana, {**legacy, "state": "weird"}) == [
        "state: must be one of ['alerting', 'no_data', 'ok'], got 'weird'"
    ]
    bad = {"alerts": [GRAFANA["alerts"][0], {"labels": {"service": "x"}, "startsAt": "noon", "values": [1]}]}
    got = problems(from_grafana, bad)
    assert "alerts[1].labels.alertname: field required" in got
    assert any(p.startswith("alerts[1].startsAt: invalid timestamp 'noon'") for p in got)
    assert "alerts[1].values: must be an object of numbers" in got


def test_grafana_legacy_rule_name_and_tags_win_over_match_tags_and_the_match_value_is_kept():
    legacy = {
        "ruleName": "CPU high",
        "state": "alerting",
        "tags": {"service": "web", "alertname": "from-tag"},
        "evalMatches": [
            {"metric": "cpu", "value": 1, "tags": {"host": "web-1", "service": "db", "alertname": "x"}},
            {"metric": "cpu", "value": 2, "tags": {"host": "web-2", "service": "web"}},
        ],
    }
    first, second = from_grafana(legacy, NOW)
    assert first.labels == {
        "alertname": "CPU high",
        "exported_alertname": "from-tag",
        "exported_exported_alertname": "x",
        "service": "web",
        "exported_service": "db",
        "host": "web-1",
        "metric": "cpu",
    }
    assert second.labels == {
        "alertname": "CPU high",
        "exported_alertname": "from-tag",
        "service": "web",
        "host": "web-2",
        "metric": "cpu",
    }, "a match tag equal to the rule's is no clash"


# --- Datadog ---------------------------------------------------------------------------------------
DATADOG = {
    "id": "7392038475",
    "alert_id": "12345678",
    "title": "[Triggered on {host:web-1}] Checkout p99 high",
    "alert_title": "Checkout p99 high",
    "transition": "Triggered",
    "alert_type": "error",
    "priority": "P2",
    "metric": "trace.http.request.duration",
    "scope": "host:web-1,service:checkout",
    "tags": "env:prod,team:payments,availability-zone:eu-1a",
    "date": "1777896000000",
    "hostname": "web-1",
    "link": "https://app.datadoghq.com/event/event?id=7392038475",
    "body": "p99 above 1s",
    "value": "1.42",
}


def test_datadog_trigger_and_recovery_are_one_alert():
    [fired] = from_datadog(DATADOG, NOW)
    assert fired.labels == {
        "host": "web-1",
        "service": "checkout",
        "alertname": "Checkout p99 high",
        "datadog_monitor_id": "12345678",
        "severity": "error",
    }
    assert fired.starts_at == datetime.fromtimestamp(1777896000, UTC), "$DATE is epoch milliseconds"
    assert fired.value == 1.42 and fired.annotations["tag_availability_zone"] == "eu-1a"
    [recovered] = from_datadog(
        {**DATADOG, "transition": "Recovered", "alert_type": "success", "tags": "env:prod,team:other"}, NOW
    )
    assert recovered.status == AlertStatus.RESOLVED
    assert recovered.fingerprint == fired.fingerprint, "tags changed, identity did not"


def test_a_datadog_scope_tag_named_like_a_label_argus_sets_is_kept_as_exported():
    [a] = from_datadog({**DATADOG, "scope": "alertname:disk,datadog_monitor_id:9,host:web-1"}, NOW)
    assert a.labels["alertname"] == "Checkout p99 high" and a.labels["exported_alertname"] == "disk"
    assert a.labels["datadog_monitor_id"] == "12345678" and a.labels["exported_datadog_monitor_id"] == "9"
    [b] = from_datadog({**DATADOG, "scope": "host:web-1,service:checkout,alertname:other"}, NOW)
    assert b.fingerprint != from_datadog(DATADOG, NOW)[0].fingerprint, "the scope tag is part of the identity"


def test_datadog_bad_fields_are_named():
    got = problems(
        from_datadog, {"alerts": [DATADOG, {"transition": "Exploded", "date": "yesterday", "value": "x"}]}
    )
    assert "alerts[1].alert_title: field required (or title): the monitor's name" in got
    assert "alerts[1].transition: unknown Datadog transition 'Exploded'" in got
    assert any(p.startswith("alerts[1].date: invalid timestamp") for p in got)
    assert "alerts[1].value: must be a number, got 'x'" in got


# --- Nagios ----------------------------------------------------------------------------------------
def test_nagios_problem_recovery_and_severity_change():
    base = {
        "host_name": "db-1",
        "host_address": "10.0.0.5",
        "service_description": "PostgreSQL connections",
        "hostgroup": "payments-db",
        "output": "CRITICAL - 498 of 500 connections",
        "timestamp": "1777896000",
    }
    crit = from_nagios({**base, "notification_type": "PROBLEM", "state": "CRITICAL"}, NOW)
    assert [(a.labels["severity"], a.status.value) for a in crit] == [
        ("critical", "firing"),
        ("warning", "resolved"),
    ]
    assert crit[0].labels["service"] == "payments-db" and crit[0].labels["instance"] == "10.0.0.5"
    assert crit[0].starts_at == datetime.fromtimestamp(1777896000, UTC)
    rec = from_nagios({**base, "notification_type": "RECOVERY", "state": "OK"}, NOW)
    assert {a.status for a in rec} == {AlertStatus.RESOLVED}
    assert {a.fingerprint for a in rec} == {a.fingerprint for a in crit}
    alerts, why = normalise({**base, "notification_type": "ACKNOWLEDGEMENT", "state": "CRITICAL"}, NOW)
    assert alerts == [] and why == "ACKNOWLEDGEMENT notifications carry no state change"
    host = from_nagios({"notification_type": "PROBLEM", "host_name": "edge-2", "state": "DOWN"}, NOW)
    assert host[0].labels["alertname"] == "HostDown" and host[0].labels["service"] == "edge-2"


def test_nagios_bad_input():
    got = problems(
        from_nagios, {"notification_type": "PROBLEM", "state": "OK", "host_name": 5.5, "timestamp": "x"}
    )
    assert "state: a PROBLEM notification cannot have state OK" in got
    assert any(p.startswith("timestamp: invalid timestamp") for p in got)
    assert problems(from_nagios, {"state": "CRITICAL"}) == [
        "notification_type: field required",
        "host_name: field required",
    ]


# --- Splunk ----------------------------------------------------------------------------------------
SPLUNK = {
    "result": {
        "service": "checkout",
        "host": "web-1",
        "count": "42",
        "_time": "1777896000.000",
        "sourcetype": "access_combined",
        "status": ["500", "503"],
    },
    "sid": "scheduler__admin__search__RMD5e461_at_1777896000_42",
    "search_name": "Checkout 5xx",
    "results_link": "http://splunk:8000/app/search/@go?sid=scheduler__admin",
    "owner": "admin",
    "app": "search",
}


def test_splunk_identity_fields_become_labels_the_rest_annotations():
    [a] = from_splunk(SPLUNK, NOW)
    assert a.labels == {"service": "checkout", "host": "web-1", "alertname": "Checkout 5xx"}
    assert a.value == 42 and a.annotations["result_status"] == "500,503"
    assert a.annotations["result_time"] == "1777896000.000" and a.starts_at == datetime.fromtimestamp(
        1777896000, UTC
    )
    [again] = from_splunk({**SPLUNK, "result": {**SPLUNK["result"], "count": "7"}}, NOW)
    assert again.fingerprint == a.fingerprint, "a different count is the same alert"
    got = problems(from_splunk, {"result": {"service": {"nested": 1}, "_time": "soon"}, "sid": 3})
    assert got == [
        "search_name: field required (the saved search's name)",
        "sid: must be a string, got int",
        "result.service: must be a string, got dict",
        "result._time: invalid timestamp 'soon' (use RFC 3339, e.g. 2026-01-01T00:00:00Z)",
    ]


# --- the gateway endpoints, for real: the batch lands in Temporal as a signal ----------------------
@pytest.fixture
async def gateway(ts_env, tmp_path: Path):
    async with gateway_app(ts_env, tmp_path) as (http, _):
        yield http, ts_env.client


async def signalled_batches(client, scope: str) -> list[AlertBatch]:
    history = await client.get_workflow_handle(f"monitoring-{scope}").fetch_history()
    out = []
    for event in history.events:
        attrs = event.workflow_execution_signaled_event_attributes
        if not event.HasField("workflow_execution_signaled_event_attributes"):
            continue
        if attrs.signal_name == "ingest":
            [batch] = await client.data_converter.decode(attrs.input.payloads, [AlertBatch])
            out.append(batch)
        elif attrs.signal_name == "ingest_compact":  # the gateway's hot path
            [compact] = await client.data_converter.decode(attrs.input.payloads, [CompactBatch])
            alerts = [alert_from_compact(r) for r in compact.records()]
            out.append(AlertBatch(batch_id=compact.batch_id, alerts=alerts))
    return out


async def test_push_endpoints_make_alerts_durable_and_refuse_bad_payloads_whole(gateway):
    http, client = gateway
    scope = f"push-{uuid.uuid4().hex[:8]}"
    r = await http.post(f"/api/v1/alerts/grafana?scope={scope}", json=GRAFANA)
    assert r.status_code == 200 and r.json() == {"accepted": 2}
    r = await http.post(f"/api/v1/alerts/datadog?scope={scope}", json=DATADOG)
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    r = await http.post(f"/api/v1/alerts/splunk?scope={scope}", json=SPLUNK)
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    ack = {"notification_type": "ACKNOWLEDGEMENT", "host_name": "db-1", "state": "CRITICAL"}
    r = await http.post(f"/api/v1/alerts/nagios?scope={scope}", json=ack)
    assert r.status_code == 200 and r.json() == {
        "accepted": 0,
        "ignored": "ACKNOWLEDGEMENT notifications carry no state change",
    }
    # One good and one bad alert: 422 naming the bad field, and the good one is not kept either.
    r = await http.post(
        f"/api/v1/alerts/grafana?scope={scope}",
        json={"alerts": [GRAFANA["alerts"][0], {"labels": {"alertname": ["x"]}}]},
    )
    assert r.status_code == 422 and r.json()["problems"] == [
        "alerts[1].labels.alertname: must be a string, got list"
    ]
    r = await http.post(f"/api/v1/alerts/datadog?scope={scope}", content=b"{")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    # Signals that arrive while a workflow task is running reach the history when it completes.
    for _ in range(100):
        batches = await signalled_batches(client, scope)
        if sum(len(b.alerts) for b in batches) >= 4:
            break
        await asyncio.sleep(0.05)
    await client.get_workflow_handle(f"monitoring-{scope}").terminate("test cleanup")
    names = sorted(a.name for b in batches for a in b.alerts)
    assert names == ["Checkout 5xx", "Checkout p99 high", "Disk", "High memory"]
    assert {a.source for b in batches for a in b.alerts} == {"grafana", "datadog", "splunk"}


async def test_require_token_holds_with_auth_off(ts_env, tmp_path: Path):
    config = ArgusConfig.model_validate(
        {"state_dir": str(tmp_path), "gateway": {"flush_interval": "1ms", "require_token": True}}
    )
    assert not config.auth.enabled
    ctx = gateway_context(config, ts_env.client, tmp_path, token="hook-secret")
    body = [{"labels": {"alertname": "TokenProbe", "service": "payments"}}]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://a"
    ) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            # (bounded: a request let through would wait for the coalescer, which is not running)
            r = await asyncio.wait_for(http.post("/api/v2/alerts?scope=tok", json=body, headers=headers), 10)
            assert r.status_code == 401 and "bearer token" in r.text
        with pytest.raises(RPCError):  # nothing reached Temporal
            await ts_env.client.get_workflow_handle("monitoring-tok").describe()
        ctx.coalescer.start()
        try:
            r = await http.post(
                "/api/v2/alerts?scope=tok", json=body, headers={"Authorization": "Bearer hook-secret"}
            )
            assert r.status_code == 200
        finally:
            await ctx.coalescer.close()
        [batch] = await signalled_batches(ts_env.client, "tok")
        assert [a.labels["alertname"] for a in batch.alerts] == ["TokenProbe"]


# --- the audit's cases: one rule per field on every path ----------------------------------------
def webhook(*alerts: dict) -> dict:
    return {"version": "4", "status": "firing", "alerts": [{"status": "firing", **a} for a in alerts]}


def grafana(*alerts: dict) -> dict:
    return {"version": "1", "alerts": [{"status": "firing", **a} for a in alerts]}


def test_empty_label_values_are_dropped_on_every_path_so_a_relayed_alert_keeps_its_fingerprint():
    # Alertmanager drops `team: ""` before it stores the alert, so its webhook relays {alertname: X}.
    relayed = from_webhook(webhook({"labels": {"alertname": "X"}}), NOW)[0]
    posted = {"alertname": "X", "team": ""}
    [fast] = compact_from_v2([{"labels": dict(posted)}], NOW)
    assert fast["l"] == {"alertname": "X"}
    assert labels_fingerprints([fast["l"]]) == [relayed.fingerprint]
    for alert in (
        from_v2([{"labels": dict(posted)}], NOW)[0],
        from_webhook(webhook({"labels": dict(posted)}), NOW)[0],
        from_generic({"labels": dict(posted)} | {"name": "X"}, NOW)[0],
        from_grafana(grafana({"labels": dict(posted)}), NOW)[0],
    ):
        assert alert.labels == {"alertname": "X"} and alert.fingerprint == relayed.fingerprint


def test_an_empty_alertname_is_refused_naming_the_field_on_every_path():
    empty = {"alertname": "", "service": "db"}
    assert problems(compact_from_v2, [{"labels": dict(empty)}]) == [
        "[0].labels.alertname: label 'alertname' is required (a non-empty string)"
    ]
    assert problems(from_v2, [{"labels": dict(empty)}]) == [
        "[0].labels.alertname: label 'alertname' is required (a non-empty string)"
    ]
    assert problems(from_webhook, webhook({"labels": dict(empty)})) == [
        "alerts[0].labels.alertname: label 'alertname' is required (a non-empty string)"
    ]
    assert problems(from_generic, {"labels": dict(empty)}) == [
        "alert: give 'name' or labels.alertname (a non-empty string)"
    ]
    assert problems(from_grafana, grafana({"labels": dict(empty)})) == [
        "alerts[0].labels.alertname: field required"
    ]


@pytest.mark.parametrize("name", ["café", "x²", "ñ", "team-name", "1x"])
def test_label_names_are_prometheus_names_on_every_alertmanager_and_generic_path(name):
    labels = {"alertname": "X", name: "a"}
    expected = f"invalid label name {name!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)"
    assert problems(compact_from_v2, [{"labels": dict(labels)}]) == [f"[0].labels: {expected}"]
    assert problems(from_v2, [{"labels": dict(labels)}]) == [f"[0].labels: {expected}"]
    assert problems(from_webhook, webhook({"labels": dict(labels)})) == [f"alerts[0].labels: {expected}"]
    assert problems(from_generic, {"labels": dict(labels)}) == [f"alert.labels: {expected}"]
    with pytest.raises(ValueError, match="invalid label name"):  # the model, for every other source
        Alert(labels=labels, starts_at=NOW)
    # Grafana maps vendor names on purpose (and says so): `café` → `caf_`.
    assert "caf_" in from_grafana(grafana({"labels": {"alertname": "X", "café": "a"}}), NOW)[0].labels


def test_an_end_before_the_start_is_refused_naming_endsat():
    times = {"startsAt": "2030-01-01T00:00:00Z", "endsAt": "2029-01-01T00:00:00Z"}
    msg = "endsAt: 2029-01-01T00:00:00+00:00 is before startsAt 2030-01-01T00:00:00+00:00"
    for fn, payload, where in (
        (compact_from_v2, [{"labels": LABELS, **times}], "[0]."),
        (from_v2, [{"labels": LABELS, **times}], "[0]."),
        (
            from_webhook,
            {"version": "4", "alerts": [{"status": "resolved", "labels": LABELS, **times}]},
            "alerts[0].",
        ),
        (from_grafana, {"alerts": [{"status": "resolved", "labels": LABELS, **times}]}, "alerts[0]."),
        (from_generic, {"name": "X", "status": "resolved", **times}, "alert."),
    ):
        assert problems(fn, payload) == [f"{where}{msg} (start time must be before end time)"], fn
    # A resolution posted with its end only (Alertmanager takes it): the start is the end.
    [rec] = compact_from_v2([{"labels": LABELS, "endsAt": "2026-05-04T11:00:00Z"}], NOW)
    assert rec["s"] == "r" and rec["t"] == rec["e"] == datetime(2026, 5, 4, 11, tzinfo=UTC).timestamp()
    [a] = from_v2([{"labels": LABELS, "endsAt": "2026-05-04T11:00:00Z"}], NOW)
    assert a.starts_at == a.ends_at == datetime(2026, 5, 4, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["2026-W01-1", "2026-01-01", "2026-123", "20260101T100000Z", "2026-01-01T10", "10:00:00Z", "now"]
)
def test_timestamps_that_are_not_rfc3339_date_times_are_refused(text):
    msg = f"invalid timestamp {text!r} (use RFC 3339, e.g. 2026-01-01T00:00:00Z)"
    assert problems(compact_from_v2, [{"labels": LABELS, "startsAt": text}]) == [f"[0].startsAt: {msg}"]
    assert problems(from_webhook, webhook({"labels": LABELS, "startsAt": text})) == [
        f"alerts[0].startsAt: {msg}"
    ]
    assert problems(from_grafana, grafana({"labels": LABELS, "startsAt": text})) == [
        f"alerts[0].startsAt: {msg}"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01t10:00:00z", datetime(2026, 1, 1, 10, tzinfo=UTC)),  # RFC 3339 allows lowercase
        ("2026-01-01T10:00:00.123456789Z", datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T12:00:00+02:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01 10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),  # RFC 3339's space
        ("2026-01-01T10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_rfc3339_timestamps_are_accepted(text, expected):
    [rec] = compact_from_v2([{"labels": dict(LABELS), "startsAt": text}], NOW)
    assert rec["t"] == expected.timestamp()
    assert from_webhook(webhook({"labels": LABELS, "startsAt": text}), NOW)[0].starts_at == expected


def test_label_values_that_are_numbers_are_refused_on_the_alertmanager_and_generic_paths():
    # 1, 1.0 and 1e0 would be three fingerprints of one alert; Alertmanager's v2 API refuses them.
    raw = b'[{"labels":{"alertname":"X","code":1.0}}]'
    assert problems(compact_from_v2, orjson.loads(raw)) == ["[0].labels.code: must be a string, got float"]
    assert problems(from_v2, orjson.loads(raw)) == ["[0].labels.code: must be a string, got float"]
    assert problems(from_webhook, webhook({"labels": {"alertname": "X", "code": 1}})) == [
        "alerts[0].labels.code: must be a string, got int"
    ]
    assert problems(from_generic, {"name": "X", "labels": {"code": 1}}) == [
        "alert.labels.code: must be a string, got int"
    ]
    assert problems(from_grafana, grafana({"labels": {"alertname": "X", "code": 1}})) == [
        "alerts[0].labels.code: must be a string, got int"
    ]


def test_fields_of_the_wrong_type_are_refused_not_dropped():
    assert problems(from_datadog, {**DATADOG, "tags": {"env": "prod"}}) == [
        'tags: must be a string ("$TAGS") or a list of strings, got dict'
    ]
    assert problems(from_datadog, {**DATADOG, "tags": 7}) == [
        'tags: must be a string ("$TAGS") or a list of strings, got int'
    ]
    assert problems(from_datadog, {**DATADOG, "tags": ["env:prod", 3]}) == [
        "tags[1]: must be a string, got int"
    ]
    good = GRAFANA["alerts"][0]
    assert problems(from_grafana, grafana({**good, "values": {"B": "abc", "C": 1}})) == [
        "alerts[0].values.B: must be a number, got str"
    ]
    assert problems(from_grafana, grafana({**good, "dashboardURL": 5})) == [
        "alerts[0].dashboardURL: must be a string, got int"
    ]
    assert from_grafana(grafana({**good, "values": {"A": None, "B": 2}}), NOW)[0].value == 2, "null: no value"
    legacy = {"ruleName": "CPU", "state": "alerting"}
    assert problems(from_grafana, {**legacy, "ruleUrl": 5, "message": ["x"]}) == [
        "message: must be a string, got list",
        "ruleUrl: must be a string, got int",
    ]
    assert problems(from_grafana, {**legacy, "evalMatches": [{"metric": 5, "value": "lots"}]}) == [
        "evalMatches[0].metric: must be a string, got int",
        "evalMatches[0].value: must be a number, got str",
    ]
    assert problems(from_generic, {"name": "X", "source": 5}) == ["alert.source: must be a string, got int"]
    assert problems(from_generic, {"name": "X", "source": {"a": 1}}) == [
        "alert.source: must be a string, got dict"
    ]
    nagios = {"notification_type": "PROBLEM", "host_name": "db-1", "state": "CRITICAL"}
    for attempt in ({"a": 1}, "x", 0, "1.5", True):
        assert problems(from_nagios, {**nagios, "attempt": attempt}) == [
            f"attempt: must be a whole number from 1 ($SERVICEATTEMPT$), got {attempt!r}"
        ]
    assert from_nagios({**nagios, "attempt": "3"}, NOW)[0].annotations["nagios_attempt"] == "3"
    assert "nagios_attempt" not in from_nagios({**nagios, "attempt": ""}, NOW)[0].annotations


def test_vendor_names_that_map_to_one_label_never_lose_a_value_silently():
    # Grafana: identity labels; two values for one label is the rule's mistake: refused, both named.
    both = {"alertname": "X", "team-name": "a", "team_name": "b"}
    assert problems(from_grafana, grafana({"labels": both})) == [
        "alerts[0].labels: labels 'team-name' and 'team_name' both map to label 'team_name'"
        " with different values; rename one"
    ]
    same = from_grafana(grafana({"labels": {**both, "team_name": "a"}}), NOW)[0]
    assert same.labels == {"alertname": "X", "team_name": "a"}, "the same value twice loses nothing"
    assert problems(
        from_grafana, {"ruleName": "CPU", "state": "alerting", "tags": {"a.b": "1", "a-b": "2"}}
    ) == ["tags: labels 'a-b' and 'a.b' both map to label 'a_b' with different values; rename one"]
    # Splunk: result fields are annotations; all are kept, deterministically named.
    [a] = from_splunk({"search_name": "x", "result": {"a.b": "3", "a-b": "1", "a_b": "2"}}, NOW)
    assert {k: v for k, v in a.annotations.items() if k.startswith("result_")} == {
        "result_a_b": "2",  # the field already spelt so keeps its name
        "result_a_b_2": "1",
        "result_a_b_3": "3",
    }
    [b] = from_splunk({"search_name": "x", "result": {"a_b": "2", "a-b": "1", "a.b": "3"}}, NOW)
    assert b.annotations == a.annotations, "whatever the order of the fields"
    # Splunk `env` and `environment`: both stay when they differ; one is `environment` otherwise.
    [c] = from_splunk({"search_name": "x", "result": {"env": "dev", "environment": "prod"}}, NOW)
    assert c.labels == {"alertname": "x", "env": "dev", "environment": "prod"}
    [d] = from_splunk({"search_name": "x", "result": {"env": "prod", "environment": "prod"}}, NOW)
    [e] = from_splunk({"search_name": "x", "result": {"env": "prod"}}, NOW)
    assert d.labels == e.labels == {"alertname": "x", "environment": "prod"}
    # Datadog: a tag key given twice (multi-valued tags) or two keys that map to one keep all values.
    assert tag_labels("role:web,team:a,role:db,a-b:1,a_b:2") == {"role": "db,web", "team": "a", "a_b": "1,2"}
    assert tag_labels("role:db,role:web") == tag_labels("role:web,role:db")


def _doc(heading: str) -> str:
    text = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text()
    start = text.index("```", text.index(heading))
    return text[text.index("\n", start) + 1 : text.index("```", start + 3)]


def test_the_documented_datadog_template_sends_every_field_the_normaliser_reads():
    template = orjson.loads(_doc("Datadog webhook payload"))
    assert all(v.startswith("$") for v in template.values()), "Datadog variables only"
    filled = {
        **template,
        "alert_title": "Checkout p99 high",
        "transition": "Triggered",
        "date": "1777896000000",
    }
    filled |= {"scope": "host:web-1", "tags": "env:prod", "alert_type": "error", "value": "1.42"}
    filled = {k: ("" if isinstance(v, str) and v.startswith("$") else v) for k, v in filled.items()}
    assert from_datadog(filled, NOW)[0].value == 1.42
    # A variable the Datadog site leaves unexpanded is no value, not a refused notification.
    assert from_datadog({**filled, "value": "$METRIC_VALUE"}, NOW)[0].value is None


def test_the_documented_nagios_command_json_escapes_plugin_output():
    block = _doc("Nagios command")
    command = block[block.index("command_line") + len("command_line") : block.rindex("}")]
    command = command.replace("\\\n", " ")
    assert " | " in command, "the JSON is built by a tool that escapes it, then piped to curl"
    producer = command.split(" | ")[0]
    macros = {
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "win-1",
        "HOSTADDRESS": "10.0.0.5",
        "SERVICEDESC": "Disk C",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": 'c:\\ - total: 50.00 Gb\tused: 49.10 Gb (98%) "C:\\Windows"',
        "TIMET": "1777896000",
        "HOSTGROUPNAME": "windows",
        "SERVICEATTEMPT": "3",
    }
    # What Nagios runs: each $MACRO$ replaced by its value, $$ by $.
    line = re.sub(r"\$([A-Z]*)\$", lambda m: macros[m.group(1)] if m.group(1) else "$", producer)
    out = subprocess.run(
        ["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    crit, _ = from_nagios(orjson.loads(out), NOW)
    assert crit.annotations["description"] == macros["SERVICEOUTPUT"]
    assert crit.annotations["nagios_attempt"] == "3" and crit.labels["host"] == "win-1"
