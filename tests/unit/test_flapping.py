"""Flap suppression as the monitoring workflow drives the router: `sweep` and `due` run between
batches, so a resolution is told (and its entry goes) before the alert fires again."""

from __future__ import annotations

from datetime import timedelta

from argus.analysis.routing import Router
from argus.models import RouteDecisionKind
from tests.unit.test_routing import T0, alert, router

ROUTE = {"receiver": "oncall", "group_by": ["service"], "group_wait": "0s", "group_interval": "5m"}


def flip(r: Router, status: str, at, **labels):  # type: ignore[no-untyped-def]
    """One batch, then what the workflow does after it (sweep, then the due groups)."""
    [d] = r.ingest([alert("Flappy", status=status, at=at, **labels)], at)
    r.sweep(at)
    return d, r.due(at)


def told(actions, name: str = "Flappy") -> list[str]:  # type: ignore[no-untyped-def]
    return [a.status.value for act in actions for a in act.alerts if a.labels["alertname"] == name]


def test_an_alert_flipping_slower_than_the_updates_is_held_back_then_told_once_stable():
    r = router(route=ROUTE, flap_threshold=4, flap_window="10m", correlation={"enabled": False})
    t = T0
    r.ingest([alert("Flappy", service="api", at=t)], t)
    [opened] = r.due(t)
    assert opened.kind == "open"
    kinds, heard = [], []
    for i in range(12):  # a state change every 30 s, each resolution told before the next firing
        t += timedelta(seconds=30)
        d, actions = flip(r, "resolved" if i % 2 == 0 else "firing", t, service="api")
        kinds.append(d.kind)
        heard.append(told(actions))
    assert kinds[:3] == [RouteDecisionKind.RESOLVED, RouteDecisionKind.GROUPED, RouteDecisionKind.RESOLVED]
    assert set(kinds[3:]) == {RouteDecisionKind.FLAPPING}, "the 4th change within 10m, though told apart"
    assert "4 state changes" in r.state.groups[opened.group_key].decisions[0].reason
    assert heard[0] == heard[2] == ["resolved"], "resolutions are told within seconds"
    assert all(h == [] for h in heard[3:]), "nothing more while it flaps"

    # It stays firing: once flap_window passes without a change, the incident hears it once.
    last = t
    assert r.next_deadline() <= last + timedelta(minutes=10), "the loop wakes when it may be stable"
    t = last + timedelta(minutes=9)
    r.ingest([alert("Flappy", service="api", at=last)], t)  # a refresh, not a change
    assert r.sweep(t) == [] and told(r.due(t)) == []
    t = last + timedelta(minutes=10)
    released = r.sweep(t)
    assert [d.kind for d in released] == [RouteDecisionKind.RELEASED]
    assert "no longer flapping" in released[0].reason
    assert told(r.due(t + timedelta(minutes=5))) == ["firing"]


def test_a_flapping_alert_that_settles_resolved_is_told_resolved_and_then_forgotten():
    r = router(route=ROUTE, flap_threshold=3, flap_window="10m", correlation={"enabled": False})
    r.ingest([alert("Steady", service="api"), alert("Flappy", service="api")], T0)
    r.due(T0)
    t = T0
    for status in ("resolved", "firing", "resolved"):
        t += timedelta(seconds=30)
        d, _ = flip(r, status, t, service="api")
    assert d.kind == RouteDecisionKind.FLAPPING
    group = next(iter(r.state.groups.values()))
    t += timedelta(minutes=10)
    assert [d.kind for d in r.sweep(t) if d.alertname == "Flappy"] == [RouteDecisionKind.RELEASED]
    assert told(r.due(t)) == ["resolved"], "the incident learns how it settled"
    assert "Flappy" not in {e.alert.name for e in group.alerts.values()}
    assert r.state.flips == {} or all(t - ts[-1] <= timedelta(minutes=10) for ts in r.state.flips.values())
    r.sweep(t + timedelta(minutes=11))
    assert r.state.flips == {}, "remembered changes go once flap_window has passed"


def test_a_group_whose_alerts_are_all_inhibited_when_due_waits_for_a_change():
    """Before, such a group was due on every pass (its deadline stayed in the past): the
    monitoring workflow woke every millisecond until the inhibition ended, recording the
    inhibition each time."""
    r = router(
        inhibit_rules=[
            {
                "source_matchers": ['alertname="DatacenterDown"'],
                "target_matchers": ['alertname!="DatacenterDown"'],
            }
        ],
        correlation={"enabled": False},
    )
    r.ingest([alert("HighLatency", service="checkout")], T0)
    r.ingest([alert("DatacenterDown", service="dc")], T0 + timedelta(seconds=5))
    t = T0 + timedelta(seconds=40)
    r.sweep(t)
    assert [a.labels["alertname"] for a in r.due(t)] == ["DatacenterDown"]
    recorded = r.state.counts.get("inhibited", 0)
    assert recorded == 1
    for s in (41, 42, 60):
        now = T0 + timedelta(seconds=s)
        r.sweep(now)
        assert r.due(now) == []
        assert r.next_deadline() > now, "not due again until something changes"
    assert r.state.counts.get("inhibited", 0) == recorded
    # The inhibitor resolves: the held group is due again and opens.
    t = T0 + timedelta(seconds=90)
    r.ingest([alert("DatacenterDown", service="dc", status="resolved", at=t)], t)
    r.sweep(t)
    assert [a.labels["alertname"] for a in r.due(t) if a.kind == "open"] == ["HighLatency"]


def test_a_group_held_when_due_opens_again_after_repeat_interval_once_its_incident_closed():
    """A group held back once (flapping at its group_wait) opens when it settles; after its
    incident closes with the alert still firing, it opens again after repeat_interval, as any."""
    r = router(
        route={**ROUTE, "group_wait": "30s", "repeat_interval": "4h"},
        flap_threshold=3,
        flap_window="10m",
        correlation={"enabled": False},
    )
    t = T0
    for i, status in enumerate(["firing", "resolved", "firing", "resolved", "firing"]):
        t = T0 + timedelta(seconds=4 * i)
        r.ingest([alert("Flappy", status=status, at=T0, service="api")], t)
    r.sweep(T0 + timedelta(seconds=30))
    assert r.due(T0 + timedelta(seconds=30)) == [], "held as flapping at group_wait"
    opened_at = None
    for m in range(1, 12):  # refreshed every minute; it settles after flap_window
        now = T0 + timedelta(minutes=m)
        r.ingest([alert("Flappy", at=T0, service="api")], now)
        r.sweep(now)
        if any(a.kind == "open" for a in r.due(now)):
            opened_at = now
            break
    assert opened_at is not None, "opened once stable"
    [key] = r.state.groups
    closed = opened_at + timedelta(minutes=30)
    r.incident_closed(key, closed)
    reopened = []
    for m in range(0, 5 * 60, 1):
        now = closed + timedelta(minutes=m)
        r.ingest([alert("Flappy", at=T0, service="api")], now)
        r.sweep(now)
        reopened += [now for a in r.due(now) if a.kind == "open"]
        if reopened:
            break
    assert reopened and reopened[0] - closed == timedelta(hours=4)
