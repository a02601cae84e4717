"""On-call: rotations, layers with time-of-day restrictions, overrides, iCalendar shifts (RRULE,
EXDATE, moved instances), fallback, and resolving escalation targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from argus.integrations.oncall import Directory, OnCallError, load_ical, who_is_on_call
from argus.models import ArgusConfig
from argus.models.people import OnCallSchedule, Person

PEOPLE = {
    "alice": Person(email="alice@example.com", teams="aad-alice", slack="UALICE", groups=["sre"]),
    "bob": Person(email="bob@example.com", display_name="Bob Builder"),
    "carol": Person(email="carol@example.com", groups=["sre", "dba"]),
    "dave": Person(email="dave@example.com"),
}
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


def schedule(**extra) -> OnCallSchedule:
    return OnCallSchedule.model_validate(
        {
            "name": "primary",
            "layers": [
                {"name": "weekly", "users": ["alice", "bob", "carol"], "start": MONDAY, "turn": "7d"},
                {
                    "name": "nights",
                    "users": ["dave"],
                    "start": MONDAY,
                    "turn": "1d",
                    "restrictions": [{"times": [{"start_time": "22:00", "end_time": "24:00"}]}],
                },
            ],
            **extra,
        }
    )


def test_weekly_rotation_hands_over_every_turn_and_wraps():
    s = schedule()
    assert who_is_on_call(s, MONDAY + timedelta(hours=1)).users == ["alice"]
    assert who_is_on_call(s, MONDAY + timedelta(days=7, minutes=1)).users == ["bob"]
    assert who_is_on_call(s, MONDAY + timedelta(days=14)).users == ["carol"]
    assert who_is_on_call(s, MONDAY + timedelta(days=21)).users == ["alice"]
    before = who_is_on_call(s, MONDAY - timedelta(minutes=1))
    assert before.users == [] and "nobody is on call" in before.explanation


def test_higher_layer_with_restriction_wins_only_inside_its_window():
    s = schedule()
    night = MONDAY.replace(hour=23)
    answer = who_is_on_call(s, night)
    assert answer.users == ["dave"] and answer.source == "layer:nights"
    assert who_is_on_call(s, MONDAY.replace(hour=21, minute=59)).users == ["alice"]


def test_override_beats_every_layer_and_says_why():
    s = schedule(
        overrides=[
            {
                "user": "carol",
                "start": MONDAY + timedelta(hours=2),
                "end": MONDAY + timedelta(hours=5),
                "reason": "swap",
            }
        ]
    )
    answer = who_is_on_call(s, MONDAY + timedelta(hours=3))
    assert answer.users == ["carol"] and answer.source == "override" and "swap" in answer.explanation
    assert who_is_on_call(s, MONDAY + timedelta(hours=5)).users == ["alice"]


def test_fallback_when_no_layer_covers_the_time():
    s = OnCallSchedule.model_validate(
        {
            "name": "biz",
            "layers": [
                {
                    "name": "office",
                    "users": ["alice"],
                    "start": MONDAY - timedelta(days=7),
                    "restrictions": [
                        {
                            "weekdays": ["monday:friday"],
                            "times": [{"start_time": "09:00", "end_time": "17:00"}],
                            "location": "Europe/Berlin",
                        }
                    ],
                }
            ],
            "fallback": ["bob"],
        }
    )
    # 09:30 Berlin on a Monday is 08:30 UTC
    assert who_is_on_call(s, MONDAY.replace(hour=8, minute=30)).users == ["alice"]
    saturday = MONDAY + timedelta(days=5)
    answer = who_is_on_call(s, saturday)
    assert answer.users == ["bob"] and answer.source == "fallback"


ICAL = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//oncall//EN
BEGIN:VEVENT
UID:weekly-carol
SUMMARY:On Call - Carol - Primary
DTSTART:20260105T090000Z
DTEND:20260106T090000Z
RRULE:FREQ=WEEKLY;COUNT=10
EXDATE:20260112T090000Z
ATTENDEE;CN=Carol:mailto:carol@example.com
END:VEVENT
BEGIN:VEVENT
UID:weekly-carol
RECURRENCE-ID:20260119T090000Z
SUMMARY:On Call - Bob Builder (swapped)
DTSTART:20260119T120000Z
DTEND:20260120T120000Z
END:VEVENT
BEGIN:VEVENT
UID:mystery
SUMMARY:On Call - Somebody Else
DTSTART:20260105T000000Z
DTEND:20260105T010000Z
END:VEVENT
END:VCALENDAR
"""


