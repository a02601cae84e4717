"""The Alert Router against Alertmanager's semantics, plus ARGUS's correlation and explanations."""

from __future__ import annotations

import base64
import random
import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from argus.analysis.correlation import shortest_path
from argus.analysis.routing import Router, RouterState, in_time_interval, resolve_routes
from argus.models import Alert, AlertStatus, Matcher, Route, RouteDecisionKind, Silence
from argus.models.agents import AlertQuery
from argus.models.config import RoutingConfig
from argus.models.routing import TimeInterval
from argus.workers.config_checks import monitoring_problems

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
TOPOLOGY = [
    ("frontend", "checkout"),
    ("checkout", "payments"),
    ("payments", "payments-db"),
    ("search", "index"),
]


def alert(
    name: str = "HighLatency", at: datetime = T0, status: str = "firing", source: str = "evaluator", **labels
):
    return Alert(
        labels={"alertname": name, **labels},
        status=AlertStatus(status),
        starts_at=at,
        ends_at=at if status == "resolved" else None,
        source=source,
    )


def silence(
    matcher: str, at: datetime = T0, lasts: timedelta = timedelta(hours=1), sid: str = "sil-1"
) -> Silence:
    return Silence(
        id=sid, matchers=[Matcher.parse(matcher)], starts_at=at, ends_at=at + lasts, created_by="rita"
    )


def router(**cfg) -> Router:
    base = {
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "correlation": {"topology": TOPOLOGY},
    }
    base.update(cfg)
    return Router(RoutingConfig.model_validate(base), RouterState(), "test")


def kinds(decisions) -> list[str]:
    return [d.kind.value for d in decisions]


# --- routing tree --------------------------------------------------------------------------------
def test_tree_walk_matches_alertmanager_continue_and_inheritance():
    root = Route.model_validate(
        {
            "receiver": "default",
            "group_by": ["alertname"],
            "group_wait": "10s",
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "receiver": "dba",
                    "continue": True,
                    "mute_time_intervals": ["nights"],
                    "routes": [
                        {"matchers": ['severity="critical"'], "receiver": "dba-page", "group_wait": "1s"}
                    ],
                },
                {"matchers": ['service=~"pay.*"'], "receiver": "payments"},
                {"matchers": ['service=~"pay.*"'], "receiver": "never"},
            ],
        }
    )
    leaves = resolve_routes(
        root, {"alertname": "X", "team": "db", "severity": "critical", "service": "payments"}
    )
    assert [r.receiver for r in leaves] == ["dba-page", "payments"]
    page = leaves[0]
    assert page.path == "root/0/0" and page.group_wait == timedelta(seconds=1)
    assert page.group_by == ["alertname"], "group_by is inherited"
    # Alertmanager does not inherit time intervals: the child of the muted route is not muted.
    assert page.mute_time_intervals == []
    assert resolve_routes(root, {"alertname": "X", "team": "db"})[0].mute_time_intervals == ["nights"]
    # Regex matchers are anchored: "xpay" does not match pay.*; nothing matches: the root.
    assert [r.receiver for r in resolve_routes(root, {"alertname": "X", "service": "xpay"})] == ["default"]


def test_without_group_by_everything_is_one_group_like_alertmanager():
    r = router(route={"receiver": "r", "group_wait": "0s"})
    r.ingest([alert("A", service="x"), alert("B", service="y")], T0)
    assert len(r.state.groups) == 1
    assert next(iter(r.state.groups)) == "root:{}"


def test_group_by_all_labels_with_ellipsis():
    r = router(route={"receiver": "r", "group_by": ["..."]}, correlation={"enabled": False})
    r.ingest([alert("A", service="x", pod="1"), alert("A", service="x", pod="2")], T0)
    assert len(r.state.groups) == 2


def test_matcher_parsing_and_errors():
    m = Matcher.parse('alertname=~"High.*|Disk\\"Full"')
    assert (
        m.op.value == "=~" and m.matches({"alertname": "HighCpu"}) and m.matches({"alertname": 'Disk"Full'})
    )
    assert not m.matches({"alertname": "xHighCpu"})
    assert Matcher.parse("env!=prod").matches({}), "a missing label is the empty string"
    with pytest.raises(ValueError, match="invalid matcher"):
        Matcher.parse("no operator here")
    with pytest.raises(ValidationError, match="bad regex"):
        Matcher.model_validate('service=~"(unclosed"')


# --- grouping timers -----------------------------------------------------------------------------
def test_group_wait_then_interval_then_repeat_after_close():
    r = router()
    r.ingest([alert(service="checkout")], T0)
    assert r.due(T0 + timedelta(seconds=29)) == []
    [opened] = r.due(T0 + timedelta(seconds=30))
    assert opened.kind == "open" and opened.receiver == "oncall"
    assert "group_wait" in opened.decisions[0].reason
    # A new alert in the open group waits for group_interval.
    r.ingest([alert(service="checkout", pod="2")], T0 + timedelta(seconds=40))
    assert r.due(T0 + timedelta(minutes=5)) == []
    [upd] = r.due(T0 + timedelta(seconds=30) + timedelta(minutes=5))
    assert upd.kind == "update" and len(upd.alerts) == 1
    # Incident closed while alerts still fire: a new incident only after repeat_interval.
    r.incident_closed(opened.group_key, T0 + timedelta(minutes=10))
    assert r.due(T0 + timedelta(hours=4)) == []
    assert [a.kind for a in r.due(T0 + timedelta(minutes=10, hours=4))] == ["open"]


def test_resolution_is_sent_without_waiting_for_group_interval():
    r = router()
    r.ingest([alert(service="checkout")], T0)
    r.due(T0 + timedelta(seconds=30))
    r.ingest([alert(service="checkout", status="resolved")], T0 + timedelta(seconds=31))
    [upd] = r.due(T0 + timedelta(seconds=31))
    assert upd.alerts[0].status == AlertStatus.RESOLVED


# --- inhibition ----------------------------------------------------------------------------------
def test_inhibition_equal_treats_missing_labels_as_equal():
    r = router(
        inhibit_rules=[
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["cluster"],
            }
        ],
        correlation={"enabled": False},
    )
    r.ingest([alert("NodeDown", severity="critical", service="n")], T0)
    [d] = r.ingest([alert("HighLatency", severity="warning", service="s")], T0)
    assert d.kind == RouteDecisionKind.INHIBITED, "neither has `cluster`: equal, as in Alertmanager"
    assert 'equal cluster=""' in d.reason and "NodeDown" in d.reason
    [d] = r.ingest([alert("HighLatency", severity="warning", service="s", cluster="eu")], T0)
    assert d.kind == RouteDecisionKind.NEW_GROUP, "cluster differs: not inhibited"


def test_two_sided_alerts_do_not_inhibit_each_other_but_a_pure_source_does():
    r = router(
        inhibit_rules=[{"source_matchers": ['alertname=~"A|B"'], "target_matchers": ['alertname=~"B|C"']}],
        correlation={"enabled": False},
    )
    r.ingest([alert("B", service="x")], T0)
    [d] = r.ingest([alert("B", service="y")], T0)
    assert d.kind != RouteDecisionKind.INHIBITED, "both match source and target: no mutual inhibition"
    [d] = r.ingest([alert("C", service="z")], T0)
    assert d.kind == RouteDecisionKind.INHIBITED, "C is only a target; B is a source"
    r.ingest([alert("A", service="w")], T0)
    [d] = r.ingest([alert("B", service="v")], T0)
    assert d.kind == RouteDecisionKind.INHIBITED and "by firing A" in d.reason


