"""Times people type (CLI `--starts/--until/--from/--to`, the portal's silence forms)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from argus.models import parse_moment

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+2h", NOW + timedelta(hours=2)),
        ("-6h", NOW - timedelta(hours=6)),
        (" +1h30m ", NOW + timedelta(hours=1, minutes=30)),
        ("2026-12-01T22:00:00Z", datetime(2026, 12, 1, 22, tzinfo=UTC)),
        ("2026-12-01T22:00:00+01:00", datetime(2026, 12, 1, 21, tzinfo=UTC)),
        ("2026-12-01T22:00:00", datetime(2026, 12, 1, 22, tzinfo=UTC)),  # no zone: UTC
    ],
)
def test_a_moment_is_a_time_or_an_offset_from_now(text, expected):
    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("soon", "'soon' is not a time: use RFC 3339"),
        ("+-6h", "invalid duration"),
        ("+100000y", "'+100000y' is too far from now"),
        ("", "'' is not a time"),
    ],
)
def test_what_is_not_a_moment_is_refused_with_the_reason(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_moment(text, NOW)
