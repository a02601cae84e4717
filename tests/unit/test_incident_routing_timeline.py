"""Routing decisions in an incident's timeline: the cap stays, and what it leaves out is counted in
one entry (shown by `argus incidents show`) instead of disappearing without a trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from temporalio import workflow

from argus.analysis.routing import Router, RouterState
from argus.models import Alert, AlertsSignal, IncidentState, RouteDecision, Severity
from argus.models.config import RoutingConfig
from argus.workers.cli import _print_incident
from argus.workers.routing_view import routing_table
from argus.workflows.incident import IncidentWorkflow, omitted_decisions

T0 = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)


def decision(kind: str, i: int) -> RouteDecision:
    return RouteDecision(fingerprint=f"fp{i}", alertname=f"A{i}", kind=kind, reason=f"{kind} #{i}")


@pytest.fixture
def incident(monkeypatch) -> IncidentWorkflow:
    monkeypatch.setattr(workflow, "now", lambda: T0)  # the only workflow API the signal handler uses
    wf = IncidentWorkflow()
    wf.s = IncidentState(
        incident_id="inc-1", title="t", service="api", severity=Severity.CRITICAL, group_key="g", opened_at=T0
    )
    return wf


def inhibited_update() -> AlertsSignal:
    """What the router sends an open incident when 30 warnings are inhibited by its critical alert."""
    cfg = RoutingConfig.model_validate(
        {
            "route": {"receiver": "d", "group_by": ["service"], "group_wait": "0s", "group_interval": "1m"},
            "correlation": {"enabled": False},
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["service"],
                }
            ],
        }
    )
    r = Router(cfg, RouterState(), "s")
    r.ingest(
        [Alert(labels={"alertname": "Down", "service": "api", "severity": "critical"}, starts_at=T0)], T0
    )
    assert [a.kind for a in r.due(T0)] == ["open"]
    t = T0 + timedelta(seconds=5)
    warnings = [
        Alert(labels={"alertname": f"W{i}", "service": "api", "severity": "warning"}, starts_at=t)
        for i in range(30)
    ]
    r.ingest(warnings, t)
    [update] = r.due(T0 + timedelta(minutes=1))
    assert len(update.decisions) == 30
    return AlertsSignal(alerts=update.alerts, decisions=update.decisions)


def test_omitted_decisions_counts_by_kind_most_first_and_is_deterministic():
    left = [decision("inhibited", i) for i in range(3)] + [decision("silenced", 9), decision("grouped", 7)]
    message, data = omitted_decisions(left)
    assert message == "5 earlier routing decisions not listed: 3 inhibited, 1 grouped, 1 silenced (5 alerts)"
    assert data["decision"] == "omitted" and data["omitted"] == 5
    assert list(data["kinds"].items()) == [("inhibited", 3), ("grouped", 1), ("silenced", 1)]
    assert omitted_decisions(list(reversed(left))) == (message, data)


def test_an_update_with_more_decisions_than_the_cap_says_how_many_were_left_out(incident):
    incident.add_alerts(inhibited_update())
    routing = [e for e in incident.s.timeline if e.kind == "routing"]
    assert len(routing) == 11, "the cap of 10 stays, plus one entry for the rest"
    summary = routing[0]
    assert summary.message.startswith("20 earlier routing decisions not listed: 20 inhibited")
    assert summary.data["omitted"] == 20 and summary.data["kinds"] == {"inhibited": 20}
    assert all(e.data["decision"] == "inhibited" for e in routing[1:])
    # Every decision is either listed or counted.
    assert summary.data["omitted"] + len(routing) - 1 == 30


def test_quiet_decisions_are_neither_listed_nor_counted_and_a_small_update_has_no_summary(incident):
    # The cap applies to the news only: 41 quiet decisions after 3 silenced ones hide nothing.
    quiet = [decision("duplicate", i) for i in range(40)] + [decision("new_group", 99)]
    incident.add_alerts(
        AlertsSignal(alerts=[], decisions=[*(decision("silenced", i) for i in range(3)), *quiet])
    )
    routing = [e for e in incident.s.timeline if e.kind == "routing"]
    assert [e.data["decision"] for e in routing] == ["silenced"] * 3


def test_the_opening_keeps_twenty_and_counts_the_rest(incident):
    incident._log_routing([decision("grouped", i) for i in range(25)], 20)
    routing = [e for e in incident.s.timeline if e.kind == "routing"]
    assert len(routing) == 21 and routing[0].data["omitted"] == 5
    assert routing[1].message == "grouped #5", "the latest twenty follow, oldest first"


def test_incidents_show_renders_the_left_out_count(incident, capsys):
    incident.add_alerts(inhibited_update())
    _print_incident(incident.s)  # the timeline section of `argus incidents show`
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "20 earlier routing decisions not listed: 20 inhibited" in printed
    console = Console(record=True, width=200)
    console.print(routing_table(incident.s, []))  # its "Alert Router decisions" table
    text = console.export_text()
    assert "omitted" in text and "20 earlier routing decisions not listed: 20 inhibited" in text


def test_decisions_the_router_did_not_keep_reach_the_timeline_as_a_count(incident):
    """A group keeps its latest MAX_GROUP_DECISIONS (50) explanations until its incident is told;
    the older ones it counts, and the count travels with the update."""
    from argus.analysis.routing import MAX_GROUP_DECISIONS

    cfg = RoutingConfig.model_validate(
        {
            "route": {"receiver": "d", "group_by": ["service"], "group_wait": "0s", "group_interval": "1m"},
            "correlation": {"enabled": False},
        }
    )
    r = Router(cfg, RouterState(), "s")
    r.ingest([Alert(labels={"alertname": "Down", "service": "api"}, starts_at=T0)], T0)
    r.due(T0)
    t = T0 + timedelta(seconds=5)
    r.ingest([Alert(labels={"alertname": f"W{i}", "service": "api"}, starts_at=t) for i in range(70)], t)
    [update] = r.due(T0 + timedelta(minutes=1))
    assert len(update.decisions) == MAX_GROUP_DECISIONS and update.decisions_dropped == 20
    incident.add_alerts(
        AlertsSignal(
            alerts=update.alerts, decisions=update.decisions, decisions_dropped=update.decisions_dropped
        )
    )
    [summary] = [e for e in incident.s.timeline if e.kind == "routing" and e.data["decision"] == "omitted"]
    assert summary.message == (
        "60 earlier routing decisions not listed: 40 grouped, 20 not kept by the router (40 alerts)"
    )
    # The count starts again after each update.
    t += timedelta(minutes=2)
    r.ingest([Alert(labels={"alertname": "X", "service": "api"}, starts_at=t)], t)
    [again] = r.due(t + timedelta(minutes=1))
    assert again.decisions_dropped == 0
