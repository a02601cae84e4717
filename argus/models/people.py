"""People, on-call schedules and the time-of-day rules escalation uses (configuration schema).

A person is addressed on every channel through this directory: email, phone, Slack user id,
Teams (Entra) object id. Schedules say who is on call at a time: rotation layers (later layers
override earlier ones where they cover the time), explicit overrides on top, and iCalendar files
(a PagerDuty/Opsgenie schedule export or any calendar of shifts) as a layer. The computation
lives in `argus.integrations.oncall`; this module only describes it.

Escalation targets and approver lists name people, `group:<name>` (everyone in a group) or
`oncall:<schedule>` (whoever is on call when the page goes out).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration
from .routing import TimeIntervalSpec

ONCALL_PREFIX = "oncall:"
GROUP_PREFIX = "group:"


class Person(Model):
    """One human ARGUS may page or accept a decision from. The key in `people:` is their name."""

    email: str | None = None
    phone: str | None = None  # E.164, e.g. +4915112345678
    slack: str | None = None  # Slack user id (U…)
    teams: str | None = None  # Entra (AAD) object id, as Teams sends it in `from.aadObjectId`
    groups: list[str] = Field(default_factory=list)
    display_name: str | None = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("+") and v[1:].isdigit() and 8 <= len(v) <= 16):
            raise ValueError(f"phone {v!r} must be in E.164 form (+ and 7-15 digits)")
        return v


class RotationLayer(Model):
    """Users take turns of `turn` length from `start`; `restrictions` limit the layer to windows
    (e.g. a night layer 18:00-09:00). Without restrictions the layer covers all the time."""

    name: str
    users: list[str]
    start: UtcDateTime
    turn: Duration = timedelta(days=7)
    end: UtcDateTime | None = None
    restrictions: list[TimeIntervalSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sane(self) -> RotationLayer:
        if not self.users:
            raise ValueError(f"layer {self.name!r}: needs at least one user")
        if self.turn <= timedelta(0):
            raise ValueError(f"layer {self.name!r}: turn must be positive")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"layer {self.name!r}: end must be after start")
        return self


class OnCallOverride(Model):
    """`user` takes the shift from `start` to `end`, whatever the layers say."""

    user: str
    start: UtcDateTime
    end: UtcDateTime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> OnCallOverride:
        if self.end <= self.start:
            raise ValueError(f"override for {self.user!r}: end must be after start")
        return self


class ICalSource(Model):
    """An iCalendar file of shifts (VEVENTs, RRULE supported). The person of an event is its
    ATTENDEE (matched by email), else a person's name, email or display name in its SUMMARY."""

    path: str  # relative to the state dir unless absolute
    precedence: int = 100  # layer position: higher wins; rotation layers count 0, 1, 2, …


class OnCallSchedule(Model):
    name: str
    layers: list[RotationLayer] = Field(default_factory=list)
    overrides: list[OnCallOverride] = Field(default_factory=list)
    ical: list[ICalSource] = Field(default_factory=list)
    fallback: list[str] = Field(default_factory=list)  # nobody covers the time: page these


__all__ = [
    "GROUP_PREFIX",
    "ONCALL_PREFIX",
    "ICalSource",
    "OnCallOverride",
    "OnCallSchedule",
    "Person",
    "RotationLayer",
]
