"""Who is on call at time t, and who a page reaches: pure computation over the configuration.

A schedule's answer, from the top:
1. an override covering t;
2. the highest layer covering t: rotation layers (in configuration order, later ones on top)
   and iCalendar sources (placed by their `precedence`, default on top of every rotation);
3. the schedule's `fallback` people;
4. nobody (said so, never silently).

A rotation layer hands over every `turn` from `start` (UTC arithmetic: give `start` with the
offset of the hand-over time; a DST change moves a local hand-over by an hour); `restrictions`
limit it to time windows (Alertmanager-style specs with a `location` time zone), matched exactly
as the Alert Router matches `time_intervals` (`argus.analysis.routing.in_time_interval`). One
addition for on-call: a time range that ends before it starts ("18:00"-"09:00") is a night
belonging to the day it starts on: 18:00-24:00 on a day the other fields (weekdays, days of
month, months, years) select, and 00:00-09:00 on the day after such a day.

iCalendar: every VEVENT is a shift; RRULE/RDATE/EXDATE and modified instances (RECURRENCE-ID)
are honoured. Recurrences are expanded in DTSTART's own time zone (RFC 5545), so a weekly
09:00-17:00 Europe/Berlin shift stays 09:00-17:00 Berlin time across DST changes; a DTSTART in
UTC ("Z") expands in UTC. All-day events (VALUE=DATE) and floating times (no TZID, no "Z") are
read in the calendar's time zone: its X-WR-TIMEZONE if it has one, else UTC. UNTIL may be a DATE
(inclusive: through the end of that day) or a local time; an RRULE that cannot be read raises
OnCallError naming the calendar and the event. The person is the event's ATTENDEE (by email),
else the person whose name, display name or email appears in its SUMMARY; events that name
nobody are reported by `load_ical`.

Public API (the router explanations call these too):
    who_is_on_call(schedule, at, people=..., ical=...) -> OnCallAnswer
    Directory(people, schedules, ical).resolve(targets, at) -> Resolution
    Directory.person_by_teams / person_by_slack / person_by_email, Directory.groups_of(person, at)
    load_ical(text_or_path, people) -> ICalLayer
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr
from pydantic import Field

from argus.analysis.routing import in_time_interval
from argus.models.common import Model, UtcDateTime
from argus.models.people import (
    GROUP_PREFIX,
    ONCALL_PREFIX,
    OnCallSchedule,
    Person,
    RotationLayer,
)
from argus.models.routing import TimeInterval, TimeIntervalSpec, TimeRange


class OnCallError(ValueError):
    """A schedule or calendar that cannot be used; the message names it and the problem."""


class OnCallAnswer(Model):
    schedule: str
    at: UtcDateTime
    users: list[str] = Field(default_factory=list)
    source: str = "nobody"  # override | layer:<name> | ical:<path> | fallback | nobody
    explanation: str = ""


class Resolution(Model):
    """Targets resolved to people at one time, with why each person is there."""

    people: list[str] = Field(default_factory=list)
    explanation: list[str] = Field(default_factory=list)
    unresolved: list[str] = Field(default_factory=list)


# ---- iCalendar ---------------------------------------------------------------------------------


@dataclass
class _Shift:
    user: str
    start: datetime  # aware, in the event's own zone: recurrences keep its local wall time
    duration: timedelta  # wall-clock length: added to a local start, it ends at the local end
    rules: rruleset | None = None  # None: a single shift at `start`
    summary: str = ""

    def covering(self, at: datetime) -> datetime | None:
        """The start of this event's occurrence that covers `at` (aware), if one does."""
        if self.rules is None:
            return self.start if self.start <= at < self.start + self.duration else None
        # The latest occurrence starting at or before `at` is the only candidate when shifts of one
        # event do not overlap, which is what a rotation calendar is.
        last = self.rules.before(at, inc=True)
        if last is not None and last + self.duration > at:
            return last
        return None


