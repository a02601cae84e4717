"""Alertmanager's v2 API as ARGUS speaks it (besides `POST /api/v2/alerts`, see `fast_v2`), so
`amtool`, Grafana and scripts written for Alertmanager read ARGUS's alerts and manage its silences
unchanged (../docs/integrations.md, "Alertmanager v2 API").

The wire shapes (`PostableSilence` in; `GettableSilence`, `GettableAlert` and the status out), the
matcher form (`isRegex`/`isEqual`), the silence `filter` rule and the list order are Alertmanager
0.25's; the rules for posting a silence again under its id live with the silences, in
`MonitoringWorkflow.update_silence`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from argus.models.agents import AlertView
from argus.models.routing import Matcher, MatchOp, Silence, SilenceState

_OPS = {
    (False, True): MatchOp.EQ,
    (False, False): MatchOp.NE,
    (True, True): MatchOp.RE,
    (True, False): MatchOp.NRE,
}
_FLAGS = {op: flags for flags, op in _OPS.items()}


class AmMatcher(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    value: str
    isRegex: bool  # Alertmanager's field names, as it spells them
    isEqual: bool = True

    def to_matcher(self) -> Matcher:
        return Matcher(name=self.name, value=self.value, op=_OPS[(self.isRegex, self.isEqual)])


class PostableSilence(BaseModel):
    """The body of `POST /api/v2/silences`; with `id`, a change to that silence."""

    model_config = ConfigDict(extra="ignore")  # as Alertmanager: fields it does not know are ignored

    id: str | None = None
    matchers: list[AmMatcher] = Field(min_length=1)
    startsAt: datetime
    endsAt: datetime
    createdBy: str
    comment: str

    def times_problem(self, now: datetime) -> str | None:
        """Alertmanager's own checks on the times, in its words."""
        if self.startsAt.tzinfo is None or self.endsAt.tzinfo is None:
            return "startsAt and endsAt need a time zone (RFC 3339, e.g. 2026-11-28T10:00:00Z)"
        if self.startsAt >= self.endsAt:
            return "Failed to create silence: start time must be before end time"
        if self.endsAt < now:
            return "Failed to create silence: end time can't be in the past"
        return None


def wire_time(t: datetime) -> str:
    """RFC 3339 in UTC to the millisecond, as Alertmanager writes times."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def gettable(s: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": {"state": s.state(now).value},
        "updatedAt": wire_time(s.updated_at or s.starts_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": wire_time(s.ends_at),
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": _FLAGS[m.op][0], "isEqual": _FLAGS[m.op][1]}
            for m in s.matchers
        ],
        "startsAt": wire_time(s.starts_at),
    }


def matches_filter(s: Silence, filters: list[Matcher]) -> bool:
    """Alertmanager's `filter`: every filter matcher is one of the silence's own (same name,
    operator and value), not a match against labels."""
    return all(f in s.matchers for f in filters)


_ORDER = {SilenceState.ACTIVE: 0, SilenceState.PENDING: 1, SilenceState.EXPIRED: 2}


def listed(silences: list[Silence], filters: list[Matcher], now: datetime) -> list[dict[str, Any]]:
    """As `GET /api/v2/silences` lists them: active by end, then pending by start, then expired,
    the latest first."""

    def key(s: Silence) -> tuple[int, float]:
        state = s.state(now)
        t = s.starts_at if state is SilenceState.PENDING else s.ends_at
        return _ORDER[state], -t.timestamp() if state is SilenceState.EXPIRED else t.timestamp()

    chosen = sorted((s for s in silences if matches_filter(s, filters)), key=key)
    return [gettable(s, now) for s in chosen]


def gettable_alert(v: AlertView) -> dict[str, Any]:
    """An alert as Alertmanager lists it: `suppressed` when a silence or another alert holds it.
    One muted by a time interval, a maintenance window or as flapping is `active` there too
    (Alertmanager 0.25 has no field for it), and `argus_muted` says so."""
    a = v.alert
    suppressed = bool(v.silenced_by or v.inhibited_by)
    return {
        "annotations": a.annotations,
        "endsAt": wire_time(v.ends_at),
        "fingerprint": a.fingerprint,
        "receivers": [{"name": r} for r in v.receivers],
        "startsAt": wire_time(a.starts_at),
        "status": {
            "inhibitedBy": v.inhibited_by,
            "silencedBy": v.silenced_by,
            "state": "suppressed" if suppressed else "active",
        },
        "updatedAt": wire_time(v.updated_at),
        **({"generatorURL": a.generator_url} if a.generator_url else {}),
        "labels": a.labels,
        **({"argus_muted": True} if v.muted else {}),
    }