def test_ical_shifts_recurrence_exdate_and_moved_instance(tmp_path):
    path = tmp_path / "oncall.ics"
    path.write_text(ICAL)
    layer = load_ical(path, PEOPLE)
    assert any("Somebody Else" in p and "names no known person" in p for p in layer.problems)
    s = schedule(ical=[{"path": "oncall.ics"}])
    d = Directory.from_config(PEOPLE, [s], tmp_path)
    # Monday 10:00, week 1: carol's calendar shift sits on top of the rotation layers
    answer = d.on_call("primary", MONDAY + timedelta(hours=1))
    assert answer.users == ["carol"] and answer.source == "ical:oncall.ics"
    # week 2 was removed by EXDATE: the rotation (bob's week) shows through
    assert d.on_call("primary", MONDAY + timedelta(days=7, hours=1)).users == ["bob"]
    # week 3 was moved to start 3 hours later and given to Bob (matched by display name)
    assert d.on_call("primary", MONDAY + timedelta(days=14, hours=1)).users == ["carol"], "rotation again"
    assert d.on_call("primary", MONDAY + timedelta(days=14, hours=4)).users == ["bob"]
    # week 4: the rule continues
    assert d.on_call("primary", MONDAY + timedelta(days=21, hours=23, minutes=30)).users == ["carol"]


def test_bad_calendar_and_unknown_schedule_are_named(tmp_path):
    with pytest.raises(OnCallError, match="cannot read iCalendar file"):
        load_ical(tmp_path / "missing.ics", PEOPLE)
    bad = tmp_path / "bad.ics"
    bad.write_text("BEGIN:VCALENDAR\nthis is not ical\n")
    with pytest.raises(OnCallError, match="not an iCalendar file"):
        load_ical(bad, PEOPLE)
    with pytest.raises(OnCallError, match="unknown on-call schedule 'nope'"):
        Directory(PEOPLE, [schedule()]).on_call("nope", MONDAY)


def test_resolve_targets_identities_and_oncall_groups():
    d = Directory(PEOPLE, [schedule()])
    r = d.resolve(["oncall:primary", "group:dba", "alice", "group:nobody"], MONDAY + timedelta(days=7))
    assert r.people == ["bob", "carol", "alice"]
    assert r.unresolved == ["group:nobody"]
    assert any("on call" in e for e in r.explanation)
    assert d.person_by_teams("aad-alice") == "alice" and d.person_by_slack("UALICE") == "alice"
    assert d.person_by_email("CAROL@example.com") == "carol"
    assert d.groups_of("bob", MONDAY + timedelta(days=7)) == ["oncall:primary"]
    assert d.groups_of("alice", MONDAY + timedelta(days=7)) == ["sre"]


def test_config_refuses_unknown_schedule_and_people():
    with pytest.raises(ValueError, match="unknown on-call schedule 'oncall:ghost'"):
        ArgusConfig.model_validate(
            {"policy": {"escalation": {"levels": [{"name": "x", "targets": ["oncall:ghost"]}]}}}
        )
    with pytest.raises(ValueError, match="'zoe' is not in people"):
        ArgusConfig.model_validate(
            {
                "people": {"alice": {}},
                "oncall": [{"name": "p", "layers": [{"name": "l", "users": ["zoe"], "start": MONDAY}]}],
            }
        )