def test_silenced_source_still_inhibits_and_inhibited_alert_is_released_when_source_resolves():
    r = router(
        inhibit_rules=[
            {
                "source_matchers": ['alertname="DatacenterDown"'],
                "target_matchers": ['alertname!="DatacenterDown"'],
            }
        ],
        correlation={"enabled": False},
    )
    r.add_silence(
        Silence(
            id="s1",
            matchers=[Matcher.parse('alertname="DatacenterDown"')],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            created_by="ann",
            comment="known",
        )
    )
    [d] = r.ingest([alert("DatacenterDown", service="dc")], T0)
    assert d.kind == RouteDecisionKind.SILENCED and "ann" in d.reason and "known" in d.reason
    [d] = r.ingest([alert("HighLatency", service="checkout")], T0)
    assert d.kind == RouteDecisionKind.INHIBITED, "a silenced alert still inhibits (Alertmanager)"
    r.ingest([alert("DatacenterDown", service="dc", status="resolved")], T0 + timedelta(minutes=1))
    released = r.sweep(T0 + timedelta(minutes=1))
    assert kinds(released) == ["released"]
    assert "inhibited no longer applies" in released[0].reason
    assert "root:{" in released[0].group_key


# --- silences, maintenance, time intervals -------------------------------------------------------
def test_silence_expiry_releases_the_alert_into_a_group():
    r = router()
    r.add_silence(
        Silence(
            id="s2",
            matchers=[Matcher.parse('service="checkout"')],
            starts_at=T0,
            ends_at=T0 + timedelta(minutes=10),
            created_by="bob",
            comment="deploy",
        )
    )
    [d] = r.ingest([alert(service="checkout")], T0)
    assert d.kind == RouteDecisionKind.SILENCED
    assert r.next_deadline() == T0 + timedelta(minutes=5), "resolve_timeout of the held alert comes first"
    # The source keeps sending it; the silence ends at T0+10m.
    r.ingest([alert(service="checkout")], T0 + timedelta(minutes=4))
    r.ingest([alert(service="checkout")], T0 + timedelta(minutes=8))
    assert r.sweep(T0 + timedelta(minutes=9)) == []
    [d] = r.sweep(T0 + timedelta(minutes=10))
    assert d.kind == RouteDecisionKind.RELEASED and "silenced no longer applies" in d.reason
    assert [a.kind for a in r.due(T0 + timedelta(minutes=10, seconds=30))] == ["open"]


def test_held_alert_that_stops_firing_is_forgotten():
    r = router()
    r.add_silence(
        Silence(
            id="s3",
            matchers=[Matcher.parse('service="x"')],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=2),
            created_by="c",
        )
    )
    r.ingest([alert(service="x")], T0)
    [d] = r.ingest([alert(service="x", status="resolved")], T0 + timedelta(minutes=1))
    assert d.kind == RouteDecisionKind.IGNORED and "while it was silenced" in d.reason
    assert r.state.held == {}


def test_maintenance_window_and_mute_vs_active_intervals():
    r = router(
        route={
            "receiver": "r",
            "group_by": ["alertname"],
            "routes": [
                {"matchers": ['team="web"'], "mute_time_intervals": ["lunch"]},
                {"matchers": ['team="batch"'], "active_time_intervals": ["business"]},
            ],
        },
        time_intervals=[
            {"name": "lunch", "time_intervals": [{"times": [{"start_time": "12:00", "end_time": "13:00"}]}]},
            {
                "name": "business",
                "time_intervals": [
                    {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}
                ],
            },
        ],
        maintenance=[
            {
                "name": "db upgrade",
                "matchers": ['service="db"'],
                "starts_at": T0.isoformat(),
                "ends_at": (T0 + timedelta(hours=1)).isoformat(),
            }
        ],
        correlation={"enabled": False},
    )
    [d] = r.ingest([alert("X", service="db")], T0)
    assert d.kind == RouteDecisionKind.MAINTENANCE and "db upgrade" in d.reason
    noon = T0.replace(hour=12, minute=30)
    [d] = r.ingest([alert("W", team="web")], noon)
    assert d.kind == RouteDecisionKind.MUTED and "lunch" in d.reason
    [d] = r.ingest([alert("B", team="batch")], noon)
    assert d.kind == RouteDecisionKind.NEW_GROUP, "inside business hours: active"
    saturday = T0 + timedelta(days=5)
    [d] = r.ingest([alert("B2", team="batch")], saturday)
    assert d.kind == RouteDecisionKind.MUTED and "outside its active time intervals" in d.reason


