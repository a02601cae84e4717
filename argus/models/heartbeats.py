"""Heartbeat checks (a dead-man switch for jobs and daemons): configuration, check-ins and state.

A job pings `POST /api/v1/heartbeats/<name>` when it runs (`?status=fail` when it failed). Each
check is one `HeartbeatWorkflow` whose durable timer fires when a check-in is overdue by more
than the grace period; that raises one alert through Monitoring, and the next good check-in
resolves it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
from .durations import Duration

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class HeartbeatCheck(Model):
    """Either `interval` (a ping at least every interval) or `cron` (a ping at each tick of the
    cron expression, evaluated in `timezone`); in both cases `grace` is how late is still fine."""

    name: str
    interval: Duration | None = None
    cron: str | None = None
    timezone: str = "UTC"
    grace: Duration = timedelta(minutes=5)
    service: str | None = None  # the alert's `service` label; default: the check name
    severity: str = "critical"
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"heartbeat name {v!r}: use lowercase letters, digits, '-', '_', '.' (max 100), "
                "starting with a letter or digit"
            )
        return v

    @model_validator(mode="after")
    def _schedule(self) -> HeartbeatCheck:
        if (self.interval is None) == (self.cron is None):
            raise ValueError(f"heartbeat {self.name!r}: give exactly one of interval or cron")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError(f"heartbeat {self.name!r}: interval must be positive")
        if self.grace < timedelta(0):
            raise ValueError(f"heartbeat {self.name!r}: grace must not be negative")
        if self.cron is not None:
            from argus.analysis.heartbeat_schedule import cron_problem

            problem = cron_problem(self.cron, self.timezone)
            if problem:
                raise ValueError(f"heartbeat {self.name!r}: {problem}")
        return self

    @property
    def alert_service(self) -> str:
        return self.service or self.name


class HeartbeatsConfig(Model):
    checks: list[HeartbeatCheck] = Field(default_factory=list)
    scope: str = "default"  # the monitoring scope whose `ingest` receives the alerts
    refresh: Duration = timedelta(days=1)  # a down check re-sends its alert this often

    @model_validator(mode="after")
    def _unique(self) -> HeartbeatsConfig:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"heartbeats.checks: duplicate name(s) {dupes}")
        return self

    def get(self, name: str) -> HeartbeatCheck | None:
        return next((c for c in self.checks if c.name == name), None)


class PingStatus(StrEnum):
    OK = "ok"
    FAIL = "fail"
    START = "start"  # the job began; informational


class HeartbeatPing(Model):
    status: PingStatus = PingStatus.OK
    message: str = Field(default="", max_length=2000)
    exit_code: int | None = None
    at: UtcDateTime | None = None  # when the gateway received it
    ping_id: str = ""  # dedupes a re-sent ping
    source: str = ""


class CheckState(StrEnum):
    NEW = "new"  # no ping yet, not yet overdue
    UP = "up"
    DOWN = "down"  # overdue or failed: its alert is firing


class HeartbeatState(Model):
    """Carried across continue-as-new."""

    state: CheckState = CheckState.NEW
    created_at: UtcDateTime | None = None
    last_ping: UtcDateTime | None = None
    last_status: PingStatus | None = None
    last_message: str = ""
    episode: int = 0  # incremented each time the check goes down
    down_reason: str = ""
    down_cause: str = ""  # missed | failed: names the alert for the whole episode
    down_since: UtcDateTime | None = None
    alert_sent_at: UtcDateTime | None = None
    pings: int = 0
    recent_pings: list[str] = Field(default_factory=list)
    runs: int = 1


class HeartbeatInput(Model):
    check: HeartbeatCheck
    scope: str = "default"
    refresh: Duration = timedelta(days=1)
    carried: HeartbeatState | None = None


class HeartbeatStatus(Model):
    name: str
    state: CheckState
    schedule: str
    grace: Duration
    last_ping: UtcDateTime | None = None
    last_status: PingStatus | None = None
    last_message: str = ""
    next_deadline: UtcDateTime | None = None
    down_since: UtcDateTime | None = None
    down_reason: str = ""
    episode: int = 0
    pings: int = 0


class HeartbeatAlertRequest(Model):
    """What the HeartbeatWorkflow asks its activity to push into Monitoring."""

    check: HeartbeatCheck
    scope: str
    batch_id: str  # deterministic: a retried activity sends the same batch, applied once
    firing: bool
    cause: str  # missed | failed
    reason: str
    since: UtcDateTime
    until: UtcDateTime  # firing: keeps firing until then unless refreshed; resolved: when it ended


__all__ = [
    "CheckState",
    "HeartbeatAlertRequest",
    "HeartbeatCheck",
    "HeartbeatInput",
    "HeartbeatPing",
    "HeartbeatState",
    "HeartbeatStatus",
    "HeartbeatsConfig",
    "PingStatus",
]
