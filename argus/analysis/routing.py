"""The Alert Router's decisions, as pure deterministic code.

The MonitoringWorkflow owns the state (`RouterState`) and calls `Router` on every batch and
every timer, so routing survives crashes with the workflow and is replayed exactly. No clock
is read here: `now` is always passed in (the workflow's `workflow.now()`).

Semantics follow Alertmanager's: a routing tree with matchers and `continue`; `group_by`
(with `...` for all labels); `group_wait` before a new group opens its incident;
`group_interval` between updates sent to an open incident; `repeat_interval` before a
still-firing group whose incident was closed opens a new one; inhibition rules; silences;
mute/active time intervals; plus maintenance windows, flap suppression and correlation
across sources and along the service topology (`argus.analysis.correlation`). Every alert gets
a `RouteDecision` that says why.

Alertmanager details kept (checked against its dispatch/route.go and inhibit/inhibit.go):
* a child route inherits receiver, group_by and the three timers, but NOT its parent's
  `mute_time_intervals`/`active_time_intervals`; the root route has none;
* with no `group_by` anywhere, all alerts of a route form one group (group by no label);
* an inhibition rule compares its `equal` labels with a missing label read as empty, so two
  alerts that both lack the label are equal; an alert that matches both the source and the
  target side cannot be inhibited by another alert matching both sides;
* suppressed alerts (silenced, inhibited, muted, in maintenance) are remembered: they still
  inhibit others, and when their suppression ends they are released into their group, as
  Alertmanager notifies an alert whose silence expired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field

from argus.analysis.correlation import (
    Candidate,
    Correlation,
    GroupView,
    Topology,
    explain_related,
    first_fit,
    rank_related,
)
from argus.models import Alert, AlertStatus, Matcher, Route, RouteDecision, RouteDecisionKind, Silence
from argus.models.agents import AlertListing, AlertQuery, AlertView
from argus.models.alert import alert_from_compact
from argus.models.common import Model, UtcDateTime, construct_unvalidated
from argus.models.config import RoutingConfig
from argus.models.routing import MONTHS, WEEKDAYS, InhibitRule, MatchOp, TimeInterval, matches_all

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
MAX_TRANSITIONS = 16
MAX_FLIPS = 10_000  # alerts whose state changes are remembered after their entry went (see flips)
MAX_GROUP_DECISIONS = 50  # explanations kept per group until its incident is told
MAX_FORWARD = 200  # alerts sent to an incident per update (its input and signals stay small)
SLOW_PATH_COST = 25  # a new or changed alert costs about as much as this many repeats
RESOLVED_NEWS_INTERVAL = timedelta(seconds=10)  # resolutions reach the incident at most this late
MIN_SWEEP = timedelta(seconds=1)  # expiry is checked at most this often, on a full pass
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class ResolvedRoute(Model):
    """A leaf of the routing tree an alert reached, with inherited settings filled in."""

    path: str
    receiver: str
    group_by: list[str]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)


def _decided(
    fp: str, name: str, kind: RouteDecisionKind, reason: str, key: str | None, at: datetime
) -> RouteDecision:
    """A decision on the ingest path, built from values the router holds (already valid)."""
    return construct_unvalidated(
        RouteDecision,
        {"fingerprint": fp, "alertname": name, "kind": kind, "reason": reason, "group_key": key, "at": at},
    )


class AlertEntry(Model):
    alert: Alert
    first_seen: UtcDateTime
    last_seen: UtcDateTime
    transitions: list[UtcDateTime] = Field(default_factory=list)
    flapping: bool = False
    sup_version: int = -1  # RouterState.sup_version when suppression was last checked


class GroupState(Model):
    key: str
    incident_id: str
    labels: dict[str, str]
    route: ResolvedRoute
    alerts: dict[str, AlertEntry] = Field(default_factory=dict)
    created_at: UtcDateTime
    incident_open: bool = False
    incident_closed_at: UtcDateTime | None = None
    last_flush: UtcDateTime | None = None
    # Fingerprints changed since the last flush (a dict for O(1) membership and a stable order).
    dirty: dict[str, bool] = Field(default_factory=dict)
    resolved_dirty: bool = False  # a resolution is among the changes (the last one: tell at once)
    decisions: list[RouteDecision] = Field(default_factory=list)  # not yet shown to the incident
    decisions_dropped: int = 0  # older ones beyond MAX_GROUP_DECISIONS, counted only
    # The suppression version at which the group was due to open but every firing alert was
    # held back (flapping or inhibited): not due again until that or the group changes.
    open_held: int | None = None
    # When the alert that opened the group began firing (its startsAt, at most `created_at`):
    # correlation folds in no alert that began more than its window before it. None: a group
    # opened by a run begun before (its `created_at` stands for it).
    onset: UtcDateTime | None = None
    # Firing alerts kept out of the incident because a silence or inhibition muted them when the
    # group opened (Alertmanager leaves them out of the notification): told once the mute ends,
    # never told if they resolve first.
    kept_out: list[str] = Field(default_factory=list)
    # The suppression version at which the kept-out alerts were last looked at: they are looked
    # at again only once a mute may have ended (silences, windows, inhibition sources changed).
    kept_out_seen: int = -1

    def firing(self) -> list[Alert]:
        return [e.alert for e in self.alerts.values() if e.alert.status == AlertStatus.FIRING]


VIEW_BUDGET_BYTES = 2_000_000  # what one alert listing may carry (Router.alert_views)


class HeldAlert(Model):
    """A firing alert the router suppressed; kept to inhibit others and to release it later."""

    alert: Alert
    route: ResolvedRoute
    kind: RouteDecisionKind
    last_seen: UtcDateTime
    recheck_at: UtcDateTime | None = None
    sup_version: int = -1


class RouterState(Model):
    groups: dict[str, GroupState] = Field(default_factory=dict)
    held: dict[str, HeldAlert] = Field(default_factory=dict)  # "<route path>|<fingerprint>"
    attached: dict[str, str] = Field(default_factory=dict)  # "<route path>|<fingerprint>" -> group key
    silences: list[Silence] = Field(default_factory=list)
    recent: list[RouteDecision] = Field(default_factory=list)  # ring buffer for the CLI
    counts: dict[str, int] = Field(default_factory=dict)
    # Bumped whenever what suppresses alerts may have changed (silences, maintenance and time
    # interval boundaries, firing inhibition sources): a repeat of a known alert re-checks its
    # suppression only then, so the bulk of traffic — repeats — costs a dictionary lookup.
    sup_version: int = 0
    config_digest: str = ""
    # State changes within flap_window of alerts whose resolution was told (their entry goes
    # then), by fingerprint: an alert that fires again carries on counting from them. Without
    # this, an alert flipping more slowly than an update flush never reached flap_threshold.
    flips: dict[str, list[UtcDateTime]] = Field(default_factory=dict)


class GroupAction(Model):
    """What the workflow must do for a group: open an incident, or send it what changed."""

    kind: str  # "open" | "update"
    group_key: str
    incident_id: str
    labels: dict[str, str]
    receiver: str
    alerts: list[Alert]
    decisions: list[RouteDecision]
    decisions_dropped: int = 0  # older ones the group did not keep (MAX_GROUP_DECISIONS)
    firing_count: int = 0


def _sample(alerts: list[Alert]) -> list[Alert]:
    """At most MAX_FORWARD alerts for an incident: resolutions first (they are news), then the
    newest firing ones; the full count travels as `firing_count`."""
    if len(alerts) <= MAX_FORWARD:
        return alerts
    resolved = [a for a in alerts if a.status == AlertStatus.RESOLVED]
    firing = [a for a in alerts if a.status != AlertStatus.RESOLVED]
    return (resolved + firing[::-1])[:MAX_FORWARD]


def incident_id_for(scope: str, group_key: str) -> str:
    """Deterministic workflow id of a group's incident: duplicates collapse by construction."""
    digest = hashlib.sha256(f"{scope}\x00{group_key}".encode()).hexdigest()[:16]
    return f"incident-{digest}"