def test_time_interval_negative_days_location_and_ranges():
    last_days = TimeInterval.model_validate({"name": "eom", "time_intervals": [{"days_of_month": ["-3:-1"]}]})
    assert in_time_interval(last_days, datetime(2026, 2, 27, tzinfo=UTC))  # Feb 2026 has 28 days
    assert not in_time_interval(last_days, datetime(2026, 2, 25, tzinfo=UTC))
    assert in_time_interval(last_days, datetime(2026, 3, 31, tzinfo=UTC))
    tokyo = TimeInterval.model_validate(
        {
            "name": "t",
            "time_intervals": [
                {
                    "times": [{"start_time": "09:00", "end_time": "10:00"}],
                    "location": "Asia/Tokyo",
                    "months": ["march:april"],
                    "years": ["2026"],
                }
            ],
        }
    )
    assert in_time_interval(tokyo, datetime(2026, 3, 2, 0, 30, tzinfo=UTC))  # 09:30 in Tokyo
    assert not in_time_interval(tokyo, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert not in_time_interval(tokyo, datetime(2027, 3, 2, 0, 30, tzinfo=UTC))


def test_flapping_alert_is_held_back_and_explained():
    r = router(flap_threshold=3, flap_window="10m")
    r.ingest([alert(service="s")], T0)
    r.due(T0 + timedelta(seconds=30))
    states = ["resolved", "firing", "resolved"]
    out = []
    for i, st in enumerate(states, 1):
        out += r.ingest(
            [alert(service="s", status=st, at=T0 + timedelta(minutes=i))], T0 + timedelta(minutes=i)
        )
    assert out[-1].kind == RouteDecisionKind.FLAPPING and "3 state changes" in out[-1].reason


# --- correlation ---------------------------------------------------------------------------------
def test_log_spike_and_latency_on_same_service_join_one_group():
    r = router()
    r.ingest([alert("HighLatency", service="payments")], T0)
    [d] = r.ingest(
        [alert("LogErrorSpike", service="payments", source="elasticsearch")], T0 + timedelta(seconds=20)
    )
    assert d.kind == RouteDecisionKind.CORRELATED
    assert "same service 'payments'" in d.reason and "elasticsearch" in d.reason
    [opened] = r.due(T0 + timedelta(seconds=30))
    assert {a.name for a in opened.alerts} == {"HighLatency", "LogErrorSpike"}
    # Later copies of the attached alert stay in that group (no second group appears).
    [d] = r.ingest(
        [alert("LogErrorSpike", service="payments", source="elasticsearch")], T0 + timedelta(minutes=1)
    )
    assert d.kind == RouteDecisionKind.DUPLICATE and len(r.state.groups) == 1


def test_topology_neighbours_join_the_first_group_and_far_or_late_ones_do_not():
    r = router()
    r.ingest([alert("DbDown", service="payments-db")], T0)
    [d] = r.ingest([alert("HighErrorRate", service="checkout")], T0 + timedelta(seconds=5))
    assert d.kind == RouteDecisionKind.CORRELATED
    assert "checkout depends on payments, payments depends on payments-db (2 hops" in d.reason
    [d] = r.ingest([alert("HighLatency", service="frontend")], T0 + timedelta(seconds=6))
    assert d.kind == RouteDecisionKind.CORRELATED, "the group now holds checkout, one hop from frontend"
    assert "frontend depends on checkout (1 hop" in d.reason
    far = router()
    far.ingest([alert("DbDown", service="payments-db")], T0)
    [d] = far.ingest([alert("HighLatency", service="frontend")], T0 + timedelta(seconds=6))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "3 hops: beyond max_hops 2"
    [d] = r.ingest([alert("IndexLag", service="index")], T0 + timedelta(seconds=7))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "not connected"
    [d] = r.ingest([alert("CpuHigh", service="payments")], T0 + timedelta(minutes=11))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "outside the 10m correlation window"


def test_correlation_never_crosses_receivers():
    r = router(
        route={
            "receiver": "oncall",
            "group_by": ["alertname", "service"],
            "routes": [{"matchers": ['team="dba"'], "receiver": "dba"}],
        }
    )
    r.ingest([alert("DbDown", service="payments-db", team="dba")], T0)
    [d] = r.ingest([alert("HighErrorRate", service="payments")], T0)
    assert d.kind == RouteDecisionKind.NEW_GROUP


def test_a_remembered_correlation_lapses_when_its_group_closes_or_leaves_the_window():
    r = router()
    r.ingest([alert("HighLatency", service="payments")], T0)
    [d] = r.ingest([alert("ErrorRate", service="payments")], T0 + timedelta(seconds=1))
    assert d.kind == RouteDecisionKind.CORRELATED  # the answer for payments is now remembered
    [first] = r.state.groups
    r.incident_closed(first, T0 + timedelta(seconds=2))  # closed, its alerts still firing
    [d] = r.ingest([alert("CpuHigh", service="payments")], T0 + timedelta(seconds=3))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "a closed incident's group takes no new alerts"

    r = router()
    r.ingest([alert("HighLatency", service="payments")], T0)
    [d] = r.ingest([alert("ErrorRate", service="payments")], T0 + timedelta(minutes=1))
    assert d.kind == RouteDecisionKind.CORRELATED and "opened 60s ago" in d.reason
    [d] = r.ingest([alert("ErrorRate", service="payments", pod="b")], T0 + timedelta(minutes=5))
    assert d.kind == RouteDecisionKind.CORRELATED and "opened 300s ago" in d.reason, "age is current"
    [d] = r.ingest([alert("CpuHigh", service="payments")], T0 + timedelta(minutes=11))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "outside the 10m correlation window"


def test_remembered_correlation_answers_exactly_what_a_fresh_search_would():
    """In a storm every new alert of a folded group asks correlation again; the router remembers
    the answer until the live groups change or the picked group leaves the window. Random
    traffic (new and resolving alerts, incidents opening and closing, time passing the window)
    must get the same decisions, word for word, as a router that searches every time."""

    class Forgetful(dict):
        def __setitem__(self, key, value) -> None:  # remembers nothing
            pass

    rng = random.Random(11)
    services = ["frontend", "checkout", "payments", "payments-db", "search", "index", "lonely"]
    names = ["HighLatency", "ErrorRate", "CpuHigh", "LogErrorSpike"]
    remembering, searching = router(), router()
    searching._corr_memo = Forgetful()
    now = T0
    for step in range(400):
        now += timedelta(seconds=rng.choice([0, 1, 2, 5, 30, 200, 700]))
        batch = [
            alert(
                rng.choice(names),
                # Some began long before they arrive: the remembered ranking checks each start.
                at=now - timedelta(seconds=rng.choice([0, 0, 0, 60, 900, 4000])),
                status="resolved" if rng.random() < 0.15 else "firing",
                source=rng.choice(["evaluator", "elasticsearch"]),
                service=rng.choice(services),
                instance=str(rng.randrange(40)),
            )
            for _ in range(rng.randrange(1, 4))
        ]
        got = remembering.ingest(batch, now)
        want = searching.ingest(batch, now)
        assert [(d.kind, d.group_key, d.reason) for d in got] == [
            (d.kind, d.group_key, d.reason) for d in want
        ], f"step {step}"
        assert [a.group_key for a in remembering.due(now)] == [a.group_key for a in searching.due(now)]
        if rng.random() < 0.2 and remembering.state.groups:
            key = rng.choice(sorted(remembering.state.groups))
            remembering.incident_closed(key, now)
            searching.incident_closed(key, now)
        remembering.sweep(now)
        searching.sweep(now)
    assert remembering.state.counts == searching.state.counts
    assert remembering.state.counts.get("correlated", 0) > 20, "the traffic exercised correlation"


def test_a_full_scope_refuses_new_records_as_the_full_path_does():
    """`ingest_records` refuses a new firing record while the scope is full without building
    the Alert (`Router._refused`): every decision, count, group, hold and tracked alert must be
    what the full path gives, with routes that continue, `...` grouping, silences that hold,
    correlation, and resolutions that free room in the middle of a batch."""
    from argus.models.alert import alert_to_compact

    cfg = {
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "routes": [
                {"matchers": ['team="db"'], "receiver": "dba", "group_by": ["..."], "continue": True},
                {"matchers": ['severity="critical"'], "receiver": "oncall"},
            ],
        },
        "max_tracked_alerts": 25,
    }
    quick, full = router(**cfg), router(**cfg)
    full._refused = lambda *args: None  # type: ignore[method-assign]  # the full path for every record
    for r in (quick, full):
        r.add_silence(
            Silence(
                id="s1",
                matchers=[Matcher.parse('instance=~"i1.*"')],
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                created_by="ann",
                comment="noisy",
            )
        )
    rng = random.Random(7)
    firing: list[Alert] = []
    gone: list[Alert] = []
    for step in range(60):
        now = T0 + timedelta(seconds=20 * step)
        batch = []
        for _ in range(rng.randint(5, 30)):
            roll = rng.random()
            if firing and roll < 0.2:
                a = firing.pop(rng.randrange(len(firing)))
                gone.append(a)
                batch.append(a.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": now}))
                continue
            if firing and roll < 0.5:  # a repeat (of a tracked, held or refused alert)
                batch.append(rng.choice(firing))
                continue
            if gone and roll < 0.6:  # firing again, with a new start
                a = gone.pop(rng.randrange(len(gone))).model_copy(update={"starts_at": now})
                firing.append(a)
                batch.append(a)
                continue
            labels = {
                "service": rng.choice(["checkout", "payments", "search", "db"]),
                "instance": f"i{rng.randint(0, 60)}",
                "team": rng.choice(["db", "web"]),
                "severity": rng.choice(["warning", "critical"]),
            }
            a = alert(rng.choice(["HighLatency", "Errors", "DiskFull"]), at=now, **labels)
            firing.append(a)
            batch.append(a)
        records = [alert_to_compact(a) for a in batch]
        got = quick.ingest_records([dict(r) for r in records], now)
        want = full.ingest_records([dict(r) for r in records], now)
        assert got == want, f"step {step}"
        assert quick.state.recent == full.state.recent, f"step {step}"
        assert quick.state.counts == full.state.counts
        assert quick.tracked_fingerprints() == full.tracked_fingerprints()
        assert sorted(quick.state.held) == sorted(full.state.held)
        # (in either order: between the two, a resolved alert may have left its group while
        # its correlation attachment is still there)
        for call in rng.sample(["due", "sweep"], 2):
            if call == "due":
                assert [a.group_key for a in quick.due(now)] == [a.group_key for a in full.due(now)]
            else:
                quick.sweep(now)
                full.sweep(now)
    assert quick.state.counts.get("over_capacity", 0) > 100, "the scope was full most of the time"
    assert quick.state.counts.get("silenced", 0) > 0 and len(quick.state.held) > 0
    assert quick.state.counts.get("correlated", 0) > 0 and quick.state.attached


def test_a_full_scope_refuses_new_alerts_and_says_why_but_takes_news_of_known_ones():
    r = router(
        route={"receiver": "oncall", "group_by": ["alertname"], "group_wait": "0s"},
        max_tracked_alerts=4,
    )
    known = [alert("DiskFull", instance=str(i)) for i in range(4)]
    assert kinds(r.ingest(known, T0)) == ["new_group", "grouped", "grouped", "grouped"]
    [refused] = r.ingest([alert("DiskFull", instance="new")], T0 + timedelta(seconds=1))
    assert refused.kind == RouteDecisionKind.OVER_CAPACITY
    assert "holds 4 alerts" in refused.reason and "routing.max_tracked_alerts 4" in refused.reason
    assert r.state.counts["over_capacity"] == 1 and len(r.tracked_fingerprints()) == 4
    # Repeats and resolutions of what the scope holds still go through, so it can drain.
    [d] = r.ingest([known[0]], T0 + timedelta(seconds=2))
    assert d.kind == RouteDecisionKind.DUPLICATE
    [opened] = r.due(T0 + timedelta(seconds=2))
    assert opened.kind == "open"
    gone = known[0].model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": T0})
    [d] = r.ingest([gone], T0 + timedelta(seconds=3))
    assert d.kind == RouteDecisionKind.RESOLVED
    [update] = r.due(T0 + timedelta(seconds=13))  # told the incident, then forgotten
    assert update.kind == "update"
    [d] = r.ingest([alert("DiskFull", instance="new")], T0 + timedelta(seconds=14))
    assert d.kind == RouteDecisionKind.GROUPED, "room again"


def test_shortest_path_ignores_direction_and_respects_hops():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}
    assert shortest_path(graph, "c", "a", 2) == ["c", "b", "a"]
    assert shortest_path(graph, "c", "a", 1) is None


