"""Alertmanager's v2 silence wire format as ARGUS writes and reads it: the list order, the
`filter` rule, the matcher flags, times to the millisecond, and bodies refused by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from argus.integrations.alertmanager_api import PostableSilence, gettable, listed, matches_filter
from argus.models import Matcher, Silence

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
H = timedelta(hours=1)


def silence(sid: str, starts: datetime, ends: datetime, *matchers: str) -> Silence:
    return Silence(
        id=sid,
        matchers=[Matcher.parse(m) for m in matchers or ('service="payments"',)],
        starts_at=starts,
        ends_at=ends,
        created_by="rita",
    )


def test_silences_are_listed_active_by_end_then_pending_by_start_then_expired_latest_first():
    silences = [
        silence("old", NOW - 5 * H, NOW - 3 * H),
        silence("pending-late", NOW + 4 * H, NOW + 5 * H),
        silence("active-long", NOW - H, NOW + 9 * H),
        silence("recent", NOW - 2 * H, NOW - H),
        silence("pending-soon", NOW + H, NOW + 9 * H),
        silence("active-short", NOW - H, NOW + H),
    ]
    out = listed(silences, [], NOW)
    assert [(s["id"], s["status"]["state"]) for s in out] == [
        ("active-short", "active"), ("active-long", "active"),
        ("pending-soon", "pending"), ("pending-late", "pending"),
        ("recent", "expired"), ("old", "expired"),
    ]  # fmt: skip


def test_a_filter_names_one_of_the_silences_own_matchers_not_labels_it_would_match():
    s = silence("s", NOW, NOW + H, 'alertname="DiskFull"', 'service=~"pay.*"')
    assert matches_filter(s, [Matcher.parse('alertname="DiskFull"')])
    assert matches_filter(s, [Matcher.parse('service=~"pay.*"'), Matcher.parse("alertname=DiskFull")])
    assert not matches_filter(s, [Matcher.parse('service="payments"')]), (
        "a label it matches is not a filter hit"
    )
    assert not matches_filter(s, [Matcher.parse('alertname!="DiskFull"')]), "the operator counts"


def test_a_silence_is_written_as_alertmanager_writes_one():
    s = silence("s", NOW - H, NOW + H, 'a="1"', 'b!="2"', 'c=~"3"', 'd!~"4"')
    out = gettable(s.model_copy(update={"comment": "why", "updated_at": NOW}), NOW)
    assert out == {
        "id": "s",
        "status": {"state": "active"},
        "updatedAt": "2026-11-28T12:00:00.123Z",
        "comment": "why",
        "createdBy": "rita",
        "endsAt": "2026-11-28T13:00:00.123Z",
        "matchers": [
            {"name": "a", "value": "1", "isRegex": False, "isEqual": True},
            {"name": "b", "value": "2", "isRegex": False, "isEqual": False},
            {"name": "c", "value": "3", "isRegex": True, "isEqual": True},
            {"name": "d", "value": "4", "isRegex": True, "isEqual": False},
        ],
        "startsAt": "2026-11-28T11:00:00.123Z",
    }
    back = PostableSilence.model_validate({**out, "id": "s"})
    assert [m.to_matcher() for m in back.matchers] == s.matchers
    assert back.startsAt == s.starts_at.replace(microsecond=123000)


def test_bodies_are_refused_naming_the_field_and_times_in_alertmanagers_words():
    good = {
        "matchers": [{"name": "alertname", "value": "X", "isRegex": False}],
        "startsAt": "2026-11-28T12:00:00Z",
        "endsAt": "2026-11-28T13:00:00Z",
        "createdBy": "rita",
        "comment": "c",
        "somethingNew": "ignored, as Alertmanager ignores it",
    }
    PostableSilence.model_validate(good)
    for field, value in (("matchers", []), ("startsAt", "tomorrow"), ("createdBy", None)):
        with pytest.raises(ValidationError) as bad:
            PostableSilence.model_validate({**good, field: value})
        assert bad.value.errors()[0]["loc"][0] == field
    with pytest.raises(ValidationError) as missing:
        PostableSilence.model_validate({k: v for k, v in good.items() if k != "comment"})
    assert missing.value.errors()[0]["loc"] == ("comment",)

    def problem(**change: str) -> str | None:
        return PostableSilence.model_validate({**good, **change}).times_problem(NOW)

    assert problem() is None
    assert (
        problem(endsAt="2026-11-28T12:00:00Z")
        == "Failed to create silence: start time must be before end time"
    )
    assert problem(startsAt="2026-11-28T10:00:00Z", endsAt="2026-11-28T11:00:00Z") == (
        "Failed to create silence: end time can't be in the past"
    )
    assert "time zone" in (problem(startsAt="2026-11-28T12:00:00") or "")


def test_a_silence_read_back_to_the_millisecond_is_the_same_start():
    """Alertmanager's API writes times to the millisecond: an active silence read and posted back
    with a new end keeps its id although its start lost its microseconds on the way."""
    from argus.models import SilenceRequest

    started = NOW - H  # .123456
    s = silence("s", started, NOW + H)
    written = PostableSilence.model_validate({**gettable(s, NOW), "endsAt": "2026-11-28T15:00:00Z"})
    assert written.startsAt != started and written.startsAt == started.replace(microsecond=123000)

    def change(starts: datetime, **kw) -> SilenceRequest:
        return SilenceRequest(matchers=s.matchers, starts_at=starts, duration=2 * H, created_by="rita", **kw)

    assert s.updatable_in_place(change(written.startsAt), NOW)
    assert not s.updatable_in_place(change(written.startsAt + timedelta(milliseconds=1)), NOW)
    assert not s.updatable_in_place(change(written.startsAt, comment="x").model_copy(
        update={"matchers": [Matcher.parse('service="other"')]}), NOW)  # fmt: skip
    pending = silence("p", NOW + H, NOW + 2 * H)
    assert pending.updatable_in_place(change(NOW + 3 * H), NOW), "a pending one may move its start"
    assert not pending.updatable_in_place(change(NOW - timedelta(seconds=1)), NOW), "not into the past"
    gone = silence("g", NOW - 2 * H, NOW - H)
    assert not gone.updatable_in_place(change(gone.starts_at), NOW), "an expired one is replaced"
