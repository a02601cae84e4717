"""Contracts of the Alert Router: matchers, the routing tree, inhibition, silences, time intervals."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration

# As Alertmanager's labels.ParseMatcher: the value is the rest of the text, quoted or not.
_MATCHER = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


def _unquote(raw: str, text: str) -> str:
    r"""Alertmanager's unescaping of a matcher value: inside, `\\` is `\`, `\"` is `"` and `\n`
    a newline; any other backslash is literal. A quote may only open and close the value."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    escaped = closed = False
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
            out.append("\n" if ch == "n" else ch if ch in '"\\' else "\\" + ch)
        elif ch == "\\" and i < len(body) - 1:
            escaped = True
        elif ch == '"':
            if not quoted or i < len(body) - 1:
                break
            closed = True
        else:
            out.append(ch)
    else:
        if closed or not quoted:
            return "".join(out)
    raise ValueError(
        f"invalid matcher {text!r}: unbalanced or unescaped double quote in the value {raw!r}"
        ' (write name="value", with \\" for a quote inside the value)'
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


class Matcher(Model):
    """One label matcher with Alertmanager's semantics (regexes are fully anchored)."""

    name: str
    value: str
    op: MatchOp = MatchOp.EQ

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if not m:
            raise ValueError(f'invalid matcher {text!r}: expected name="value" (ops: = != =~ !~)')
        return cls(name=m.group(1), op=MatchOp(m.group(2)), value=_unquote(m.group(3), text))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: object) -> object:
        if isinstance(data, str):
            m = cls.parse(data)
            return {"name": m.name, "value": m.value, "op": m.op}
        return data

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.op in (MatchOp.RE, MatchOp.NRE):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}{self.op}{self.value!r}: bad regex: {exc}") from exc
        return self

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.value)

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return v == self.value
        if self.op is MatchOp.NE:
            return v != self.value
        # Anchored at both ends as in Go's ^(?:...)$: "foo" does not match "foo\n".
        hit = self._regex.fullmatch(v) is not None
        return hit if self.op is MatchOp.RE else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{_quote(self.value)}"


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def silence_matchers_problem(matchers: list[Matcher]) -> str | None:
    """Alertmanager refuses a silence unless one matcher needs a label to be present: one whose
    every matcher matches the empty string would silence (nearly) every alert."""
    if not matchers:
        return "a silence needs at least one matcher"
    if all(m.matches({}) for m in matchers):
        shown = ", ".join(map(str, matchers))
        return (
            f"silence {shown}: at least one matcher must not match the empty string "
            "(as written it would silence every alert, even those without the label)"
        )
    return None


class Route(Model):
    """A node of the routing tree, as in Alertmanager's `route:` block.

    Unset timing fields inherit from the parent. `group_by: ["..."]` groups by every label.
    """

    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)


class InhibitRule(Model):
    """Mute target alerts while a source alert fires, when the `equal` labels agree."""

    source_matchers: list[Matcher]
    target_matchers: list[Matcher]
    equal: list[str] = Field(default_factory=list)


class TimeRange(Model):
    start_time: str = "00:00"
    end_time: str = "24:00"

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d|24:00", v):
            raise ValueError(f"invalid time {v!r}: use HH:MM")
        return v

    def minutes(self) -> tuple[int, int]:
        def conv(t: str) -> int:
            h, m = t.split(":")
            return int(h) * 60 + int(m)

        return conv(self.start_time), conv(self.end_time)


# Alertmanager's names, in the order ARGUS counts them (Monday 0; January 1). Alertmanager's week
# starts on Sunday; `alertmanager_weekdays` spells its `sunday:X` ranges in this order.
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def alertmanager_weekdays(ranges: list[str]) -> list[str]:
    """`ranges` with Alertmanager's Sunday-first ranges spelt in ARGUS's Monday-first week.

    Alertmanager counts weeks from Sunday: `sunday:saturday` is every day and `sunday:tuesday`
    Sunday to Tuesday, ranges ARGUS's week (Monday to Sunday) would read backwards. Each such
    `sunday:X` becomes `sunday` plus `monday:X`. No range means something else in the two weeks:
    every other range Alertmanager takes ARGUS reads the same way, and the ranges ARGUS takes
    beyond those (`friday:sunday`), Alertmanager refuses. The configuration loader applies this,
    so workflows only ever see Monday-first ranges and runs begun before replay as they ran."""
    out: list[str] = []
    for item in ranges:
        lo, sep, hi = item.lower().partition(":")
        if sep and lo == "sunday" and hi in WEEKDAYS and hi != "sunday":
            out += ["sunday", "monday" if hi == "monday" else f"monday:{hi}"]
        else:
            out.append(item)
    return out