# --- configuration -------------------------------------------------------------------------------
def test_routes_naming_unknown_time_intervals_are_refused_at_load():
    from argus.models import ArgusConfig

    cfg = ArgusConfig.model_validate(
        {
            "policy": {
                "routing": {
                    "route": {
                        "receiver": "r",
                        "routes": [{"matchers": ['a="b"'], "mute_time_intervals": ["weekend"]}],
                    }
                }
            }
        }
    )
    assert monitoring_problems(cfg) == [
        "routing.route.routes[0]: unknown time interval 'weekend' (defined: [])"
    ]


def test_silencing_an_alert_already_in_an_incident_does_not_resolve_it():
    r = router(resolve_timeout="5m")
    r.ingest([alert(service="checkout")], T0)
    r.due(T0 + timedelta(seconds=30))
    r.add_silence(
        Silence(
            id="late",
            matchers=[Matcher.parse('service="checkout"')],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            created_by="dan",
            comment="looking at it",
        )
    )
    for m in (3, 6, 9):
        [d] = r.ingest([alert(service="checkout")], T0 + timedelta(minutes=m))
        assert d.kind == RouteDecisionKind.SILENCED
    assert r.sweep(T0 + timedelta(minutes=10)) == [], "refreshed while silenced: not timed out"
    [upd] = r.due(T0 + timedelta(minutes=10))
    assert [d.kind for d in upd.decisions] == [RouteDecisionKind.SILENCED], (
        "the incident learns why it is quiet"
    )


def test_compact_records_round_trip_and_carried_state_restores_exactly():
    """The gateway's compact form and the continue-as-new packing lose nothing."""
    from argus.models.alert import CompactBatch, alert_from_compact, alert_to_compact
    from argus.workflows.monitoring import MonitoringState, _pack_whole, pack_state, unpack_state

    a = alert(service="checkout").model_copy(update={"ends_at": T0 + timedelta(minutes=5), "value": 0.7})
    b = alert(service="payments", alertname="Pending")
    assert alert_from_compact(alert_to_compact(a)) == a
    r = router()
    r.ingest([a, alert(service="payments")], T0)
    r.ingest([alert(service="checkout", alertname="Other")], T0 + timedelta(seconds=5))
    assert r.state.attached and any(g.dirty for g in r.state.groups.values()), "packed their own way"
    state = MonitoringState(router=r.state)
    queued = [CompactBatch.of("b1", [alert_to_compact(a)]), CompactBatch.of("b2", [alert_to_compact(b)])]
    restored, pending = unpack_state(pack_state(state, queued))
    assert restored.model_dump() == state.model_dump()
    assert [p.records() for p in pending] == [[alert_to_compact(a)], [alert_to_compact(b)]]
    assert [p.data for p in pending] == [q.data for q in queued], "handed over as they came"
    # A hand-over from before batches were carried packed: pending alerts as one list of records.
    body = orjson.loads(zlib.decompress(base64.b64decode(_pack_whole(state))))
    body["pending"] = [alert_to_compact(a), alert_to_compact(b)]
    old = base64.b64encode(zlib.compress(orjson.dumps(body))).decode()
    restored, pending = unpack_state(old)
    assert restored.model_dump() == state.model_dump()
    assert [p.records() for p in pending] == [[alert_to_compact(a), alert_to_compact(b)]]
    # The restored state routes the same: a repeat is a repeat, not a new alert.
    again = Router(r.config, restored.router, "test")
    assert again.ingest_records([alert_to_compact(a)], T0 + timedelta(seconds=30)) == (1, 1)


def test_a_state_packed_and_rebuilt_in_parts_is_the_state_packed_and_rebuilt_at_once():
    """A hand-over packs the tracked alerts a part per workflow task, and the next run rebuilds
    them a part per task; the result, alert order within each group included, and what the
    router indexes are as if packed and rebuilt at once. A state packed whole (by a run begun
    before the packing in parts) rebuilds the same."""
    from argus.models.alert import alert_to_compact
    from argus.workflows.monitoring import (
        MonitoringState,
        StatePacker,
        _pack_head,
        _pack_whole,
        _unpack_parts,
        join_carried,
        unpack_state,
    )

    r = router()
    r.ingest([alert(service=s, instance=f"i{i}") for s in ("checkout", "payments") for i in range(7)], T0)
    r.ingest([alert(service="search", alertname="Other", instance=f"j{i}") for i in range(5)], T0)
    whole_state = MonitoringState(router=r.state)
    packer = StatePacker(whole_state)
    while not packer.done:
        packer.step(4)  # groups of 7, 7 and 5: most of them spread over two parts
    assert packer.counts == [4, 4, 4, 4, 3] and len(packer.segments) == 5
    in_parts = join_carried(packer.join(_pack_head(whole_state, packer.counts)))
    whole, _ = unpack_state(_pack_whole(whole_state))
    assert whole.model_dump() == whole_state.model_dump()
    for packed in (in_parts, _pack_whole(whole_state)):
        state, _, carried = _unpack_parts(packed)
        assert all(not g.alerts for g in state.router.groups.values()), "the groups come first, empty"
        assert carried.left == 19
        again = Router(r.config, state.router, "test")
        while carried.left:
            for key, entries in carried.build(state, 3):
                again.adopt(key, entries)
        assert state.model_dump() == whole.model_dump()
        assert {k: list(g.alerts) for k, g in state.router.groups.items()} == {
            k: list(g.alerts) for k, g in r.state.groups.items()
        }
        assert again.tracked_fingerprints() == r.tracked_fingerprints() and again.tracked_count() == 19
        repeat = alert_to_compact(alert(service="search", alertname="Other", instance="j1"))
        assert again.ingest_records([repeat], T0)[1] == 1


