"""Contracts of the Alert Router: matchers, the routing tree, inhibition, silences, time intervals."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from functools import cached_property

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


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
        value = m.group(3) if m.group(3) is not None else (m.group(4) or "")
        return cls(name=m.group(1), op=MatchOp(m.group(2)), value=value.replace('\\"', '"'))

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
        return re.compile(f"^(?:{self.value})$")

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return v == self.value
        if self.op is MatchOp.NE:
            return v != self.value
        hit = self._regex.match(v) is not None
        return hit if self.op is MatchOp.RE else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op.value}"{self.value}"'


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


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


_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


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
                if part not in _WEEKDAYS:
                    raise ValueError(f"invalid weekday {part!r}")
        return [x.lower() for x in v]


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

    @field_validator("matchers")
    @classmethod
    def _non_empty(cls, v: list[Matcher]) -> list[Matcher]:
        if not v:
            raise ValueError("a silence needs at least one matcher")
        return v


class SilenceRequest(Model):
    """What a person asks for; the Monitoring workflow assigns the id and clock."""

    matchers: list[Matcher]
    duration: Duration = timedelta(hours=1)
    created_by: str
    comment: str = ""
    request_id: str = ""


class SilenceExpire(Model):
    silence_id: str
    by: str


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