def resolve_routes(root: Route, labels: dict[str, str]) -> list[ResolvedRoute]:
    """Walk the tree like Alertmanager: deepest matching nodes; siblings only with `continue`."""
    return RouteTree(root).resolve(labels)


class RouteTree:
    """A routing tree with every node's settings resolved once (what it inherits from its
    parents): matching an alert then only tests matchers. Building a ResolvedRoute per alert was
    about 5 µs of the 40 µs a new alert costs the router. The resolved routes are shared by every
    alert that reaches the node; nothing changes them."""

    def __init__(self, root: Route) -> None:
        self.root = root
        self._resolved: dict[int, ResolvedRoute] = {}  # id(node) -> its settings; nodes live in root
        self._resolve(root, None, "root")

    def _resolve(self, node: Route, parent: ResolvedRoute | None, path: str) -> None:
        resolved = _root_route(node) if parent is None else _inherit(node, parent, path)
        self._resolved[id(node)] = resolved
        for i, child in enumerate(node.routes):
            self._resolve(child, resolved, f"{path}/{i}")

    def resolve(self, labels: dict[str, str]) -> list[ResolvedRoute]:
        def walk(node: Route) -> list[ResolvedRoute]:
            out: list[ResolvedRoute] = []
            for child in node.routes:
                if not matches_all(child.matchers, labels):
                    continue
                out.extend(walk(child))
                if not child.continue_:
                    break
            return out or [self._resolved[id(node)]]

        return walk(self.root)


def _inherit(node: Route, parent: ResolvedRoute, path: str) -> ResolvedRoute:
    return ResolvedRoute(
        path=path,
        receiver=node.receiver or parent.receiver,
        group_by=node.group_by if node.group_by is not None else parent.group_by,
        group_wait=node.group_wait if node.group_wait is not None else parent.group_wait,
        group_interval=node.group_interval if node.group_interval is not None else parent.group_interval,
        repeat_interval=node.repeat_interval if node.repeat_interval is not None else parent.repeat_interval,
        # Alertmanager: time intervals belong to the node that names them, never inherited.
        mute_time_intervals=list(node.mute_time_intervals),
        active_time_intervals=list(node.active_time_intervals),
    )


def _root_route(root: Route) -> ResolvedRoute:
    return ResolvedRoute(
        path="root",
        receiver=root.receiver or "default",
        group_by=root.group_by if root.group_by is not None else [],
        group_wait=root.group_wait if root.group_wait is not None else DEFAULT_GROUP_WAIT,
        group_interval=root.group_interval if root.group_interval is not None else DEFAULT_GROUP_INTERVAL,
        repeat_interval=root.repeat_interval if root.repeat_interval is not None else DEFAULT_REPEAT_INTERVAL,
        mute_time_intervals=root.mute_time_intervals,
        active_time_intervals=root.active_time_intervals,
    )


def group_labels(route: ResolvedRoute, labels: dict[str, str]) -> dict[str, str]:
    if "..." in route.group_by:
        return dict(labels)
    return {k: labels[k] for k in route.group_by if k in labels}


def group_key(route: ResolvedRoute, glabels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(glabels.items()))
    return f"{route.path}:{{{inner}}}"


def in_time_interval(interval: TimeInterval, now: datetime) -> bool:
    for spec in interval.time_intervals:
        local = now.astimezone(ZoneInfo(spec.location)) if spec.location != "UTC" else now
        if spec.weekdays and not _in_ranges(local.weekday(), spec.weekdays, _weekday_index):
            continue
        if spec.days_of_month and not _in_day_ranges(local, spec.days_of_month):
            continue
        if spec.months and not _in_ranges(local.month, spec.months, _month_index):
            continue
        if spec.years and not _in_ranges(local.year, spec.years, int):
            continue
        if spec.times:
            minute = local.hour * 60 + local.minute
            if not any(a <= minute < b for a, b in (t.minutes() for t in spec.times)):
                continue
        return True
    return False


def _weekday_index(s: str) -> int:
    return WEEKDAYS.index(s.lower())


def _month_index(s: str) -> int:
    return int(s) if s.isdigit() else MONTHS.index(s.lower()) + 1


def _in_day_ranges(local: datetime, ranges: list[str]) -> bool:
    """Alertmanager's days_of_month: 1..31, or negative from the month's end (-1 is the last day)."""
    import calendar

    last = calendar.monthrange(local.year, local.month)[1]

    def day(text: str) -> int:
        n = int(text)
        return last + 1 + n if n < 0 else n

    for r in ranges:
        lo, sep, hi = r.partition(":")
        a = day(lo)
        b = day(hi) if sep else a
        if a <= local.day <= b:
            return True
    return False


def _in_ranges(value: int, ranges: list[str], conv) -> bool:  # type: ignore[no-untyped-def]
    for r in ranges:
        lo, _, hi = r.partition(":")
        a = conv(lo)
        b = conv(hi) if hi else a
        if a <= value <= b:
            return True
    return False


class SilenceLookup:
    """The silences that match a label set, testing only those whose first equality matcher the
    labels pass (most silences name a service or an alertname): listing a scope's alerts
    against its silences costs a few dictionary lookups per alert, not one match per silence."""

    def __init__(self, silences: list[Silence]) -> None:
        self._keyed: dict[tuple[str, str], list[tuple[int, Silence]]] = {}
        self._rest: list[tuple[int, Silence]] = []
        for i, s in enumerate(silences):
            eq = next((m for m in s.matchers if m.op is MatchOp.EQ), None)
            if eq is None:
                self._rest.append((i, s))
            else:
                self._keyed.setdefault((eq.name, eq.value), []).append((i, s))
        self._names = sorted({name for name, _ in self._keyed})

    def matching(self, labels: dict[str, str]) -> list[str]:
        """Ids of the matching silences, in the order given."""
        found = list(self._rest)
        for name in self._names:  # a missing label reads as "", as Matcher.matches reads it
            found += self._keyed.get((name, labels.get(name, "")), ())
        return [s.id for _, s in sorted(found, key=lambda x: x[0]) if matches_all(s.matchers, labels)]