# --- Alertmanager's refusals: matchers, silences, routes and time intervals -----------------------
def test_matcher_values_unescape_like_alertmanager():
    m = Matcher.parse(r'instance=~"host\\.example\\.com"')
    assert m.value == r"host\.example\.com"
    assert m.matches({"instance": "host.example.com"}) and not m.matches({"instance": "hostXexample.com"})
    assert Matcher.parse(r'path="C:\\dir"').value == "C:\\dir"
    assert Matcher.parse(r'x="a\nb"').value == "a\nb"
    assert Matcher.parse(r'x="say \"hi\""').value == 'say "hi"'
    assert Matcher.parse(r'x="a\.b"').value == r"a\.b", "any other backslash stays literal"
    assert Matcher.parse("severity=critical").value == "critical"
    for m in [Matcher.parse(r'x="a\\b\"c\nd"'), Matcher.parse('x=~"a|b"')]:
        assert Matcher.parse(str(m)) == m, "str() quotes so that it parses back"


@pytest.mark.parametrize("text", ['team=="db"', 'team="db', 'team=db"', 'team="db" x', 'team="', 'a="x\\"'])
def test_matchers_with_stray_or_unbalanced_quotes_are_refused(text):
    with pytest.raises(ValueError, match=r"invalid matcher .*double quote"):
        Matcher.parse(text)
    with pytest.raises(ValidationError, match=r"invalid matcher"):
        RoutingConfig.model_validate({"route": {"receiver": "r", "routes": [{"matchers": [text]}]}})


def test_regex_matchers_are_anchored_at_the_very_end_like_go():
    assert not Matcher.parse('job=~"foo"').matches({"job": "foo\n"})
    assert Matcher.parse('job!~"foo"').matches({"job": "foo\n"})
    assert not Matcher.parse('job=~"a|b"').matches({"job": "ab"})
    assert Matcher.parse('job=~"a|b"').matches({"job": "b"})


@pytest.mark.parametrize("matchers", [['alertname=~".*"'], ['foo!="bar"'], ['a=""', 'b!~"x"']])
def test_a_silence_whose_matchers_all_match_the_empty_string_is_refused(matchers):
    from argus.models import SilenceRequest
    from argus.workflows.monitoring import silence_request_problem

    req = SilenceRequest(matchers=matchers, created_by="ann")
    assert "at least one matcher must not match the empty string" in (silence_request_problem(req, T0) or "")
    ok = SilenceRequest(matchers=[*matchers, 'service="db"'], created_by="ann")
    assert silence_request_problem(ok, T0) is None


def test_a_silence_that_would_end_in_the_past_is_refused_saying_when():
    from argus.models import SilenceRequest
    from argus.workflows.monitoring import silence_request_problem

    past = SilenceRequest(
        matchers=['service="db"'], created_by="ann", starts_at=T0 - timedelta(hours=3), duration="1h"
    )
    problem = silence_request_problem(past, T0)
    assert problem is not None and "would end at 2026-03-02T08:00:00+00:00" in problem
    assert "already past" in problem
    begun = past.model_copy(update={"duration": timedelta(hours=4)})
    assert silence_request_problem(begun, T0) is None, "begun 3h ago, ends in 1h: fine"


def _load_problems(**routing):
    from argus.models import ArgusConfig

    base = {"route": {"receiver": "r", "routes": [{"matchers": ['a="b"'], "mute_time_intervals": ["ti"]}]}}
    base.update(routing)
    base.setdefault("time_intervals", [{"name": "ti", "time_intervals": [{}]}])
    return monitoring_problems(ArgusConfig.model_validate({"policy": {"routing": base}}))


def test_zero_group_interval_or_repeat_interval_is_refused_at_load_naming_the_route():
    route = {
        "receiver": "r",
        "group_interval": "0s",
        "routes": [{"matchers": ['a="b"'], "repeat_interval": "0s", "mute_time_intervals": ["ti"]}],
    }
    assert _load_problems(route=route) == [
        "routing.route: group_interval must be greater than zero (got 0s)",
        "routing.route.routes[0]: repeat_interval must be greater than zero (got 0s)",
    ]
    with pytest.raises(ValidationError, match="a duration cannot be negative"):
        RoutingConfig.model_validate({"route": {"receiver": "r", "group_wait": "-30"}})


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"location": "Europe/Berln"}, "location 'Europe/Berln' is not a known time zone"),
        ({"months": ["jan"]}, "months 'jan': 'jan' is not a month"),
        ({"months": ["13"]}, "months '13': '13' is not a month"),
        ({"months": ["december:january"]}, "months 'december:january': the start is after the end"),
        ({"days_of_month": ["x"]}, "days_of_month 'x': 'x' is not a day of the month"),
        ({"days_of_month": ["0:32"]}, "days_of_month '0:32': '0' is not a day of the month"),
        ({"days_of_month": ["-1:5"]}, "days_of_month '-1:5': the end must be negative when the start is"),
        ({"days_of_month": ["20:10"]}, "days_of_month '20:10': the end is before the start"),
        ({"years": ["next"]}, "years 'next': 'next' is not a year"),
        ({"years": ["2027:2026"]}, "years '2027:2026': the start is after the end"),
        ({"weekdays": ["friday:monday"]}, "weekdays 'friday:monday': the start is after the end"),
        (
            {"times": [{"start_time": "22:00", "end_time": "06:00"}]},
            "times 22:00-06:00: the start must be before the end",
        ),
        ({"times": [{"start_time": "09:00", "end_time": "09:00"}]}, "times 09:00-09:00: the start must be"),
    ],
)
def test_time_intervals_alertmanager_refuses_are_refused_at_load_naming_the_interval(spec, problem):
    [found] = _load_problems(time_intervals=[{"name": "ti", "time_intervals": [spec]}])
    assert found.startswith("time interval 'ti': ") and problem in found


def test_time_intervals_alertmanager_accepts_load_and_evaluate():
    spec = {
        "weekdays": ["Monday:friday", "sunday"],
        "months": ["january:march", "10", "November:12"],
        "days_of_month": ["1:-1", "-3:-1", "7"],
        "years": ["2026:2030"],
        "times": [{"start_time": "00:00", "end_time": "24:00"}],
        "location": "Europe/Berlin",
    }
    assert _load_problems(time_intervals=[{"name": "ti", "time_intervals": [spec]}]) == []
    ti = TimeInterval.model_validate({"name": "ti", "time_intervals": [spec]})
    assert in_time_interval(ti, T0)