@dataclass
class ICalLayer:
    """The shifts of one calendar; `problems` lists events that were skipped and why."""

    name: str
    shifts: list[_Shift] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timezone: str = "UTC"  # where all-day events and floating times are read (X-WR-TIMEZONE)

    def on_call(self, at: datetime) -> list[str]:
        at = _utc(at)
        users = []
        for shift in self.shifts:
            if shift.covering(at) is not None and shift.user not in users:
                users.append(shift.user)
        return users


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _local(value: date | datetime, zone: tzinfo) -> datetime:
    """An iCalendar DATE or DATE-TIME as an aware datetime that keeps its own zone: a DATE is
    midnight in `zone` (the calendar's), a floating time is read in `zone`, a TZID or UTC time
    stays as it is."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    return datetime.combine(value, time(0), tzinfo=zone)


_UNTIL = re.compile(r"(?i)\bUNTIL=([0-9]{8})(?:T([0-9]{6})(Z?))?")


def _rule(text: str, start: datetime) -> str:
    """The RRULE text with UNTIL in UTC, as dateutil wants it for an aware DTSTART. RFC 5545
    allows UNTIL as a DATE when DTSTART is one (inclusive: the whole day counts, read in the
    start's zone); a local UNTIL (a common exporter habit) is read in the start's zone too."""
    m = _UNTIL.search(text)
    if m is None:
        return text
    day, clock, utc = m.groups()
    try:
        if clock is None:
            until = datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(23, 59, 59))
        else:
            until = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"invalid UNTIL {m.group(0)[6:]!r}") from None
    until = until.replace(tzinfo=UTC) if utc else until.replace(tzinfo=start.tzinfo).astimezone(UTC)
    return text[: m.start()] + f"UNTIL={until:%Y%m%dT%H%M%SZ}" + text[m.end() :]


def _match_person(attendees: list[str], summary: str, people: Mapping[str, Person]) -> str | None:
    emails = {p.email.lower(): name for name, p in people.items() if p.email}
    for attendee in attendees:
        address = attendee.lower().removeprefix("mailto:").strip()
        if address in emails:
            return emails[address]
    text = summary.lower()
    for name, person in people.items():
        for token in (name, person.display_name, person.email):
            if token and re.search(rf"(?<![\w.@-]){re.escape(token.lower())}(?![\w@-])", text):
                return name
    return None


def _calendar_zone(calendar: object, layer: ICalLayer) -> tzinfo:
    name = calendar.get("X-WR-TIMEZONE")  # type: ignore[attr-defined]
    if name is None:
        return UTC
    text = (name.to_ical().decode() if hasattr(name, "to_ical") else str(name)).strip()
    try:
        zone = ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        layer.problems.append(
            f"{layer.name}: unknown X-WR-TIMEZONE {text!r}; all-day events and floating times read in UTC"
        )
        return UTC
    layer.timezone = text
    return zone


def load_ical(source: str | Path, people: Mapping[str, Person], name: str | None = None) -> ICalLayer:
    """Parse an iCalendar text (or a path to one) into a layer of shifts. A calendar that cannot
    be read, or an event whose recurrence cannot be, raises OnCallError; an event that cannot be
    a shift (no start, no length, nobody named) is skipped and listed in `problems`."""
    import icalendar  # only the processes that read calendars pay for the import

    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("BEGIN:")):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise OnCallError(f"cannot read iCalendar file {path}: {exc.strerror}") from None
        layer_name = name or str(path)
    else:
        text, layer_name = str(source), name or "ical"
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise OnCallError(f"{layer_name}: not an iCalendar file: {exc}") from None
    layer = ICalLayer(layer_name)
    zone = _calendar_zone(calendar, layer)
    masters: dict[str, _Shift] = {}
    moved: list[tuple[str, datetime, _Shift]] = []
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", ""))
        summary = str(event.get("SUMMARY", ""))
        where = f"{layer_name}: event {summary or uid or '(no summary)'}"
        if event.get("DTSTART") is None:
            layer.problems.append(f"{where}: no DTSTART, skipped")
            continue
        try:
            raw_start = event.decoded("DTSTART")
            if not isinstance(raw_start, date):
                raise ValueError(f"invalid DTSTART {event['DTSTART'].to_ical().decode()!r}")
            tzid = event["DTSTART"].params.get("TZID")
            if tzid and isinstance(raw_start, datetime) and raw_start.tzinfo is None:
                layer.problems.append(f"{where}: unknown time zone TZID={tzid}, read in {layer.timezone}")
            start = _local(raw_start, zone)
            if event.get("DTEND") is not None:
                duration = _local(event.decoded("DTEND"), zone) - start
            elif event.get("DURATION") is not None:
                duration = event.decoded("DURATION")
            else:
                duration = timedelta(days=1) if not isinstance(raw_start, datetime) else timedelta(0)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise OnCallError(_event_error(layer_name, uid, summary, exc)) from None
        if duration <= timedelta(0):
            layer.problems.append(f"{where}: no positive duration, skipped")
            continue
        raw_attendees = event.get("ATTENDEE") or []
        attendees = [str(a) for a in (raw_attendees if isinstance(raw_attendees, list) else [raw_attendees])]
        user = _match_person(attendees, summary, people)
        if user is None:
            layer.problems.append(f"{where}: names no known person (ATTENDEE or SUMMARY), skipped")
            continue
        rules = None
        try:
            if event.get("RRULE") is not None or event.get("RDATE") is not None:
                rules = rruleset()
                raw_rules = event.get("RRULE") or []
                for prop in raw_rules if isinstance(raw_rules, list) else [raw_rules]:
                    rrule_text = prop.to_ical().decode()
                    try:
                        rules.rrule(rrulestr(_rule(rrule_text, start), dtstart=start, ignoretz=False))
                    except (ValueError, TypeError, KeyError) as exc:
                        raise ValueError(f"invalid RRULE {rrule_text!r}: {exc}") from None
                for rdate in _dates(event, "RDATE", zone):
                    rules.rdate(rdate)
                for exdate in _dates(event, "EXDATE", zone):
                    rules.exdate(exdate)
            recurrence_id = None
            if event.get("RECURRENCE-ID") is not None:
                recurrence_id = _local(event.decoded("RECURRENCE-ID"), zone)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise OnCallError(_event_error(layer_name, uid, summary, exc)) from None
        shift = _Shift(user=user, start=start, duration=duration, rules=rules, summary=summary)
        if recurrence_id is not None:
            moved.append((uid, recurrence_id, shift))
        else:
            masters[uid or f"#{len(masters)}"] = shift
            layer.shifts.append(shift)
    for uid, original, shift in moved:
        master = masters.get(uid)
        if master is not None and master.rules is not None:
            master.rules.exdate(original)  # the modified instance replaces the original occurrence
        layer.shifts.append(shift)
    return layer


def _event_error(layer_name: str, uid: str, summary: str, exc: BaseException) -> str:
    return f"{layer_name}: event UID {uid or '(none)'} ({summary or 'no summary'}): {exc}"


def _dates(event: object, prop: str, zone: tzinfo) -> list[datetime]:
    values = event.get(prop)  # type: ignore[attr-defined]
    if values is None:
        return []
    out = []
    for value in values if isinstance(values, list) else [values]:
        for d in value.dts:
            dt = d.dt[0] if isinstance(d.dt, tuple) else d.dt  # a PERIOD: its start
            out.append(_local(dt, zone))
    return out


# ---- schedules ---------------------------------------------------------------------------------


def in_windows(windows: list[TimeIntervalSpec], at: datetime) -> bool:
    """True if `at` falls in any window. Each window matches exactly as the Alert Router's
    `time_intervals` do (`in_time_interval`: weekdays, days of month including negative ones,
    months, years, times with an exclusive end, in the window's `location`), plus overnight
    ranges: a time range ending before it starts (18:00-09:00) covers 18:00-24:00 on each day
    the window's other fields select and 00:00-09:00 on the day after each such day."""
    at = _utc(at)
    for spec in windows:
        overnight = [t for t in spec.times if t.start_time > t.end_time]  # "HH:MM" sorts as time
        if not overnight:
            if _matches(spec, at):
                return True
            continue
        same_day = [t for t in spec.times if t.start_time <= t.end_time]
        same_day += [TimeRange(start_time=t.start_time, end_time="24:00") for t in overnight]
        if _matches(spec.model_copy(update={"times": same_day}), at):
            return True
        # The morning part: the time of day is today's, the day is the one the night began on.
        local = at.astimezone(ZoneInfo(spec.location)) if spec.location != "UTC" else at
        minute = local.hour * 60 + local.minute
        if not any(minute < t.minutes()[1] for t in overnight):
            continue
        eve = datetime.combine(local.date() - timedelta(days=1), time(12), tzinfo=local.tzinfo)
        if _matches(spec.model_copy(update={"times": []}), eve):
            return True
    return False


def _matches(spec: TimeIntervalSpec, at: datetime) -> bool:
    return in_time_interval(TimeInterval(name="restriction", time_intervals=[spec]), at)


def _layer_users(layer: RotationLayer, at: datetime) -> list[str]:
    if at < layer.start or (layer.end is not None and at >= layer.end):
        return []
    if layer.restrictions and not in_windows(layer.restrictions, at):
        return []
    turn = int((at - layer.start) / layer.turn)
    return [layer.users[turn % len(layer.users)]]


def who_is_on_call(
    schedule: OnCallSchedule,
    at: datetime,
    ical: Mapping[str, ICalLayer] | None = None,
) -> OnCallAnswer:
    """Who `schedule` says is on call at `at`, and why. `ical`: loaded calendars by path."""
    at = _utc(at)
    overriding = [o.user for o in schedule.overrides if o.start <= at < o.end]
    if overriding:
        reason = next(o.reason for o in schedule.overrides if o.start <= at < o.end)
        return OnCallAnswer(
            schedule=schedule.name,
            at=at,
            users=list(dict.fromkeys(overriding)),
            source="override",
            explanation=f"{schedule.name}: override for {', '.join(overriding)}"
            + (f" ({reason})" if reason else ""),
        )
    stack: list[tuple[float, str, list[str]]] = []
    for i, layer in enumerate(schedule.layers):
        stack.append((float(i), f"layer:{layer.name}", _layer_users(layer, at)))
    for src in schedule.ical:
        loaded = (ical or {}).get(src.path)
        if loaded is None:
            raise OnCallError(f"schedule {schedule.name!r}: calendar {src.path} is not loaded")
        stack.append((float(src.precedence), f"ical:{src.path}", loaded.on_call(at)))
    for _, source, users in sorted(stack, key=lambda s: s[0], reverse=True):
        if users:
            return OnCallAnswer(
                schedule=schedule.name,
                at=at,
                users=users,
                source=source,
                explanation=f"{schedule.name}: {', '.join(users)} from {source}",
            )
    if schedule.fallback:
        return OnCallAnswer(
            schedule=schedule.name,
            at=at,
            users=list(schedule.fallback),
            source="fallback",
            explanation=f"{schedule.name}: no layer covers {at:%Y-%m-%d %H:%M} UTC, fallback "
            f"{', '.join(schedule.fallback)}",
        )
    return OnCallAnswer(
        schedule=schedule.name,
        at=at,
        explanation=f"{schedule.name}: nobody is on call at {at:%Y-%m-%d %H:%M} UTC",
    )


class Directory:
    """People and schedules together: who a target means, who an outside identity is."""

    def __init__(
        self,
        people: Mapping[str, Person] | None = None,
        schedules: Iterable[OnCallSchedule] = (),
        ical: Mapping[str, ICalLayer] | None = None,
    ) -> None:
        self.people = dict(people or {})
        self.schedules = {s.name: s for s in schedules}
        self.ical = dict(ical or {})
        self._by_teams = {p.teams: n for n, p in self.people.items() if p.teams}
        self._by_slack = {p.slack: n for n, p in self.people.items() if p.slack}
        self._by_email = {p.email.lower(): n for n, p in self.people.items() if p.email}

    @classmethod
    def from_config(
        cls, people: Mapping[str, Person], schedules: list[OnCallSchedule], base: Path
    ) -> Directory:
        """Loads every schedule's calendars (paths relative to `base`); unusable ones raise.
        Layer restrictions are checked where the configuration loads (config_checks)."""
        ical = {}
        for sched in schedules:
            for src in sched.ical:
                path = Path(src.path).expanduser()
                ical[src.path] = load_ical(path if path.is_absolute() else base / path, people, src.path)
        return cls(people, schedules, ical)

    def person_by_teams(self, aad_object_id: str) -> str | None:
        return self._by_teams.get(aad_object_id)

    def person_by_slack(self, user_id: str) -> str | None:
        return self._by_slack.get(user_id)

    def person_by_email(self, email: str) -> str | None:
        return self._by_email.get(email.lower())

    def on_call(self, schedule: str, at: datetime) -> OnCallAnswer:
        if schedule not in self.schedules:
            raise OnCallError(f"unknown on-call schedule {schedule!r} (known: {sorted(self.schedules)})")
        return who_is_on_call(self.schedules[schedule], at, self.ical)

    def groups_of(self, person: str, at: datetime) -> list[str]:
        """The person's configured groups plus `oncall:<schedule>` for every schedule they are on
        call for at `at`: an approver group may be a schedule."""
        groups = list(self.people[person].groups) if person in self.people else []
        for name in self.schedules:
            if person in self.on_call(name, at).users:
                groups.append(f"{ONCALL_PREFIX}{name}")
        return groups

    def resolve(self, targets: Iterable[str], at: datetime) -> Resolution:
        out = Resolution()

        def add(person: str, why: str) -> None:
            if person not in out.people:
                out.people.append(person)
                out.explanation.append(why)

        for target in targets:
            if target.startswith(ONCALL_PREFIX):
                answer = self.on_call(target.removeprefix(ONCALL_PREFIX), at)
                if not answer.users:
                    out.unresolved.append(target)
                    out.explanation.append(answer.explanation)
                for user in answer.users:
                    add(user, f"{user}: on call ({answer.explanation})")
            elif target.startswith(GROUP_PREFIX):
                group = target.removeprefix(GROUP_PREFIX)
                members = [n for n, p in self.people.items() if group in p.groups]
                if not members:
                    out.unresolved.append(target)
                    out.explanation.append(f"group {group!r} has no members")
                for member in members:
                    add(member, f"{member}: member of group {group}")
            else:
                add(target, f"{target}: named")
        return out


__all__ = [
    "Directory",
    "ICalLayer",
    "OnCallAnswer",
    "OnCallError",
    "Resolution",
    "in_windows",
    "load_ical",
    "who_is_on_call",
]