def _weekday(text: str) -> int:
    if text.lower() not in WEEKDAYS:
        raise ValueError(f"{text!r} is not a weekday (monday..sunday)")
    return WEEKDAYS.index(text.lower())


def _month(text: str) -> int:
    if text.lower() in MONTHS:
        return MONTHS.index(text.lower()) + 1
    if re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= 12:
        return int(text)
    raise ValueError(f"{text!r} is not a month (use january..december or 1..12)")


def _day_of_month(text: str) -> int:
    if re.fullmatch(r"-?[0-9]+", text) and 1 <= abs(int(text)) <= 31:
        return int(text)
    raise ValueError(f"{text!r} is not a day of the month (use 1..31, or -31..-1 counted back from its end)")


def _year(text: str) -> int:
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    raise ValueError(f"{text!r} is not a year (e.g. 2026, or 2026:2027)")


def _range_problem(field: str, item: str, conv) -> str | tuple[int, int]:  # type: ignore[no-untyped-def]
    parts = item.split(":")
    if len(parts) > 2:
        return f"{field} {item!r}: a range is start:end"
    try:
        return conv(parts[0]), conv(parts[-1])
    except ValueError as exc:
        return f"{field} {item!r}: {exc}"


def _order_problem(field: str, item: str, lo: int, hi: int) -> str | None:
    """Alertmanager refuses a range that ends before it starts (it never matches)."""
    if field == "weekdays" and lo > hi and lo != WEEKDAYS.index("sunday"):
        return (
            f"weekdays {item!r}: the start is after the end (a range runs monday to sunday, or from "
            "sunday as in Alertmanager; split one over the weekend, e.g. ['friday:sunday', 'monday'])"
        )
    if field == "months" and lo > hi:
        return (
            f"months {item!r}: the start is after the end (split a range over the new year, "
            "e.g. ['november:december', 'january:february'])"
        )
    if field == "years" and lo > hi:
        return f"years {item!r}: the start is after the end"
    if field == "days_of_month":
        if lo < 0 < hi:
            return f"days_of_month {item!r}: the end must be negative when the start is"
        # As Alertmanager: negative days are checked against the shortest month (28 days).
        if (28 + lo if lo < 0 else lo) > (28 + hi if hi < 0 else hi):
            return f"days_of_month {item!r}: the end is before the start"
    return None