def test_a_maintenance_window_that_ends_before_it_starts_is_refused_at_load():
    window = {
        "name": "db upgrade",
        "matchers": ['service="db"'],
        "starts_at": "2026-03-02T10:00:00Z",
        "ends_at": "2026-03-02T09:00:00Z",
    }
    [found] = _load_problems(maintenance=[window])
    assert found.startswith("maintenance window 'db upgrade': ends_at 2026-03-02T09:00:00")


# --- correlation: time, direction, explanation; silences at open (review of 2026-12) -----------
def test_an_alert_that_began_firing_hours_ago_is_not_folded_into_a_new_group():
    """An alert firing for hours that reaches the router only now (sent late, or released when
    its silence ended) is no symptom of what began a minute ago: it opens its own group."""
    r = router()
    r.ingest([alert("DbDown", service="payments-db", at=T0)], T0)
    old = alert("HighLatency", service="checkout", at=T0 - timedelta(hours=3))
    [d] = r.ingest([old], T0 + timedelta(minutes=1))
    assert d.kind == RouteDecisionKind.NEW_GROUP, d.reason
    # Within the window of the group's first alert it is folded in, and says when it began.
    [d] = r.ingest(
        [alert("ErrorRate", service="checkout", at=T0 - timedelta(minutes=5))], T0 + timedelta(minutes=2)
    )
    assert d.kind == RouteDecisionKind.CORRELATED and "began firing 420s ago" in d.reason
    # The same holds when the group was opened by an alert that began before it arrived.
    r = router()
    r.ingest([alert("DbDown", service="payments-db", at=T0 - timedelta(minutes=8))], T0)
    [d] = r.ingest(
        [alert("HighLatency", service="checkout", at=T0 - timedelta(minutes=17))], T0 + timedelta(minutes=1)
    )
    assert d.kind == RouteDecisionKind.CORRELATED, "9 minutes before the group's first alert began"


def test_an_alert_released_from_a_long_silence_opens_its_own_group():
    r = router(resolve_timeout="6h")
    r.add_silence(
        Silence(
            id="s9",
            matchers=[Matcher.parse('service="checkout"')],
            starts_at=T0,
            ends_at=T0 + timedelta(hours=2),
            created_by="bob",
        )
    )
    [d] = r.ingest([alert("HighLatency", service="checkout", at=T0)], T0)
    assert d.kind == RouteDecisionKind.SILENCED
    later = T0 + timedelta(hours=2) - timedelta(minutes=1)
    r.ingest([alert("DbDown", service="payments-db", at=later)], later)
    [d] = r.sweep(T0 + timedelta(hours=2))
    assert d.kind == RouteDecisionKind.RELEASED and "opened group" in d.reason, d.reason
    assert len(r.state.groups) == 2


def test_correlation_follows_depends_on_chains_not_shared_callers_or_dependencies():
    """A gateway depending on every backend must not make every backend one incident: two
    services are related when one depends on the other (directly or through others)."""
    topo = [("gateway", "payments"), ("gateway", "search"), ("checkout", "auth"), ("cart", "auth")]
    r = router(correlation={"topology": topo})
    r.ingest([alert("DbDown", service="payments")], T0)
    [d] = r.ingest([alert("IndexLag", service="search")], T0 + timedelta(seconds=5))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "search and payments only share a caller"
    [d] = r.ingest([alert("Errors", service="checkout")], T0 + timedelta(seconds=6))
    assert d.kind == RouteDecisionKind.NEW_GROUP
    [d] = r.ingest([alert("Errors", service="cart")], T0 + timedelta(seconds=7))
    assert d.kind == RouteDecisionKind.NEW_GROUP, "cart and checkout only share a dependency"
    # Along a chain, either way round: the caller joins its dependency's group, and the other way.
    [d] = r.ingest([alert("HighLatency", service="gateway")], T0 + timedelta(seconds=8))
    assert d.kind == RouteDecisionKind.CORRELATED and "gateway depends on payments (1 hop" in d.reason
    [d] = r.ingest([alert("AuthDown", service="auth")], T0 + timedelta(seconds=9))
    assert d.kind == RouteDecisionKind.CORRELATED and "checkout depends on auth (1 hop" in d.reason


def test_correlation_through_a_cycle_and_services_missing_from_the_topology():
    r = router(correlation={"topology": [("a", "b"), ("b", "c"), ("c", "a")], "max_hops": 1})
    r.ingest([alert("X", service="a")], T0)
    [d] = r.ingest([alert("Y", service="c")], T0 + timedelta(seconds=1))
    assert d.kind == RouteDecisionKind.CORRELATED and "c depends on a (1 hop" in d.reason
    [d] = r.ingest([alert("Z", service="unknown")], T0 + timedelta(seconds=2))
    assert d.kind == RouteDecisionKind.NEW_GROUP
    [d] = r.ingest([alert("Logs", service="unknown", source="elasticsearch")], T0 + timedelta(seconds=3))
    assert d.kind == RouteDecisionKind.CORRELATED and "same service 'unknown'" in d.reason
    [d] = r.ingest([alert("NoService")], T0 + timedelta(seconds=4))
    assert d.kind == RouteDecisionKind.NEW_GROUP


def test_a_topology_correlation_names_the_signals_on_both_sides():
    r = router()
    r.ingest([alert("DbDown", service="payments-db", source="prometheus")], T0)
    [d] = r.ingest(
        [alert("LogErrorSpike", service="payments", source="elasticsearch")], T0 + timedelta(seconds=5)
    )
    assert d.kind == RouteDecisionKind.CORRELATED
    assert "payments depends on payments-db (1 hop in the topology; this alert from elasticsearch, " in (
        d.reason
    )
    assert "the group's from prometheus" in d.reason


def test_runs_begun_before_keep_the_undirected_topology_and_any_start():
    r = router(correlation={"topology": [("gateway", "payments"), ("gateway", "search")]})
    r.causal_correlation = False
    r.ingest([alert("DbDown", service="payments")], T0)
    [d] = r.ingest([alert("IndexLag", service="search", at=T0 - timedelta(hours=3))], T0)
    assert d.kind == RouteDecisionKind.CORRELATED
    assert d.reason.endswith("within the correlation window 0:10:00"), d.reason


def test_a_silence_added_during_group_wait_keeps_the_incident_from_opening():
    """Alertmanager mutes at notification time: an alert that joined a group before a silence
    was added is silenced when the group flushes, refreshed or not. When the silence ends, the
    group opens its incident."""
    r = router(correlation={"enabled": False}, resolve_timeout="2h")
    r.ingest([alert("HighLatency", service="checkout")], T0)
    r.add_silence(
        Silence(
            id="s10",
            matchers=[Matcher.parse('service="checkout"')],
            starts_at=T0 + timedelta(seconds=10),
            ends_at=T0 + timedelta(hours=1),
            created_by="ann",
            comment="deploy",
        )
    )
    r.sweep(T0 + timedelta(seconds=30))
    assert r.due(T0 + timedelta(seconds=30)) == []
    assert kinds(r.state.recent[-1:]) == ["silenced"] and "by s10" in r.state.recent[-1].reason
    r.sweep(T0 + timedelta(minutes=30))
    assert r.due(T0 + timedelta(minutes=30)) == [], "still silenced"
    r.ingest([alert("HighLatency", service="checkout")], T0 + timedelta(minutes=40))
    r.sweep(T0 + timedelta(hours=1))
    assert [a.kind for a in r.due(T0 + timedelta(hours=1))] == ["open"]


