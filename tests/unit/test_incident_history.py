"""The post-mortem timeline from history events: local activities (markers) count like
activities: a recovery check's result reads the same, and a local activity that failed for good
is a failed attempt, not a silent gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argus.activities.incident_history import RawEvent, timeline_from_events

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def test_local_activities_in_the_timeline():
    events = [
        RawEvent(id=5, at=at(0), type="LOCAL_ACTIVITY", name="open_incident", result="INC-7"),
        RawEvent(
            id=9, at=at(10), type="LOCAL_ACTIVITY", name="verify_recovery", failure="prometheus unreachable"
        ),
        RawEvent(
            id=12, at=at(20), type="LOCAL_ACTIVITY", name="verify_recovery",
            result={"healthy": False, "detail": "HighCpu: still breaching"},
        ),
        RawEvent(
            id=15, at=at(30), type="LOCAL_ACTIVITY", name="verify_recovery",
            result={"healthy": False, "detail": "HighCpu: still breaching"},
        ),
        RawEvent(
            id=18, at=at(40), type="LOCAL_ACTIVITY", name="verify_recovery",
            result={"healthy": True, "detail": "HighCpu: normal"},
        ),
    ]  # fmt: skip
    lines = [(e.kind, e.message) for e in timeline_from_events(events)]
    assert lines == [
        ("opened", "Incident record INC-7 opened"),
        ("failed", "verify_recovery attempt failed: prometheus unreachable"),
        ("verification", "Recovery check: not yet recovered (HighCpu: still breaching)"),
        ("verification", "Recovery check: healthy (HighCpu: normal)"),  # repeats are folded
    ]