class Router:
    """Applies routing decisions to `state` in place. Create one per workflow run and keep it."""

    def __init__(
        self, config: RoutingConfig, state: RouterState, scope: str, recent_limit: int = 500
    ) -> None:
        self.config = config
        self.state = state
        self.scope = scope
        self.recent_limit = recent_limit
        # What this scope may hold: routing.max_tracked_alerts, or fewer when its workflow has
        # measured that fewer fit one continue-as-new hand-over (see MonitoringWorkflow).
        self.capacity = config.max_tracked_alerts
        self.capacity_reason = f"routing.max_tracked_alerts {config.max_tracked_alerts}"
        self._refusal: tuple[int, str, str] = (-1, "", "")  # (held, capacity_reason, reason)
        # Flapping counted across told resolutions and released once stable, and a group whose
        # alerts are all held back waiting for a change instead of being looked at on every pass.
        # The monitoring workflow turns it off for runs begun before it (they replay as they ran).
        self.settled_holds = True
        # Silences and maintenance windows that began while a group waited out group_wait keep
        # its incident from opening (see `due`). Off for runs begun before (see settled_holds).
        self.silence_at_open = True
        # Whether a group that opens keeps its muted alerts out of the incident (GroupState.
        # kept_out). Asked only when such an alert is there: the monitoring workflow answers with
        # a patch, and a patch asked on every run would cost each run history events.
        self.keep_muted_out: Callable[[], bool] = lambda: True
        self._intervals = {ti.name: ti for ti in config.time_intervals}
        self._routes = RouteTree(config.route)
        self._uses_intervals = _route_uses_intervals(config.route)
        # Caches derived from the state (rebuilt after continue-as-new, so replay sees the same).
        self._index: dict[str, list[tuple[str, str]]] = {}  # fingerprint -> [(slot, group key)]
        # Firing alerts per group by service and by source, and the groups per service: what
        # correlation asks, kept up to date as alerts come and go.
        self._topology = Topology(config.correlation.topology, directed_=True)
        self._svc_count: dict[str, dict[str, int]] = {}
        self._src_count: dict[str, dict[str, int]] = {}
        self._svc_groups: dict[str, set[str]] = {}
        # What correlation picked for a (service, receiver), and the generation of the live
        # groups it was picked from: any change to them (a group opens, closes or goes, a
        # service or source joins or leaves one) starts a new generation. In an alert storm
        # every new alert of a folded group asks again, and the answer is then a lookup.
        self._corr_gen = 0
        self._corr_memo: dict[tuple[str, str], tuple[int, list[Candidate]]] = {}
        # Inhibition sources. Live (`live_sources`): per rule, the firing source alerts by their
        # `equal` values, built once and then kept up to date as each alert starts or stops
        # firing (`_source_delta`), with how many firing places (group entries, held slots) each
        # fingerprint has. Runs begun before rebuilt the whole index from the state whenever
        # `sup_version` had moved: every new firing alert of a storm rebuilt it, so a scope with
        # inhibition rules spent time quadratic in its alerts (25,000 new alerts: 356 s).
        self.live_sources = True
        self._sources: list[dict[tuple[str, ...], dict[str, Alert]]] | None = None
        self._source_refs: dict[str, int] = {}
        for key, g in state.groups.items():
            self.adopt(key, g.alerts.values())
        self._inhibit_version = -1
        self._inhibit_index: list[dict[tuple[str, ...], list[Alert]]] = []
        # None: unknown, sweep at the next call; FAR_FUTURE: nothing can expire.
        self._next_sweep: datetime | None = None if (state.groups or state.held) else FAR_FUTURE
        self._next_boundary: datetime | None = None
        self._boundary_checked: datetime | None = None
        # A changed configuration may suppress differently: every alert re-checks once.
        digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
        if digest != state.config_digest:
            state.config_digest = digest
            state.sup_version += 1

    @property
    def causal_correlation(self) -> bool:
        """Correlation along chains of depends_on only, of alerts that began within its window
        of the group's first, explained with the signals on both sides. The monitoring workflow
        turns it off for runs begun before it (they replay as they ran: undirected topology,
        any start, shorter reasons)."""
        return self._topology.directed

    @causal_correlation.setter
    def causal_correlation(self, on: bool) -> None:
        self._topology.directed = on
        self._corr_memo.clear()

    def adopt(self, key: str, entries: Iterable[AlertEntry]) -> None:
        """Index entries already in group `key` (a carried state, rebuilt at once or in parts)."""
        path = self.state.groups[key].route.path
        for e in entries:
            fp = e.alert.fingerprint
            self._index.setdefault(fp, []).append((f"{path}|{fp}", key))
            self._retrack(key, None, e.alert)
        self._next_sweep = None  # they may expire: sweep at the next call

    # --- what is tracked ---------------------------------------------------------------------------
    def tracked_count(self) -> int:
        return len(self._index) + len(self.state.held)

    def tracked_fingerprints(self) -> set[str]:
        """Every fingerprint the router holds: in a group (firing, or resolved and not yet told)
        or held back (silenced, inhibited, muted, in maintenance)."""
        return set(self._index).union(slot.rsplit("|", 1)[1] for slot in self.state.held)

    def untracked(self, fingerprints: list[str]) -> list[str]:
        """Those of `fingerprints` the router does not hold, in the order given."""
        held = {slot.rsplit("|", 1)[1] for slot in self.state.held}
        return [fp for fp in fingerprints if fp not in self._index and fp not in held]

    # --- silences --------------------------------------------------------------------------------
    def add_silence(self, silence: Silence) -> None:
        self.state.silences = [s for s in self.state.silences if s.id != silence.id] + [silence]
        self._suppression_changed()

    def expire_silence(
        self, silence_id: str, now: datetime, pending_too: bool = True, by_hand: bool = False
    ) -> Silence | None:
        """End a silence now; one still pending (`pending_too`) starts now too, as Alertmanager's.
        `by_hand`: stamped as changed now, and the alerts it held are looked at again at once."""
        for s in self.state.silences:
            if s.id == silence_id:
                change: dict[str, object] = {"ends_at": min(s.ends_at, now)}
                if pending_too:
                    change["starts_at"] = min(s.starts_at, now)
                if by_hand:
                    change["updated_at"] = now
                expired = s.model_copy(update=change)
                self.replace_silence(expired, recheck_held=by_hand)
                return expired
        return None

    def replace_silence(self, silence: Silence, recheck_held: bool = True) -> None:
        """`silence` in place of the one with its id. Alerts held back wait for the moment their
        suppression was due to end (the old end of a silence): `recheck_held` looks at them on
        the next sweep instead, as a silence cut short must release them then."""
        self.state.silences = [silence if s.id == silence.id else s for s in self.state.silences]
        if recheck_held:
            for h in self.state.held.values():
                h.recheck_at = None
        self._suppression_changed()

    def active_silences(self, now: datetime) -> list[Silence]:
        return [s for s in self.state.silences if s.starts_at <= now < s.ends_at]

    def drop_old_silences(self, now: datetime, keep: timedelta = timedelta(days=1)) -> list[Silence]:
        """Forget silences that ended more than `keep` ago; returns those that just expired."""
        gone = [s for s in self.state.silences if s.ends_at + keep <= now]
        self.state.silences = [s for s in self.state.silences if s.ends_at + keep > now]
        return gone

    # --- ingest ----------------------------------------------------------------------------------
    def _tell(self, g: GroupState, d: RouteDecision) -> None:
        """Keep an explanation for the group's incident (the latest MAX_GROUP_DECISIONS)."""
        g.decisions.append(d)
        if len(g.decisions) > MAX_GROUP_DECISIONS:
            del g.decisions[0]
            g.decisions_dropped += 1

    def _record(self, d: RouteDecision) -> RouteDecision:
        self.state.recent.append(d)
        if len(self.state.recent) > 2 * self.recent_limit:  # trimmed in bulk, not on every append
            del self.state.recent[: len(self.state.recent) - self.recent_limit]
        self.state.counts[d.kind.value] = self.state.counts.get(d.kind.value, 0) + 1
        return d

    def _suppression(
        self, alert: Alert, route: ResolvedRoute, now: datetime
    ) -> tuple[RouteDecision, datetime | None] | None:
        """Why `alert` must not notify now, and when that may change (None: re-check every sweep)."""
        fp, name = alert.fingerprint, alert.name

        def decision(kind: RouteDecisionKind, reason: str) -> RouteDecision:
            return RouteDecision(fingerprint=fp, alertname=name, kind=kind, at=now, reason=reason)

        silenced = self._silenced(alert, now)
        if silenced is not None:
            return silenced
        muted = self._route_muted(route, now)
        if muted is not None:
            next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            return decision(RouteDecisionKind.MUTED, muted), next_minute
        inhibited = self._inhibition(alert, now)
        return (inhibited, None) if inhibited is not None else None

    def _route_muted(self, route: ResolvedRoute, now: datetime) -> str | None:
        """Why `route` is muted now by its time intervals, or None."""
        for ti_name in route.mute_time_intervals:
            ti = self._intervals.get(ti_name)
            if ti and in_time_interval(ti, now):
                return f"route {route.path} is muted during time interval {ti_name!r}"
        if route.active_time_intervals:
            active = [self._intervals[n] for n in route.active_time_intervals if n in self._intervals]
            if active and not any(in_time_interval(ti, now) for ti in active):
                return (
                    f"route {route.path} is outside its active time intervals {route.active_time_intervals}"
                )
        return None

    def _silenced(self, alert: Alert, now: datetime) -> tuple[RouteDecision, datetime] | None:
        """The active silence or maintenance window that mutes `alert`, and when it ends."""

        def muted(kind: RouteDecisionKind, reason: str) -> RouteDecision:
            return RouteDecision(
                fingerprint=alert.fingerprint, alertname=alert.name, kind=kind, at=now, reason=reason
            )

        for s in self.state.silences:
            if s.starts_at <= now < s.ends_at and matches_all(s.matchers, alert.labels):
                return muted(
                    RouteDecisionKind.SILENCED,
                    f"silenced by {s.id} ({', '.join(map(str, s.matchers))}) until "
                    f"{s.ends_at.isoformat()} by {s.created_by}: {s.comment}",
                ), s.ends_at
        for w in self.config.maintenance:
            if w.starts_at <= now < w.ends_at and matches_all(w.matchers, alert.labels):
                reason = f"maintenance window {w.name!r} until {w.ends_at.isoformat()}"
                return muted(RouteDecisionKind.MAINTENANCE, reason), w.ends_at
        return None

    def _muted_at_open(self, alert: Alert, now: datetime) -> RouteDecision | None:
        """Why a firing alert of a group due to open must not open its incident. Alertmanager
        mutes at notification time: a silence (or maintenance window) that began while the
        group waited out group_wait mutes alerts that joined before it, refreshed or not."""
        if self.silence_at_open:
            found = self._silenced(alert, now)
            if found is not None:
                return found[0]
        return self._inhibition(alert, now)

    # --- what suppresses, and when that changes ---------------------------------------------------
    def _suppression_changed(self) -> None:
        self.state.sup_version += 1
        self._next_boundary = None
        if self.state.held:
            self._next_sweep = None  # held alerts may be released now

    def _check_boundaries(self, now: datetime) -> None:
        """Silences and maintenance windows start and end, time intervals turn over each minute:
        when one of those moments has passed, suppression must be re-checked."""
        if self._next_boundary is None:
            times = [t for s in self.state.silences for t in (s.starts_at, s.ends_at) if t > now]
            times += [t for w in self.config.maintenance for t in (w.starts_at, w.ends_at) if t > now]
            if self._uses_intervals:
                times.append(now.replace(second=0, microsecond=0) + timedelta(minutes=1))
            self._next_boundary = min(times, default=FAR_FUTURE)
        elif now >= self._next_boundary:
            self._suppression_changed()
            self._check_boundaries(now)

    def _firing_alerts(self) -> list[Alert]:
        """Every alert firing here, grouped or held: Alertmanager inhibits from all of them."""
        out = [e.alert for g in self.state.groups.values() for e in g.alerts.values()]
        out += [h.alert for h in self.state.held.values()]
        return [a for a in out if a.status == AlertStatus.FIRING]

    def _inhibitors(
        self,
    ) -> list[dict[tuple[str, ...], list[Alert]]] | list[dict[tuple[str, ...], dict[str, Alert]]]:
        """Per inhibition rule, its firing source alerts by their `equal` label values. Routing
        decisions read it, so only routing builds it (a query builds its own)."""
        if self.live_sources:
            if self._sources is None:
                self._sources = [{} for _ in self.config.inhibit_rules]
                self._source_refs = {}
                for a in self._firing_alerts():
                    self._source_delta(a, +1)
            return self._sources
        if self._inhibit_version != self.state.sup_version:
            self._inhibit_index = self._inhibitor_index()
            self._inhibit_version = self.state.sup_version
        return self._inhibit_index

    def _source_delta(self, alert: Alert, delta: int) -> None:
        """A firing place of `alert` appeared (+1) or went (-1): the live source index follows."""
        fp = alert.fingerprint
        refs = self._source_refs.get(fp, 0) + delta
        if refs > 0:
            self._source_refs[fp] = refs
            if refs - delta > 0:
                return
        else:
            self._source_refs.pop(fp, None)
        assert self._sources is not None
        for rule, by_equal in zip(self.config.inhibit_rules, self._sources, strict=True):
            if not matches_all(rule.source_matchers, alert.labels):
                continue
            eq = tuple(alert.labels.get(k, "") for k in rule.equal)
            if refs > 0:
                by_equal.setdefault(eq, {})[fp] = alert
            elif eq in by_equal:
                by_equal[eq].pop(fp, None)
                if not by_equal[eq]:
                    del by_equal[eq]

    def _sources_follow(self, old: Alert | None, new: Alert | None) -> None:
        """A firing place changed from `old` to `new` (None: absent); only the live index cares."""
        if self._sources is None:
            return
        if old is not None and old.status == AlertStatus.FIRING:
            self._source_delta(old, -1)
        if new is not None and new.status == AlertStatus.FIRING:
            self._source_delta(new, +1)

    def _inhibitor_index(self) -> list[dict[tuple[str, ...], list[Alert]]]:
        firing = self._firing_alerts()
        index = []
        for rule in self.config.inhibit_rules:
            by_equal: dict[tuple[str, ...], list[Alert]] = {}
            for src in firing:
                if matches_all(rule.source_matchers, src.labels):
                    by_equal.setdefault(tuple(src.labels.get(k, "") for k in rule.equal), []).append(src)
            index.append(by_equal)
        return index

    def _inhibiting(
        self,
        alert: Alert,
        index: list[dict[tuple[str, ...], list[Alert]]] | list[dict[tuple[str, ...], dict[str, Alert]]],
    ) -> Iterator[tuple[InhibitRule, Alert]]:
        """The firing alerts that inhibit `alert`, each with its rule (`index`: `_inhibitors`)."""
        for rule, by_equal in zip(self.config.inhibit_rules, index, strict=True):
            if not matches_all(rule.target_matchers, alert.labels):
                continue
            # Alertmanager: if the target also matches the source side, only sources that do not
            # also match the target side may inhibit it (so such alerts never mute each other).
            two_sided = matches_all(rule.source_matchers, alert.labels)
            # A missing label reads as empty, as in Alertmanager: absent on both sides is equal.
            found = by_equal.get(tuple(alert.labels.get(k, "") for k in rule.equal), ())
            for src in found.values() if isinstance(found, dict) else found:
                if src.fingerprint == alert.fingerprint:
                    continue
                if two_sided and matches_all(rule.target_matchers, src.labels):
                    continue
                yield rule, src

    def _inhibition(self, alert: Alert, now: datetime) -> RouteDecision | None:
        if not self.config.inhibit_rules:
            return None
        for rule, src in self._inhibiting(alert, self._inhibitors()):
            equal = ", ".join(f'{k}="{alert.labels.get(k, "")}"' for k in rule.equal)
            return RouteDecision(
                fingerprint=alert.fingerprint,
                alertname=alert.name,
                kind=RouteDecisionKind.INHIBITED,
                at=now,
                reason=f"inhibited by firing {src.name} ({src.fingerprint}) matching "
                f"{', '.join(map(str, rule.source_matchers))}"
                + (f" with equal {equal}" if rule.equal else ""),
            )
        return None

    # --- what a person sees (Alertmanager's GET /api/v2/alerts) ---------------------------------
    def alert_views(self, query: AlertQuery, now: datetime) -> AlertListing:
        """The firing alerts the scope tracks that `query` selects, by fingerprint, each once with
        every receiver it reached and what holds it back now. A query must not change what routing
        later decides, so this reads the state and builds its own inhibition index: the router's
        caches stay as routing left them. It runs inside a workflow task (2 s at most): what only
        the listed alerts need (every silence and source holding one) is found for those only."""
        found: dict[str, tuple[Alert, datetime, list[ResolvedRoute], bool]] = {}
        tracked = [(e.alert, e.last_seen, g.route, e.flapping) for g in self.state.groups.values()
                   for e in g.alerts.values()]  # fmt: skip
        tracked += [(h.alert, h.last_seen, h.route, False) for h in self.state.held.values()]
        for alert, last_seen, route, flapping in tracked:
            if alert.status != AlertStatus.FIRING or not matches_all(query.matchers, alert.labels):
                continue
            seen = found.setdefault(alert.fingerprint, (alert, last_seen, [], False))
            if route not in seen[2]:
                seen[2].append(route)
            if flapping and not seen[3]:
                found[alert.fingerprint] = (*seen[:3], True)
        index = self._inhibitor_index() if self.config.inhibit_rules else []
        silences = SilenceLookup(self.active_silences(now))
        listed: list[AlertView] = []
        size = 0
        for fp in sorted(found):  # as Alertmanager lists them
            alert, last_seen, routes, flapping = found[fp]
            receivers = list(dict.fromkeys(r.receiver for r in routes))
            silenced_by = silences.matching(alert.labels)
            inhibited = next(self._inhibiting(alert, index), None) is not None
            if not query.selects(bool(silenced_by), inhibited, receivers):
                continue
            view = AlertView(
                alert=alert,
                receivers=receivers,
                updated_at=last_seen,
                ends_at=self._expiry(alert, last_seen),
                silenced_by=silenced_by,
                inhibited_by=sorted({src.fingerprint for _, src in self._inhibiting(alert, index)}),
            )
            if not silenced_by and not inhibited:
                view.muted = (
                    flapping
                    or self._in_maintenance(alert, now)
                    or any(self._route_muted(r, now) is not None for r in routes)
                )
            # One query payload (gRPC caps it at 4 MB): at most `limit` views, about VIEW_BUDGET_BYTES.
            size += len(view.model_dump_json())
            if len(listed) >= query.limit or (size > VIEW_BUDGET_BYTES and listed):
                return AlertListing(alerts=listed, complete=False)
            listed.append(view)
        return AlertListing(alerts=listed, complete=True)

    def _in_maintenance(self, alert: Alert, now: datetime) -> bool:
        return any(
            w.starts_at <= now < w.ends_at and matches_all(w.matchers, alert.labels)
            for w in self.config.maintenance
        )

    def _firing_changed(self) -> None:
        """An alert started or stopped firing: inhibition sources may have changed, and alerts
        held back by inhibition must be looked at again on the next sweep."""
        if self.config.inhibit_rules:
            self.state.sup_version += 1
            if any(h.recheck_at is None for h in self.state.held.values()):
                self._next_sweep = None

    def ingest(self, alerts: list[Alert], now: datetime) -> list[RouteDecision]:
        self._check_boundaries(now)
        decisions = []
        for alert in alerts:
            for route in self._routes.resolve(alert.labels):
                decisions.append(self._record(self._ingest_one(alert, route, now)))
        return decisions

    def ingest_records(
        self, records: list[dict], now: datetime, budget: int | None = None
    ) -> tuple[int, int]:
        """The hot path: compact records the gateway validated (see `argus.models.alert`).

        A repeat of a known alert (same fingerprint, status and start, suppression unchanged)
        only refreshes it — Alertmanager's dedup, at the cost of a dictionary lookup; anything
        else takes the full path of `ingest`, which costs about SLOW_PATH_COST repeats.
        With a `budget`, stops once that much work is done. Returns (records consumed, repeats)."""
        self._check_boundaries(now)
        version = self.state.sup_version
        groups = self.state.groups
        index = self._index
        repeats = 0
        work = 0
        consumed = 0
        keys: dict[tuple, str] = {}  # group keys computed in this batch (see `_refused`)
        for rec in records:
            if budget is not None and work >= budget:
                break
            consumed += 1
            work += 1
            slots = index.get(rec["f"])
            if slots is not None and len(slots) == 1:
                g = groups.get(slots[0][1])
                e = g.alerts.get(rec["f"]) if g is not None else None
                if e is not None and not e.flapping and slots[0][0] not in self.state.held:
                    a = e.alert
                    firing = rec["s"] == "f"
                    if (
                        (a.status == AlertStatus.FIRING) == firing
                        and a.starts_at.timestamp() == rec["t"]
                        and a.source == rec.get("o", "generic")
                        and (not firing or e.sup_version == version)
                    ):
                        e.last_seen = now
                        ends = rec.get("e")
                        if ends is not None and (a.ends_at is None or a.ends_at.timestamp() != ends):
                            a.ends_at = datetime.fromtimestamp(ends, UTC)
                            self._sweep_by(a.ends_at)
                        if "a" in rec and rec["a"] != a.annotations:
                            a.annotations = rec["a"]
                        repeats += 1
                        continue
            work += SLOW_PATH_COST
            if rec["s"] == "f" and slots is None and self.tracked_count() >= self.capacity:
                refused = self._refused(rec, now, keys)
                if refused is not None:
                    for d in refused:
                        self._record(d)
                    continue
            alert = alert_from_compact(rec)
            for route in self._routes.resolve(alert.labels):
                self._record(self._ingest_one(alert, route, now))
        if repeats:
            self.state.counts["duplicate"] = self.state.counts.get("duplicate", 0) + repeats
        return consumed, repeats

    def _correlate(
        self, service: str | None, alert: Alert, receiver: str, now: datetime
    ) -> Correlation | None:
        """The live group an alert of `service` belongs with (see `argus.analysis.correlation`)."""
        cfg = self.config.correlation
        if not service or not cfg.enabled:
            return None
        started = alert.starts_at if self.causal_correlation else None
        memo = self._corr_memo.get((service, receiver))
        if memo is not None and memo[0] == self._corr_gen:
            # The groups in reach, best first, as they were when last asked: time only takes
            # groups out of the window, and the alert's own start is checked on each (first_fit).
            ranked = memo[1]
        else:
            ranked = rank_related(service, receiver, now, self._related_views(service), cfg, self._topology)
            if len(self._corr_memo) > 10_000:
                self._corr_memo.clear()
            self._corr_memo[(service, receiver)] = (self._corr_gen, ranked)
        picked = first_fit(ranked, now, cfg, started)
        if picked is None:
            return None
        return explain_related(service, alert.source, now, picked, cfg, self._topology, started)

    def _related_views(self, service: str) -> list[GroupView]:
        """Live groups holding a firing alert of a service near `service` in the topology."""
        near = self._topology.distances(service, self.config.correlation.max_hops)
        keys: set[str] = set()
        for svc in near:
            keys |= self._svc_groups.get(svc, set())
        views = []
        for key in sorted(keys):
            g = self.state.groups.get(key)
            if g is None or g.incident_closed_at is not None:
                continue
            views.append(
                GroupView(
                    key=key,
                    receiver=g.route.receiver,
                    created_at=g.created_at,
                    services=self._svc_count.get(key, {}).keys(),
                    sources=self._src_count.get(key, {}).keys(),
                    firing=True,
                    onset=g.onset,
                )
            )
        return views

    def _track(self, key: str, alert: Alert, delta: int) -> None:
        svc = alert.labels.get(self.config.correlation.service_label)
        if svc is not None:
            counts = self._svc_count.setdefault(key, {})
            before = counts.get(svc, 0)
            n = before + delta
            if n > 0:
                counts[svc] = n
                if before == 0:
                    self._svc_groups.setdefault(svc, set()).add(key)
                    self._corr_gen += 1
            else:
                counts.pop(svc, None)
                holders = self._svc_groups.get(svc)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del self._svc_groups[svc]
                self._corr_gen += 1
        sources = self._src_count.setdefault(key, {})
        before = sources.get(alert.source, 0)
        m = before + delta
        if m > 0:
            sources[alert.source] = m
            if before == 0:
                self._corr_gen += 1
        else:
            sources.pop(alert.source, None)
            self._corr_gen += 1

    def _retrack(self, key: str, old: Alert | None, new: Alert | None) -> None:
        """An entry of group `key` changed from `old` to `new` (None: absent)."""
        if old is not None and old.status == AlertStatus.FIRING:
            self._track(key, old, -1)
        if new is not None and new.status == AlertStatus.FIRING:
            self._track(key, new, +1)
        if self._sources is not None:
            self._sources_follow(old, new)

    # --- bookkeeping of entries (keeps the fingerprint index and the counts in step) ------------
    def _add_entry(self, g: GroupState, slot: str, alert: Alert, now: datetime) -> AlertEntry:
        entry = construct_unvalidated(
            AlertEntry,
            {
                "alert": alert,
                "first_seen": now,
                "last_seen": now,
                "transitions": [],
                "flapping": False,
                "sup_version": self.state.sup_version,
            },
        )
        g.alerts[alert.fingerprint] = entry
        self._index.setdefault(alert.fingerprint, []).append((slot, g.key))
        self._retrack(g.key, None, alert)
        self._sweep_by(self._expiry(alert, now))
        if alert.status == AlertStatus.FIRING:
            self._firing_changed()
        return entry

    def _flapping(
        self, g: GroupState, entry: AlertEntry, alert: Alert, now: datetime
    ) -> RouteDecision | None:
        """Hold `entry` back if it changed state flap_threshold times within flap_window."""
        if len(entry.transitions) < self.config.flap_threshold:
            entry.flapping = False
            return None
        entry.flapping = True
        if self.settled_holds:
            self._sweep_by(entry.transitions[-1] + self.config.flap_window)  # stable by then?
        d = RouteDecision(
            fingerprint=alert.fingerprint,
            alertname=alert.name,
            kind=RouteDecisionKind.FLAPPING,
            at=now,
            group_key=g.key,
            reason=f"{len(entry.transitions)} state changes within {self.config.flap_window}: "
            "held back until it is stable",
        )
        self._tell(g, d)
        return d

    def _remember_flips(self, fp: str, entry: AlertEntry, now: datetime) -> None:
        """Keep the recent state changes of an entry that goes once its resolution was told."""
        recent = [t for t in entry.transitions if now - t <= self.config.flap_window]
        if not recent:
            return
        flips = self.state.flips
        flips.pop(fp, None)
        flips[fp] = recent
        if len(flips) > MAX_FLIPS:
            del flips[next(iter(flips))]  # the oldest
        self._forget_flips(now)

    def _forget_flips(self, now: datetime) -> None:
        """Drop remembered changes older than flap_window (oldest first: they are kept in the
        order they were told)."""
        flips = self.state.flips
        while flips:
            oldest = next(iter(flips))
            if now - flips[oldest][-1] <= self.config.flap_window:
                break
            del flips[oldest]

    def _unindex(self, fp: str, key: str) -> None:
        slots = [x for x in self._index.get(fp, ()) if x[1] != key]
        if slots:
            self._index[fp] = slots
        else:
            self._index.pop(fp, None)

    def _drop_entry(self, g: GroupState, fp: str) -> None:
        self._retrack(g.key, g.alerts.pop(fp).alert, None)
        self._unindex(fp, g.key)

    def _drop_group(self, key: str) -> None:
        self._corr_gen += 1
        g = self.state.groups.pop(key)
        for fp, e in g.alerts.items():
            self._retrack(key, e.alert, None)
            self._unindex(fp, key)
        self._svc_count.pop(key, None)
        self._src_count.pop(key, None)

    def _expiry(self, a: Alert, last_seen: datetime) -> datetime:
        return a.ends_at if a.ends_at is not None else last_seen + self.config.resolve_timeout

    def _sweep_by(self, when: datetime) -> None:
        if self._next_sweep is not None and when < self._next_sweep:
            self._next_sweep = when

    def _hold(self, alert: Alert, route: ResolvedRoute, key: str, found, now: datetime) -> RouteDecision:  # type: ignore[no-untyped-def]
        d, recheck = found
        d.group_key = key
        slot = f"{route.path}|{alert.fingerprint}"
        before = self.state.held.get(slot)
        self.state.held[slot] = HeldAlert(
            alert=alert, route=route, kind=d.kind, last_seen=now, recheck_at=recheck,
            sup_version=self.state.sup_version,
        )  # fmt: skip
        if self._sources is not None:
            self._sources_follow(before.alert if before else None, alert)
            if (
                before is None
                and self._source_refs.get(alert.fingerprint) == 1
                and any(matches_all(r.source_matchers, alert.labels) for r in self.config.inhibit_rules)
            ):
                # Held alerts inhibit too (as Alertmanager's silenced ones do): a new source is a
                # change for the alerts it may inhibit, as a new firing alert in a group is.
                self._firing_changed()
        self._sweep_by(
            recheck
            if recheck is not None and recheck < self._expiry(alert, now)
            else self._expiry(alert, now)
        )
        group = self.state.groups.get(self.state.attached.get(slot, key))
        if group is not None and alert.fingerprint in group.alerts:
            # Already told to an incident: silencing it now stops news about it, it does not resolve it.
            group.alerts[alert.fingerprint].last_seen = now
        if group is not None and (before is None or before.kind != d.kind):
            # The incident of the group this alert would have joined learns why it did not.
            self._tell(group, d)
        return d

    def _refused(self, rec: dict, now: datetime, keys: dict[tuple, str]) -> list[RouteDecision] | None:
        """The decisions `_ingest_one` would make for a new firing record while the scope is
        full (over capacity on every route), without building the Alert; None if it would do
        anything else (a route where it is held), for the full path to decide.

        In an alert storm past capacity most records take this path, and it cost as much as
        routing a new alert (57 µs, measured): the same decisions, for a fraction."""
        labels = rec["l"]
        fp = rec["f"]
        found: list[str] = []  # the group key on each route
        for route in self._routes.resolve(labels):
            slot = f"{route.path}|{fp}"
            if slot in self.state.held:
                return None
            attached = self.state.attached.get(slot)
            if attached is not None and attached in self.state.groups:
                key = attached
            elif "..." in route.group_by:
                key = group_key(route, group_labels(route, labels))
            else:
                memo = (route.path, *(labels.get(k) for k in route.group_by))
                key = keys.get(memo)  # type: ignore[assignment]
                if key is None:
                    key = keys[memo] = group_key(route, group_labels(route, labels))
            found.append(key)
        return [self._over_capacity_of(fp, labels["alertname"], key, now) for key in found]

    def _over_capacity(self, alert: Alert, key: str, now: datetime) -> RouteDecision:
        return self._over_capacity_of(alert.fingerprint, alert.name, key, now)

    def _over_capacity_of(self, fp: str, name: str, key: str, now: datetime) -> RouteDecision:
        """A new alert for a scope already holding `max_tracked_alerts`: refused, and said so.

        A scope's state travels through continue-as-new in one payload (2 MiB) and is rebuilt in
        one workflow task (2 s): past about 40,000 alerts the scope wedges and routes nothing
        at all. Known alerts (repeats, resolutions) still go through, so the scope drains."""
        held = len(self._index) + len(self.state.held)
        if self._refusal[:2] != (held, self.capacity_reason):  # the same for a storm of refusals
            why = (
                f"not tracked: this scope already holds {held} alerts, its limit "
                f"({self.capacity_reason}); split the sources across scopes or raise the limit"
            )
            self._refusal = (held, self.capacity_reason, why)
        return _decided(fp, name, RouteDecisionKind.OVER_CAPACITY, self._refusal[2], key, now)

    def _ingest_one(self, alert: Alert, route: ResolvedRoute, now: datetime) -> RouteDecision:
        fp = alert.fingerprint
        slot = f"{route.path}|{fp}"
        glabels = group_labels(route, alert.labels)
        key = group_key(route, glabels)
        attached = self.state.attached.get(slot)
        if attached is not None and attached in self.state.groups:
            key = attached
        group = self.state.groups.get(key)
        entry = group.alerts.get(fp) if group else None

        if (
            entry is None
            and alert.status == AlertStatus.FIRING
            and slot not in self.state.held
            and self.tracked_count() >= self.capacity
        ):
            return self._over_capacity(alert, key, now)
        if alert.status == AlertStatus.FIRING:
            found = self._suppression(alert, route, now)
            if found is not None:
                return self._hold(alert, route, key, found, now)
        held = self.state.held.pop(slot, None)
        if held is not None:
            self._sources_follow(held.alert, None)
        if held is not None and alert.status == AlertStatus.RESOLVED:
            self._firing_changed()

        if entry is None:
            if alert.status == AlertStatus.RESOLVED:
                return RouteDecision(
                    fingerprint=fp,
                    alertname=alert.name,
                    kind=RouteDecisionKind.IGNORED,
                    at=now,
                    group_key=key,
                    reason=f"resolved while it was {held.kind.value}: nothing was told, nothing to close"
                    if held is not None
                    else "resolved alert that was never firing here",
                )
            released = f"{held.kind.value} no longer applies; " if held is not None else ""
            if group is None:
                service = alert.labels.get(self.config.correlation.service_label)
                related = self._correlate(service, alert, route.receiver, now)
                if related is not None:
                    group = self.state.groups[related.group_key]
                    key = group.key
                    self.state.attached[slot] = key
                    kind, reason = RouteDecisionKind.CORRELATED, released + related.reason
                else:
                    group = GroupState(
                        key=key,
                        incident_id=incident_id_for(self.scope, key),
                        labels=glabels,
                        route=route,
                        created_at=now,
                        onset=min(alert.starts_at, now) if self.causal_correlation else None,
                    )
                    self.state.groups[key] = group
                    self._corr_gen += 1
                    kind, reason = (
                        RouteDecisionKind.NEW_GROUP,
                        (
                            f"{released}opened group {key} (group_by {route.group_by}, route {route.path}, "
                            f"receiver {route.receiver}); incident after group_wait {route.group_wait}"
                        ),
                    )
            else:
                kind, reason = RouteDecisionKind.GROUPED, f"{released}joined group {key} by {route.group_by}"
            if held is not None and kind != RouteDecisionKind.CORRELATED:
                kind = RouteDecisionKind.RELEASED
            entry = self._add_entry(group, slot, alert, now)
            flips = self.state.flips.pop(fp, None) if self.settled_holds else None
            if flips:  # it resolved and was told a moment ago: its changes still count
                window = self.config.flap_window
                entry.transitions = [*[t for t in flips if now - t <= window][1 - MAX_TRANSITIONS :], now]
                flapping = self._flapping(group, entry, alert, now)
                if flapping is not None:
                    return flapping
            group.dirty[fp] = True
            d = _decided(fp, alert.name, kind, reason, key, now)
            self._tell(group, d)
            return d

        assert group is not None
        old = entry.alert
        entry.last_seen = now
        entry.sup_version = self.state.sup_version  # suppression was checked above (or n/a)
        self._sweep_by(self._expiry(alert, now))
        self._retrack(key, old, alert)
        if old.status == alert.status and old.starts_at == alert.starts_at:
            entry.alert = alert  # refresh annotations/value/endsAt without telling anyone
            return RouteDecision(
                fingerprint=fp,
                alertname=alert.name,
                kind=RouteDecisionKind.DUPLICATE,
                at=now,
                group_key=key,
                reason="same alert already known (same fingerprint, status and start)",
            )
        entry.alert = alert
        if old.status != alert.status:
            self._firing_changed()
            entry.transitions = [t for t in entry.transitions if now - t <= self.config.flap_window] + [now]
            entry.transitions = entry.transitions[-MAX_TRANSITIONS:]
            flapping = self._flapping(group, entry, alert, now)
            if flapping is not None:
                return flapping
        group.dirty[fp] = True
        group.resolved_dirty |= alert.status == AlertStatus.RESOLVED
        kind = (
            RouteDecisionKind.RESOLVED if alert.status == AlertStatus.RESOLVED else RouteDecisionKind.GROUPED
        )
        reason = (
            "alert resolved" if kind == RouteDecisionKind.RESOLVED else f"alert fired again in group {key}"
        )
        d = _decided(fp, alert.name, kind, reason, key, now)
        self._tell(group, d)
        return d

    # --- time ------------------------------------------------------------------------------------
    def _expired(self, a: Alert, last_seen: datetime, now: datetime) -> bool:
        return (a.ends_at is not None and a.ends_at <= now) or (
            a.ends_at is None and now - last_seen >= self.config.resolve_timeout
        )

    def _sweep_held(self, now: datetime) -> list[RouteDecision]:
        """Forget held alerts that ended; release those whose suppression is over."""
        decisions = []
        for slot in list(self.state.held):
            h = self.state.held.get(slot)
            if h is None:
                continue
            if self._expired(h.alert, h.last_seen, now):
                del self.state.held[slot]
                self._sources_follow(h.alert, None)
                self._firing_changed()
                continue
            if h.recheck_at is not None and now < h.recheck_at:
                continue
            found = self._suppression(h.alert, h.route, now)
            if found is not None:
                h.kind, h.recheck_at = found[0].kind, found[1]
                continue
            decisions.append(self._record(self._ingest_one(h.alert, h.route, now)))
        return decisions

    def sweep(self, now: datetime) -> list[RouteDecision]:
        """Resolve alerts whose end time passed or that stopped being refreshed; release held ones.

        A full pass over the alerts, done only when the earliest known expiry or re-check has
        come (and at most every MIN_SWEEP): refreshes only push expiries later, so the
        remembered earliest one is always safe to wait for."""
        self._check_boundaries(now)
        self._forget_flips(now)
        if self._next_sweep is not None and now < self._next_sweep:
            return []
        decisions = []
        earliest = FAR_FUTURE
        window = self.config.flap_window
        for g in self.state.groups.values():
            for fp, e in g.alerts.items():
                a = e.alert
                if e.flapping and self.settled_holds:
                    stable = e.transitions[-1] + window if e.transitions else now
                    if stable <= now:
                        decisions.append(self._stable(g, e, now))
                    else:
                        earliest = min(earliest, stable)
                if a.status != AlertStatus.FIRING:
                    continue
                if self._expired(a, e.last_seen, now):
                    e.alert = a.model_copy(
                        update={"status": AlertStatus.RESOLVED, "ends_at": a.ends_at or now}
                    )
                    self._retrack(g.key, a, e.alert)
                    self._firing_changed()
                    g.dirty[fp] = True
                    g.resolved_dirty = True
                    d = self._record(
                        RouteDecision(
                            fingerprint=fp,
                            alertname=a.name,
                            kind=RouteDecisionKind.RESOLVED,
                            at=now,
                            group_key=g.key,
                            reason="end time passed without a refresh (resolve_timeout)",
                        )
                    )
                    self._tell(g, d)
                    decisions.append(d)
                else:
                    earliest = min(earliest, self._expiry(a, e.last_seen))
        decisions += self._sweep_held(now)
        for h in self.state.held.values():
            earliest = min(earliest, self._expiry(h.alert, h.last_seen))
            if h.recheck_at is not None:
                earliest = min(earliest, h.recheck_at)
        for slot, key in list(self.state.attached.items()):
            g = self.state.groups.get(key)
            if g is None or slot.rsplit("|", 1)[1] not in g.alerts:
                del self.state.attached[slot]
        self._next_sweep = max(earliest, now + MIN_SWEEP) if earliest < FAR_FUTURE else FAR_FUTURE
        return decisions

    def _stable(self, g: GroupState, e: AlertEntry, now: datetime) -> RouteDecision:
        """A flapping alert with no state change for flap_window: the incident hears of it again."""
        e.flapping = False
        g.dirty[e.alert.fingerprint] = True
        g.resolved_dirty |= e.alert.status == AlertStatus.RESOLVED
        d = self._record(
            RouteDecision(
                fingerprint=e.alert.fingerprint,
                alertname=e.alert.name,
                kind=RouteDecisionKind.RELEASED,
                at=now,
                group_key=g.key,
                reason=f"no state change for {self.config.flap_window}: no longer flapping, "
                f"{e.alert.status.value} as it last was",
            )
        )
        self._tell(g, d)
        return d

    def _open_due(self, g: GroupState) -> datetime | None:
        if g.incident_open:
            return None
        if g.open_held is not None and g.open_held == self.state.sup_version and not g.dirty:
            return None  # all held back when last due: a change makes it due again
        if g.incident_closed_at is not None and not g.kept_out:
            return g.incident_closed_at + g.route.repeat_interval
        return g.created_at + g.route.group_wait

    def _update_due(self, g: GroupState) -> datetime | None:
        kept_out_may_change = bool(g.kept_out) and g.kept_out_seen != self.state.sup_version
        if not g.incident_open or not (g.dirty or g.decisions or kept_out_may_change):
            return None
        if g.last_flush is None:
            return g.created_at
        # The all-clear (the group's last firing alert resolved) is news the incident acts on at
        # once. Other resolutions go out within RESOLVED_NEWS_INTERVAL: soon enough for the
        # incident, yet in a storm of alerts coming and going it hears once per interval, not on
        # every pass (its history grew by an update per pass), and resolved alerts wait to be
        # told (tracked) at most that long.
        if g.resolved_dirty:
            if not self._src_count.get(g.key):
                return g.last_flush
            return g.last_flush + min(g.route.group_interval, RESOLVED_NEWS_INTERVAL)
        return g.last_flush + g.route.group_interval

    def next_deadline(self) -> datetime | None:
        """When the workflow must call `sweep`/`due` next (group timers, expiries, boundaries)."""
        times = []
        for g in self.state.groups.values():
            for t in (self._open_due(g), self._update_due(g)):
                if t is not None:
                    times.append(t)
        if self._next_sweep is None:
            times.append(datetime.min.replace(tzinfo=UTC))  # unknown: sweep now
        elif self._next_sweep < FAR_FUTURE:
            times.append(self._next_sweep)
        if self._next_boundary is not None and self._next_boundary < FAR_FUTURE:
            times.append(self._next_boundary)
        return min(times) if times else None

    def due(self, now: datetime) -> list[GroupAction]:
        """Groups that must open an incident or send their changes now."""
        actions: list[GroupAction] = []
        for key in list(self.state.groups):
            g = self.state.groups[key]
            opened = self._open_due(g)
            if opened is not None and opened <= now:
                firing = [a for a in g.firing() if not self._held(g, a)]
                if firing:
                    mutes = {a.fingerprint: self._muted_at_open(a, now) for a in firing}
                    still = [a for a in firing if mutes[a.fingerprint] is None]
                    if still:
                        out = {fp: d for fp, d in mutes.items() if d is not None}
                        if out and self.keep_muted_out():
                            for d in out.values():
                                why = f"kept out of the incident as it opens: {d.reason}"
                                self._tell(
                                    g, self._record(d.model_copy(update={"group_key": key, "reason": why}))
                                )
                        else:
                            out = {}
                        g.kept_out = list(out)  # of this incident only (a reopened group starts over)
                        g.kept_out_seen = self.state.sup_version
                        actions.append(
                            GroupAction(
                                kind="open",
                                group_key=key,
                                incident_id=g.incident_id,
                                labels=g.labels,
                                receiver=g.route.receiver,
                                alerts=_sample([e.alert for fp, e in g.alerts.items() if fp not in out]),
                                decisions=g.decisions,
                                decisions_dropped=g.decisions_dropped,
                                firing_count=len(firing) - len(out),
                            )
                        )
                        g.incident_open, g.open_held = True, None
                        if g.incident_closed_at is not None:
                            g.incident_closed_at = None
                            self._corr_gen += 1
                        g.last_flush = now
                        g.dirty, g.resolved_dirty = {}, False
                        g.decisions, g.decisions_dropped = [], 0
                        continue
                    for a in firing:
                        d = self._muted_at_open(a, now)
                        if d:
                            d.group_key = key
                            self._record(d)
                if not g.firing():
                    self._drop_group(key)  # nothing left to open an incident for
                elif self.settled_holds:
                    # Every firing alert is flapping, silenced or inhibited: due again once one
                    # settles, the suppression changes or the group does, not on every pass.
                    g.open_held, g.dirty, g.resolved_dirty = self.state.sup_version, {}, False
                continue
            upd = self._update_due(g)
            if upd is not None and upd <= now:
                skip, unmuted = self._review_kept_out(g, now) if g.kept_out else (set(), [])
                changed = [
                    g.alerts[fp].alert
                    for fp in g.dirty
                    if fp in g.alerts and not g.alerts[fp].flapping and fp not in skip
                ] + [g.alerts[fp].alert for fp in unmuted if fp not in g.dirty]
                if changed or g.decisions:
                    actions.append(
                        GroupAction(
                            kind="update",
                            group_key=key,
                            incident_id=g.incident_id,
                            labels=g.labels,
                            receiver=g.route.receiver,
                            alerts=_sample(changed),
                            decisions=g.decisions,
                            decisions_dropped=g.decisions_dropped,
                            firing_count=sum(
                                1 for e in g.alerts.values() if e.alert.status == AlertStatus.FIRING
                            )
                            - len(g.kept_out),
                        )
                    )
                g.last_flush = now
                g.dirty, g.resolved_dirty = {}, False
                g.decisions, g.decisions_dropped = [], 0
                # Resolved alerts have been told; keep only what still fires.
                for fp, e in list(g.alerts.items()):
                    if e.alert.status != AlertStatus.RESOLVED:
                        continue
                    if self.settled_holds:
                        if e.flapping:
                            continue  # held back: told once stable (`sweep`)
                        self._remember_flips(fp, e, now)
                    self._drop_entry(g, fp)
        return actions

    def _review_kept_out(self, g: GroupState, now: datetime) -> tuple[set[str], list[str]]:
        """The alerts kept out when the group opened, looked at again: (not to be told: those
        still muted, and those that resolved while out, never told; to be told now: those whose
        mute ended). `kept_out` keeps the still muted."""
        skip: set[str] = set()
        unmuted: list[str] = []
        muted: list[str] = []
        for fp in g.kept_out:
            e = g.alerts.get(fp)
            if e is None:
                continue
            if e.alert.status == AlertStatus.RESOLVED:
                skip.add(fp)
            elif self._muted_at_open(e.alert, now) is not None:
                skip.add(fp)
                muted.append(fp)
            else:
                unmuted.append(fp)
        g.kept_out, g.kept_out_seen = muted, self.state.sup_version
        return skip, unmuted

    @staticmethod
    def _held(g: GroupState, a: Alert) -> bool:
        e = g.alerts.get(a.fingerprint)
        return bool(e and e.flapping)

    def incident_closed(self, group_key_: str, now: datetime) -> None:
        g = self.state.groups.get(group_key_)
        if g is None:
            return
        g.incident_open, g.open_held = False, None  # due again after repeat_interval
        g.dirty, g.resolved_dirty = {}, False
        # Alerts kept out still fire: the group opens again once one's mute ends (`_open_due`),
        # not after repeat_interval, since no incident has heard of them.
        g.kept_out = [
            fp for fp in g.kept_out if fp in g.alerts and g.alerts[fp].alert.status == AlertStatus.FIRING
        ]
        g.decisions, g.decisions_dropped = [], 0
        for fp in [fp for fp, e in g.alerts.items() if e.alert.status == AlertStatus.RESOLVED]:
            self._drop_entry(g, fp)
        if not g.alerts:
            self._drop_group(group_key_)
        else:
            g.incident_closed_at = now
            self._corr_gen += 1

    def incident_lost(self, group_key_: str) -> None:
        """The incident could not be reached (it closed meanwhile): open a new one next time."""
        g = self.state.groups.get(group_key_)
        if g is not None:
            g.incident_open = False
            if g.incident_closed_at is not None:
                g.incident_closed_at = None
                self._corr_gen += 1


def _route_uses_intervals(route: Route) -> bool:
    return bool(route.mute_time_intervals or route.active_time_intervals) or any(
        _route_uses_intervals(r) for r in route.routes
    )


__all__ = ["GroupAction", "Matcher", "Router", "RouterState", "incident_id_for"]