def _group_of_two_with_a_late_silence(keeps_out: bool = True) -> Router:
    """Two alerts grouped by alertname; a silence for one of them begins during group_wait."""
    r = router(correlation={"enabled": False}, resolve_timeout="2h", route={
        "receiver": "oncall", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "1m",
    })  # fmt: skip
    r.keep_muted_out = lambda: keeps_out
    r.ingest([alert("HighLatency", service="checkout"), alert("HighLatency", service="search")], T0)
    r.add_silence(silence('service="search"', at=T0 + timedelta(seconds=10), lasts=timedelta(minutes=20)))
    return r


def test_an_alert_muted_when_its_group_opens_stays_out_of_the_incident_until_its_mute_ends():
    """Alertmanager leaves a silenced alert out of the group's notification. The incident opens
    with the unmuted alert only, its timeline says why the other is not there, and it hears of
    the other once the silence ends."""
    r = _group_of_two_with_a_late_silence()
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    assert opened.kind == "open" and [a.service for a in opened.alerts] == ["checkout"]
    assert opened.firing_count == 1
    [why] = [d for d in opened.decisions if d.kind == RouteDecisionKind.SILENCED]
    assert why.reason.startswith("kept out of the incident as it opens:") and "sil-1" in why.reason

    # Still silenced, sent again or not: every group_interval the group looks again and tells
    # nothing.
    for m in (2, 5, 10):
        if m == 5:
            [d] = r.ingest([alert("HighLatency", service="search")], T0 + timedelta(minutes=m))
            assert d.kind == RouteDecisionKind.SILENCED
        r.sweep(T0 + timedelta(minutes=m))
        assert [a for u in r.due(T0 + timedelta(minutes=m)) for a in u.alerts] == []
    # The silence ends: the incident hears of the alert.
    r.sweep(T0 + timedelta(minutes=21))
    [told] = r.due(T0 + timedelta(minutes=21))
    assert told.kind == "update" and [a.service for a in told.alerts] == ["search"]
    assert told.firing_count == 2
    assert r.state.groups[opened.group_key].kept_out == []


def test_a_kept_out_alert_wakes_its_group_only_when_a_mute_may_have_ended():
    """Muted for a week: the group is not looked at every group_interval meanwhile (each look
    costs the scope a timer and a workflow task), only when suppression changes."""
    r = router(correlation={"enabled": False}, resolve_timeout="30d", route={
        "receiver": "oncall", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "1m",
    })  # fmt: skip
    r.ingest([alert("HighLatency", service="checkout"), alert("HighLatency", service="search")], T0)
    r.add_silence(silence('service="search"', at=T0 + timedelta(seconds=10), lasts=timedelta(days=7)))
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    assert r.state.groups[opened.group_key].kept_out
    r.sweep(T0 + timedelta(minutes=2))
    assert r.due(T0 + timedelta(minutes=2)) == []
    assert r.next_deadline() == T0 + timedelta(seconds=10) + timedelta(days=7), "the silence's end, not 1 m"


def test_the_incident_of_a_group_hears_the_count_without_kept_out_alerts_and_a_close_does_not_strand_them():
    """The incident counts only what it was told: when checkout resolves, none of its alerts
    fires, and it may close. search, kept out, then opens the group again as soon as its silence
    ends, not after repeat_interval (4 h): no incident has heard of it."""
    r = _group_of_two_with_a_late_silence()
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    r.ingest([alert("HighLatency", service="checkout", status="resolved")], T0 + timedelta(minutes=3))
    r.sweep(T0 + timedelta(minutes=4))
    [update] = r.due(T0 + timedelta(minutes=4))
    assert [a.service for a in update.alerts] == ["checkout"] and update.firing_count == 0
    r.incident_closed(opened.group_key, T0 + timedelta(minutes=6))
    first = None
    for m in range(7, 60):
        t = T0 + timedelta(minutes=m)
        r.ingest([alert("HighLatency", service="search")], t)  # sent again every minute
        r.sweep(t)
        actions = r.due(t)
        if actions:
            first = (m, [(a.kind, [x.service for x in a.alerts]) for a in actions])
            break
    assert first == (21, [("open", ["search"])]), first
    assert r.state.groups[opened.group_key].kept_out == [], "the new incident starts over"


def test_an_alert_kept_out_that_resolves_before_its_mute_ends_is_never_told():
    r = _group_of_two_with_a_late_silence()
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    r.ingest([alert("HighLatency", service="search", status="resolved", at=T0)], T0 + timedelta(minutes=3))
    for m in (4, 30):
        r.sweep(T0 + timedelta(minutes=m))
        assert all("search" not in [a.service for a in u.alerts] for u in r.due(T0 + timedelta(minutes=m)))
    g = r.state.groups[opened.group_key]
    assert g.kept_out == [] and [e.alert.service for e in g.alerts.values()] == ["checkout"]


def test_runs_begun_before_still_send_muted_alerts_with_the_incident():
    r = _group_of_two_with_a_late_silence(keeps_out=False)
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    assert sorted(a.service for a in opened.alerts) == ["checkout", "search"]
    assert opened.firing_count == 2 and r.state.groups[opened.group_key].kept_out == []


def test_alerts_kept_out_are_carried_over_a_hand_over_and_an_empty_list_costs_nothing():
    from argus.workflows.monitoring import MonitoringState, pack_state, unpack_state

    r = _group_of_two_with_a_late_silence()
    r.sweep(T0 + timedelta(seconds=30))
    [opened] = r.due(T0 + timedelta(seconds=30))
    state = MonitoringState(router=r.state)
    restored, _ = unpack_state(pack_state(state))
    assert restored.router.groups[opened.group_key].kept_out == state.router.groups[opened.group_key].kept_out
    assert restored.model_dump() == state.model_dump()
    # Runs that never keep an alert out pack what they packed before the field existed: a
    # hand-over's measured size sets the scope's capacity, and a replay must measure the same.
    r = _group_of_two_with_a_late_silence(keeps_out=False)
    r.sweep(T0 + timedelta(seconds=30))
    r.due(T0 + timedelta(seconds=30))
    packed = pack_state(MonitoringState(router=r.state))
    assert b"kept_out" not in zlib.decompress(base64.b64decode(packed))


def test_the_patch_for_kept_out_alerts_is_asked_only_when_a_group_opens_with_a_muted_alert():
    r = router(correlation={"enabled": False})
    asked = []
    r.keep_muted_out = lambda: asked.append(1) or True
    r.ingest([alert("HighLatency", service="checkout")], T0)
    r.sweep(T0 + timedelta(seconds=30))
    assert [a.kind for a in r.due(T0 + timedelta(seconds=30))] == ["open"] and asked == []


