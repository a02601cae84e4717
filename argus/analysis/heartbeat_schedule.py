"""When a heartbeat check-in is due: pure functions over an interval or a cron expression.

Used inside the HeartbeatWorkflow (deterministic: every input is a value, `now` is the
workflow's clock) and by configuration validation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter


def cron_problem(expr: str, tz: str = "UTC") -> str | None:
    """None if `expr` is a valid 5-field cron expression and `tz` a known time zone."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {tz!r}"
    if len(expr.split()) != 5:
        return f"cron {expr!r}: expected 5 fields (minute hour day month weekday)"
    try:
        croniter(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        return f"cron {expr!r}: {exc}"
    return None


def next_cron(expr: str, tz: str, after: datetime) -> datetime:
    """The first tick of `expr` strictly after `after`, as aware UTC."""
    local = after.astimezone(ZoneInfo(tz))
    nxt = croniter(expr, local).get_next(datetime)
    return nxt.astimezone(UTC)


def next_expected(interval: timedelta | None, cron: str | None, tz: str, since: datetime) -> datetime:
    """When the next check-in is expected, counting from `since` (the last ping or creation)."""
    if interval is not None:
        return since + interval
    assert cron is not None
    return next_cron(cron, tz, since)


def deadline(
    interval: timedelta | None, cron: str | None, tz: str, grace: timedelta, since: datetime
) -> datetime:
    """After this instant with no check-in, the check is down."""
    return next_expected(interval, cron, tz, since) + grace


def describe(interval: timedelta | None, cron: str | None, tz: str) -> str:
    if interval is not None:
        return f"every {interval}"
    return f"cron '{cron}' ({tz})"
