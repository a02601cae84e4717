"""On-call: iCalendar recurrences in the event's own time zone, all-day events in the calendar's,
RFC-valid UNTIL forms, bad RRULEs named, and layer restrictions matched as the router matches."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from argus.analysis.routing import in_time_interval
from argus.integrations.oncall import Directory, OnCallError, in_windows, load_ical, who_is_on_call
from argus.models import ArgusConfig
from argus.models.people import OnCallSchedule, Person
from argus.models.routing import TimeInterval, TimeIntervalSpec
from argus.workers.settings import ConfigError
from argus.workers.vendors import build_directory

PEOPLE = {
    "alice": Person(email="alice@x.io"),
    "bob": Person(email="bob@x.io"),
    "carol": Person(email="carol@x.io"),
}


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def cal(body: str, head: str = "") -> str:
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n{head}{body}END:VCALENDAR\n"


BERLIN_WEEKLY = """BEGIN:VEVENT
UID:1
SUMMARY:alice on call
DTSTART;TZID=Europe/Berlin:20240101T090000
DTEND;TZID=Europe/Berlin:20240101T170000
RRULE:FREQ=WEEKLY;BYDAY=MO
END:VEVENT
"""


def test_tzid_recurrence_keeps_local_hours_across_dst():
    layer = load_ical(cal(BERLIN_WEEKLY), PEOPLE, "cal")
    assert layer.on_call(utc(2024, 1, 8, 8, 30)) == ["alice"]  # 09:30 CET
    assert layer.on_call(utc(2024, 4, 1, 7, 30)) == ["alice"]  # 09:30 CEST, after the change
    assert layer.on_call(utc(2024, 4, 1, 15, 30)) == []  # 17:30 CEST: the shift ended
    assert layer.on_call(utc(2024, 4, 1, 6, 30)) == []  # 08:30 CEST: not yet


def test_all_day_events_are_days_of_the_calendar_time_zone():
    body = (
        "BEGIN:VEVENT\nUID:5\nSUMMARY:alice\nDTSTART;VALUE=DATE:20240301\nDTEND;VALUE=DATE:20240302\n"
        "END:VEVENT\n"
    )
    berlin = load_ical(cal(body, "X-WR-TIMEZONE:Europe/Berlin\n"), PEOPLE, "cal")
    assert berlin.timezone == "Europe/Berlin"
    assert berlin.on_call(utc(2024, 2, 29, 23, 30)) == ["alice"]  # 00:30 on Mar 1 in Berlin
    assert berlin.on_call(utc(2024, 3, 1, 23, 30)) == []  # 00:30 on Mar 2 in Berlin
    plain = load_ical(cal(body), PEOPLE, "cal")  # no X-WR-TIMEZONE: UTC days
    assert plain.on_call(utc(2024, 2, 29, 23, 30)) == [] and plain.on_call(utc(2024, 3, 1, 23, 30)) == [
        "alice"
    ]


def test_all_day_rule_with_a_date_until_loads_and_includes_that_day(tmp_path: Path):
    body = (
        "BEGIN:VEVENT\nUID:2\nSUMMARY:bob\nDTSTART;VALUE=DATE:20240101\nDTEND;VALUE=DATE:20240102\n"
        "RRULE:FREQ=DAILY;UNTIL=20240110\nEND:VEVENT\n"
    )
    (tmp_path / "oncall.ics").write_text(cal(body))
    cfg = ArgusConfig.model_validate(
        {
            "people": {"bob": {"email": "bob@x.io"}},
            "oncall": [{"name": "primary", "ical": [{"path": "oncall.ics"}]}],
        }
    )
    directory = build_directory(cfg, tmp_path)
    assert directory.on_call("primary", utc(2024, 1, 10, 23, 59)).users == ["bob"]
    assert directory.on_call("primary", utc(2024, 1, 11, 0, 1)).users == []


def test_local_until_of_a_tzid_rule_is_read_in_the_event_zone():
    body = BERLIN_WEEKLY.replace("FREQ=WEEKLY;BYDAY=MO", "FREQ=DAILY;UNTIL=20240110T090000")
    layer = load_ical(cal(body), PEOPLE, "cal")
    assert layer.on_call(utc(2024, 1, 10, 8, 30)) == ["alice"]  # the last one: 09:00 Berlin, Jan 10
    assert layer.on_call(utc(2024, 1, 11, 8, 30)) == []


def test_a_bad_rrule_names_the_calendar_the_event_and_the_problem(tmp_path: Path):
    body = (
        "BEGIN:VEVENT\nUID:night-8\nSUMMARY:alice nights\nDTSTART:20240101T000000Z\n"
        "DTEND:20240102T000000Z\nRRULE:FREQ=SOMETIMES\nEND:VEVENT\n"
    )
    (tmp_path / "oncall.ics").write_text(cal(body))
    s = OnCallSchedule.model_validate({"name": "primary", "ical": [{"path": "oncall.ics"}]})
    with pytest.raises(
        OnCallError, match=r"oncall\.ics: event UID night-8 \(alice nights\): invalid RRULE.*SOMETIMES"
    ):
        Directory.from_config(PEOPLE, [s], tmp_path)
    cfg = ArgusConfig.model_validate(
        {
            "people": {"alice": {"email": "alice@x.io"}},
            "oncall": [{"name": "primary", "ical": [{"path": "oncall.ics"}]}],
        }
    )
    with pytest.raises(ConfigError, match=r"oncall\.ics.*night-8.*FREQ"):
        build_directory(cfg, tmp_path)


# 2024-03-31 is a Sunday, the last day of March.
SPECS = [
    ({"days_of_month": ["-1"]}, utc(2024, 3, 31, 12)),
    ({"days_of_month": ["-7:-1"]}, utc(2024, 3, 31, 12)),
    ({"days_of_month": ["-1"]}, utc(2024, 3, 30, 12)),
    ({"years": ["2020:2023"]}, utc(2024, 3, 31, 12)),
    ({"years": ["2024"]}, utc(2024, 3, 31, 12)),
    ({"months": ["march"], "weekdays": ["sunday"]}, utc(2024, 3, 31, 12)),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, utc(2024, 3, 31, 17)),
    ({"location": "Australia/Sydney", "weekdays": ["monday"]}, utc(2024, 3, 31, 20)),
]


@pytest.mark.parametrize(("spec", "at"), SPECS)
def test_layer_restrictions_match_exactly_as_router_time_intervals(spec, at):
    window = TimeIntervalSpec.model_validate(spec)
    assert in_windows([window], at) == in_time_interval(TimeInterval(name="x", time_intervals=[window]), at)


def test_years_and_negative_days_restrict_a_layer():
    assert in_windows([TimeIntervalSpec(days_of_month=["-1"])], utc(2024, 3, 31, 12))
    assert not in_windows([TimeIntervalSpec(years=["2020:2023"])], utc(2024, 3, 31, 12))


def test_an_overnight_restriction_covers_the_night_from_the_day_it_starts():
    s = OnCallSchedule.model_validate(
        {
            "name": "p",
            "layers": [
                {
                    "name": "nights",
                    "users": ["carol"],
                    "start": "2024-01-01T00:00:00Z",
                    "restrictions": [
                        {
                            "weekdays": ["monday:friday"],
                            "times": [{"start_time": "18:00", "end_time": "09:00"}],
                            "location": "Europe/Berlin",
                        }
                    ],
                }
            ],
        }
    )
    # Berlin is UTC+2 in April 2024; 2024-04-01 is a Monday.
    covered = [utc(2024, 4, 1, 16, 0), utc(2024, 4, 1, 21, 59), utc(2024, 4, 2, 6, 59), utc(2024, 4, 6, 6, 0)]
    for at in covered:  # Mon 18:00, Mon 23:59, Tue 08:59, Sat 08:00 (Friday's night)
        assert who_is_on_call(s, at).users == ["carol"], at
    free = [utc(2024, 4, 1, 6, 0), utc(2024, 4, 2, 7, 0), utc(2024, 4, 1, 15, 59), utc(2024, 4, 6, 16, 0)]
    for at in free:  # Mon 08:00 (Sunday's night), Tue 09:00, Mon 17:59, Sat 18:00
        assert who_is_on_call(s, at).users == [], at