# --- what a person sees (Alertmanager's GET /api/v2/alerts) ----------------------------------------
def test_alert_views_list_each_firing_alert_once_with_its_receivers_and_what_holds_it():
    """An alert two routes reach is one view with both receivers; a silenced one names its
    silence, an inhibited one its source; one muted by a maintenance window is muted, neither
    silenced nor inhibited; resolved alerts are not listed; `limit` cuts, `total` counts."""
    r = router(
        route={
            "receiver": "oncall",
            "group_by": ["alertname"],
            "routes": [
                {"matchers": ['team="db"'], "receiver": "dba", "continue": True},
                {"matchers": ['team="db"'], "receiver": "pager"},
            ],
        },
        inhibit_rules=[
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["service"],
            }
        ],
        maintenance=[
            {
                "name": "upgrade",
                "matchers": ['service="db"'],
                "starts_at": T0.isoformat(),
                "ends_at": (T0 + timedelta(hours=1)).isoformat(),
            }
        ],
        correlation={"enabled": False},
    )
    r.add_silence(silence('alertname="Noisy"'))
    r.ingest(
        [
            alert("Both", team="db", service="x"),
            alert("Noisy", service="y"),
            alert("Down", service="z", severity="critical"),
            alert("Slow", service="z", severity="warning"),
            alert("Upgrade", service="db"),
            alert("Gone", service="q", status="resolved"),
        ],
        T0,
    )
    listing = r.alert_views(AlertQuery(), T0 + timedelta(seconds=1))
    seen = {v.alert.name: (v.receivers, v.silenced_by, v.inhibited_by, v.muted) for v in listing.alerts}
    down = next(v.alert.fingerprint for v in listing.alerts if v.alert.name == "Down")
    assert seen == {
        "Both": (["dba", "pager"], [], [], False),
        "Down": (["oncall"], [], [], False),
        "Noisy": (["oncall"], ["sil-1"], [], False),
        "Slow": (["oncall"], [], [down], False),
        "Upgrade": (["oncall"], [], [], True),
    }
    assert listing.complete
    assert [v.alert.fingerprint for v in listing.alerts] == sorted(
        v.alert.fingerprint for v in listing.alerts
    )
    cut = r.alert_views(AlertQuery(limit=2), T0)
    assert (len(cut.alerts), cut.complete) == (2, False)
    only = r.alert_views(AlertQuery(matchers=[Matcher.parse('service="z"')]), T0)
    assert sorted(v.alert.name for v in only.alerts) == ["Down", "Slow"]
    # Alertmanager's switches, applied before the limit: one silenced alert among the first.
    silenced = r.alert_views(AlertQuery(active=False, inhibited=False, limit=1), T0)
    assert [v.alert.name for v in silenced.alerts] == ["Noisy"] and silenced.complete
    paged = r.alert_views(AlertQuery(receiver="pa.*"), T0)
    assert [v.alert.name for v in paged.alerts] == ["Both"]


def test_listing_alerts_leaves_what_routing_decides_unchanged():
    """A query runs only in the live workflow, never in its replay: it must not warm a cache
    routing reads. Here a listing taken between two batches once made an inhibited alert open
    a group instead (the inhibition index, rebuilt by the query, missed a source held later)."""

    def run(query_between: bool) -> list[str]:
        r = router(
            inhibit_rules=[
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["service"],
                }
            ],
            correlation={"enabled": False},
        )
        r.add_silence(silence('alertname="Src"'))
        out = kinds(r.ingest([alert("A", service="a")], T0))
        if query_between:
            r.alert_views(AlertQuery(), T0)
        out += kinds(r.ingest([alert("Src", service="z", severity="critical")], T0 + timedelta(seconds=1)))
        if query_between:
            r.alert_views(AlertQuery(), T0)
        out += kinds(r.ingest([alert("Tgt", service="z", severity="warning")], T0 + timedelta(seconds=2)))
        return out

    assert run(query_between=True) == run(query_between=False)


def test_a_silence_expired_by_hand_releases_what_it_held_at_the_next_sweep():
    """An alert no one sends again (a webhook fires once) was held until the silence's old end."""

    def after_expiry(by_hand: bool) -> list[str]:
        r = router(correlation={"enabled": False})
        r.add_silence(silence('service="x"', lasts=timedelta(hours=4)))
        [held] = r.ingest([alert("Once", service="x")], T0)
        assert held.kind == RouteDecisionKind.SILENCED
        r.expire_silence("sil-1", T0 + timedelta(minutes=1), by_hand=by_hand)
        return kinds(r.sweep(T0 + timedelta(minutes=1, seconds=1)))

    assert after_expiry(by_hand=True) == ["released"]
    assert after_expiry(by_hand=False) == [], "runs begun before: held until the old end"


def test_alert_views_stop_at_the_byte_budget_of_one_query_answer():
    r = router(correlation={"enabled": False})
    big = "x" * 900_000
    for i in range(3):
        a = alert(f"Big{i}", service="s")
        a.annotations["description"] = big
        r.ingest([a], T0)
    listing = r.alert_views(AlertQuery(), T0)
    assert (len(listing.alerts), listing.complete) == (2, False)
    assert len(orjson.dumps(listing.model_dump(mode="json"))) < 4_000_000
    wide = router(correlation={"enabled": False})
    for i in range(2000):  # 1,000 characters of 3 bytes each: the budget counts bytes
        a = alert(f"Wide{i}", service="s")
        a.annotations["description"] = "磁" * 1000
        wide.ingest([a], T0)
    listing = wide.alert_views(AlertQuery(), T0)
    assert not listing.complete and len(listing.model_dump_json()) < 2_100_000


def test_live_inhibition_sources_always_equal_the_sources_rebuilt_from_the_state():
    """The live index (Router.live_sources) follows every place an alert starts or stops firing:
    grouped, held by a silence or by inhibition, released, resolved, expired, refused. After each
    step of random traffic it holds exactly what a rebuild from the state holds, and each
    fingerprint's count is its number of firing places."""
    rng = random.Random(7)
    r = router(
        inhibit_rules=[
            {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
             "equal": ["service"]},
            {"source_matchers": ['alertname=~"Down.*"'], "target_matchers": ['severity=~"warning|critical"']},
        ],
        route={"receiver": "r", "group_by": ["alertname", "service"], "group_wait": "0s",
               "group_interval": "10s",
               "routes": [{"matchers": ['service="s1"'], "receiver": "a", "continue": True}]},
        correlation={"enabled": False},
        resolve_timeout="3m",
        max_tracked_alerts=40,
    )  # fmt: skip
    now = T0
    for step in range(600):
        now += timedelta(seconds=rng.choice([1, 5, 30]))
        roll = rng.random()
        if roll < 0.08:
            lasts = timedelta(minutes=rng.choice([1, 10]))
            r.add_silence(silence(f'service="s{rng.randrange(4)}"', now, lasts, sid=f"sil-{step}"))
        elif roll < 0.12 and r.state.silences:
            r.expire_silence(rng.choice(r.state.silences).id, now, by_hand=True)
        elif roll < 0.2:
            r.sweep(now)
            r.due(now)
        else:
            batch = [
                alert(rng.choice(["Down", "Slow", "Err", "Full"]), at=now,
                      status=rng.choice(["firing", "firing", "resolved"]), service=f"s{rng.randrange(4)}",
                      severity=rng.choice(["critical", "warning", "info"]), n=str(rng.randrange(6)))
                for _ in range(rng.randrange(1, 6))
            ]  # fmt: skip
            r.ingest(batch, now)
        live = r._inhibitors()
        rebuilt = r._inhibitor_index()
        assert [{eq: set(d) for eq, d in by.items()} for by in live] == [
            {eq: {a.fingerprint for a in alerts} for eq, alerts in by.items()} for by in rebuilt
        ], step
        places: dict[str, int] = {}
        for a in r._firing_alerts():
            places[a.fingerprint] = places.get(a.fingerprint, 0) + 1
        assert r._source_refs == places, step
    assert r.state.held and any(g.alerts for g in r.state.groups.values()), "the traffic reached both"