class TimeIntervalSpec(Model):
    """One entry of an Alertmanager `time_intervals` definition (all given fields must match)."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    @field_validator("weekdays")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        for item in v:
            for part in item.lower().split(":"):
                if part not in WEEKDAYS:
                    raise ValueError(f"invalid weekday {part!r}")
        return [x.lower() for x in v]

    def problems(self, overnight: bool = False) -> list[str]:
        """What Alertmanager refuses in this entry, or the router could not evaluate; each names
        the field and the value. Checked when the configuration loads (see config_checks).
        `overnight`: a time range may end before it starts (on-call restrictions, 18:00-09:00)."""
        out: list[str] = []
        for t in self.times:
            start, end = t.minutes()
            if start == end or (start > end and not overnight):
                out.append(
                    f"times {t.start_time}-{t.end_time}: the start must be before the end "
                    f"(to span midnight use two ranges, {t.start_time}-24:00 and 00:00-{t.end_time})"
                )
        fields = {"weekdays": _weekday, "days_of_month": _day_of_month, "months": _month, "years": _year}
        for field, conv in fields.items():
            for item in getattr(self, field):
                found = _range_problem(field, item, conv)
                problem = found if isinstance(found, str) else _order_problem(field, item, *found)
                if problem:
                    out.append(problem)
        if self.location != "UTC":
            try:
                ZoneInfo(self.location)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                out.append(
                    f"location {self.location!r} is not a known time zone "
                    "(use an IANA name such as Europe/Berlin, or UTC)"
                )
        return out


class TimeInterval(Model):
    name: str
    time_intervals: list[TimeIntervalSpec]


class MaintenanceWindow(Model):
    """A planned window in which matching alerts are suppressed (recorded, not notified)."""

    name: str
    matchers: list[Matcher]
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    comment: str = ""


class Silence(Model):
    id: str
    matchers: list[Matcher]
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    created_by: str
    comment: str = ""
    # When it was made or last changed (Alertmanager's updatedAt); None in silences made before
    # it was kept.
    updated_at: UtcDateTime | None = None

    @field_validator("matchers")
    @classmethod
    def _non_empty(cls, v: list[Matcher]) -> list[Matcher]:
        if not v:
            raise ValueError("a silence needs at least one matcher")
        return v

    def state(self, now: datetime) -> SilenceState:
        if self.ends_at <= now:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE if self.starts_at <= now else SilenceState.PENDING

    def updatable_in_place(self, change: SilenceRequest, now: datetime) -> bool:
        """Alertmanager's `canUpdate`: the same matchers and, if active, the same start and an end
        not past; if pending, a start not past. Times compare to the millisecond, the precision
        its API (and ours) writes them in: a silence read and posted back keeps its start."""
        if change.matchers != self.matchers:
            return False
        starts = change.starts_at or now
        match self.state(now):
            case SilenceState.ACTIVE:
                return _ms(starts) == _ms(self.starts_at) and starts + change.duration >= now
            case SilenceState.PENDING:
                return starts >= now
        return False

    def changed(
        self,
        *,
        by: str,
        request_id: str,
        matchers: list[Matcher] | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        duration: timedelta | None = None,
        comment: str | None = None,
    ) -> SilenceRequest:
        """The request that changes this silence (`amtool silence update`): what is not given is
        kept: its matchers, start, end (or `duration` counts from the start) and comment."""
        begins = starts_at or self.starts_at
        length = duration if duration is not None else (ends_at or self.ends_at) - begins
        if length <= timedelta(0):
            ends = f"{begins + length:%Y-%m-%dT%H:%M:%SZ}"
            raise ValueError(
                f"a silence must end after it starts ({begins:%Y-%m-%dT%H:%M:%SZ}), not at {ends}"
            )
        return SilenceRequest(
            matchers=matchers or self.matchers,
            starts_at=begins,
            duration=length,
            created_by=by,
            comment=self.comment if comment is None else comment,
            request_id=request_id,
        )


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class SilenceState(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    EXPIRED = "expired"


class SilenceRequest(Model):
    """What a person asks for; the Monitoring workflow assigns the id and clock."""

    matchers: list[Matcher]
    duration: Duration = timedelta(hours=1)
    # A planned silence (a maintenance announced ahead) starts then; unset or past: now.
    starts_at: UtcDateTime | None = None
    created_by: str
    comment: str = ""
    request_id: str = ""

    def matchers_problem(self) -> str | None:
        """Why Alertmanager would refuse these matchers for a silence, or None."""
        return silence_matchers_problem(self.matchers)


class SilenceExpire(Model):
    silence_id: str
    by: str


class SilenceUpdate(Model):
    """A silence posted again under its id (Alertmanager's `POST /api/v2/silences` with `id`):
    changed in place when Alertmanager would, otherwise the old one expires and `change` becomes
    a new silence (see `MonitoringWorkflow.update_silence`)."""

    silence_id: str
    change: SilenceRequest


class RouteDecisionKind(StrEnum):
    NEW_GROUP = "new_group"
    GROUPED = "grouped"
    DUPLICATE = "duplicate"
    RESOLVED = "resolved"
    SILENCED = "silenced"
    INHIBITED = "inhibited"
    MUTED = "muted"
    MAINTENANCE = "maintenance"
    FLAPPING = "flapping"
    IGNORED = "ignored"
    CORRELATED = "correlated"  # attached to a related group (same service, or near in the topology)
    RELEASED = "released"  # a suppressed alert whose silence/inhibition/mute ended
    OVER_CAPACITY = "over_capacity"  # new, while the scope holds routing.max_tracked_alerts


class RouteDecision(Model):
    """Why the router did what it did with one alert: shown in timelines and the CLI."""

    fingerprint: str
    alertname: str
    kind: RouteDecisionKind
    reason: str
    group_key: str | None = None
    at: UtcDateTime | None = None
