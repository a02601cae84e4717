"""Configuration contracts of the Evaluator beyond threshold rules: SLOs with multi-window,
multi-burn-rate alerts, and the Alert Router's correlation across sources and topology."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from .common import Model
from .durations import Duration, format_duration

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
WINDOW_PLACEHOLDER = "$window"
# `{{ $value }}` / `{{ .Value }}` in a template action.
_VALUE_IN_TEMPLATE = re.compile(r"\{\{[^}]*(?:\$value|\.Value)\b")


def labels_without_value(labels: dict[str, str]) -> dict[str, str]:
    """Refuse a rule label templated on the value: labels identify an alert, so each new value
    would resolve one alert and fire another (Prometheus allows it; linters such as pint warn)."""
    for name, text in labels.items():
        if _VALUE_IN_TEMPLATE.search(text):
            raise ValueError(
                f"label {name!r} uses the value ({text!r}): labels identify the alert, so it would "
                "become a new alert whenever the value changes; put the value in an annotation"
            )
    return labels


class BurnRateWindow(Model):
    """Alert when the error budget burns `factor` times too fast over both windows.

    The long window makes the alert significant, the short one makes it reset quickly once
    the burn stops (the SRE workbook's multi-window, multi-burn-rate scheme).
    """

    long: Duration
    short: Duration
    factor: float = Field(gt=0)
    severity: str = "critical"

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRateWindow:
        if self.short >= self.long:
            raise ValueError(
                f"short window {format_duration(self.short)} must be shorter than the long window "
                f"{format_duration(self.long)}"
            )
        return self

    @property
    def label(self) -> str:
        return f"{format_duration(self.long)}/{format_duration(self.short)}"


def workbook_windows() -> list[BurnRateWindow]:
    """The SRE workbook's table for a 30-day budget: two paging and two ticketing pairs."""
    return [
        BurnRateWindow(long=timedelta(hours=1), short=timedelta(minutes=5), factor=14.4, severity="critical"),
        BurnRateWindow(long=timedelta(hours=6), short=timedelta(minutes=30), factor=6, severity="critical"),
        BurnRateWindow(long=timedelta(days=1), short=timedelta(hours=2), factor=3, severity="warning"),
        BurnRateWindow(long=timedelta(days=3), short=timedelta(hours=6), factor=1, severity="warning"),
    ]


class SloConfig(Model):
    """A service level objective on an error ratio, e.g. 99.9 % of requests succeed.

    `errors` and `total` are queries with a `$window` placeholder (PromQL on a Prometheus
    source, e.g. `sum by (service) (rate(http_errors_total[$window]))`; `rate(metric[$window])`
    on the embedded store). Series are joined on their labels; the ratio errors/total over each
    window is compared with `factor x (1 - objective)`.
    """

    name: str
    objective: float = Field(description="target success ratio in percent, e.g. 99.9")
    errors: str
    total: str
    source: str | None = None
    service: str | None = None
    windows: list[BurnRateWindow] = Field(default_factory=workbook_windows)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"SLO name {v!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: float) -> float:
        if not 0 < v < 100:
            raise ValueError(f"objective {v} must be a percentage strictly between 0 and 100 (e.g. 99.9)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels_without_value(cls, v: dict[str, str]) -> dict[str, str]:
        return labels_without_value(v)

    @field_validator("errors", "total")
    @classmethod
    def _has_window(cls, v: str) -> str:
        if WINDOW_PLACEHOLDER not in v:
            raise ValueError(f"query {v!r} needs the {WINDOW_PLACEHOLDER} placeholder for the window")
        return v

    @field_validator("windows")
    @classmethod
    def _some_windows(cls, v: list[BurnRateWindow]) -> list[BurnRateWindow]:
        if not v:
            raise ValueError("an SLO needs at least one burn-rate window pair")
        return v

    @property
    def budget(self) -> float:
        """The allowed error ratio (1 - objective)."""
        return 1.0 - self.objective / 100.0

    def query(self, which: str, window: timedelta) -> str:
        text = self.errors if which == "errors" else self.total
        return text.replace(WINDOW_PLACEHOLDER, format_duration(window))

    def all_windows(self) -> list[timedelta]:
        return sorted({w for pair in self.windows for w in (pair.long, pair.short)})


class CorrelationConfig(Model):
    """Attach alerts that belong together to one group, and so to one incident.

    Two alerts are related when they are on the same service (say a log-error spike from
    Elasticsearch and a latency rise from Prometheus), or on services within `max_hops` of each
    other along a chain of `services[].depends_on` (either way round: a service and what it
    depends on, directly or through others; two services that only share a caller or a
    dependency are not related through it), the second arrives within `window` of the group's
    first alert, and it began firing at most `window` before that one did. Only groups with the
    same receiver are joined, so correlation never changes who is told.
    """

    enabled: bool = True
    window: Duration = timedelta(minutes=10)
    max_hops: int = Field(default=2, ge=0)
    service_label: str = "service"
    topology: list[tuple[str, str]] = Field(default_factory=list)  # (caller, callee); from `services`


__all__ = ["BurnRateWindow", "CorrelationConfig", "SloConfig", "labels_without_value", "workbook_windows"]
