"""MonitoringWorkflow: one long-running workflow per monitoring scope.

    pushed batches (signals from the gateway) ─┐
    pull on a durable timer: Collector ─► Evaluator ┴─► Alert Router (dedupe, group, inhibit,
        silence, maintenance, flap) ─► open an IncidentWorkflow per group (child, ABANDON)
        or send the group's changes to its running incident

Its state is the live alert groups and silences. It never starts one workflow per alert,
and it continues-as-new when Temporal suggests it, carrying that state over.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import zlib
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    import orjson

    from argus.activities.collector import Collector
    from argus.activities.evaluator import Evaluator, still_firing
    from argus.activities.notifier import Notifier
    from argus.activities.orchestration import Orchestration
    from argus.analysis.routing import SLOW_PATH_COST, AlertEntry, GroupAction, Router, RouterState
    from argus.models import (
        AlertBatch,
        AlertsSignal,
        IncidentInput,
        Notification,
        NotificationKind,
        Policy,
        RouteDecision,
        Silence,
        SilenceExpire,
        SilenceRequest,
        SilenceState,
        SilenceUpdate,
        SourceHealth,
    )
    from argus.models.agents import (
        AlertListing,
        AlertQuery,
        CollectRequest,
        EvaluateRequest,
        EvaluatorState,
        FingerprintCheck,
        FingerprintReport,
        IncidentClosed,
        MonitoringInput,
        MonitoringStatus,
        PayloadStoreSetting,
    )
    from argus.models.alert import CompactBatch, alert_from_compact, alert_to_compact
    from argus.models.common import Model, construct_unvalidated

    from .common import EFFECT, QUICK

RECENT_BATCHES = 2000
START_CONCURRENCY = 50
# Work (repeats of known alerts; a new one counts SLOW_PATH_COST) per workflow task. A backlog
# (a burst, or signals that piled up while no worker ran) is worked off in chunks, each task far
# below the SDK's 2 s deadlock limit.
INGEST_CHUNK = 25000
# Continue-as-new carries the state and any alerts accepted but not yet applied; Temporal refuses
# an input over 2 MiB, so a larger hand-over waits (and works the backlog off) until it fits.
# With the deployment's payload store (MonitoringInput.payload_store) the input leaves history
# for the store and only a reference stays: the limit is then what a run rebuilds and a worker
# holds comfortably (routing.max_tracked_alerts bounds the state itself).
MAX_CARRIED = 1_600_000
MAX_CARRIED_STORED = 8_000_000
END = datetime.max.replace(tzinfo=UTC)
LASTING_TIMERS = "monitoring-lasting-wake-timers"
CHUNK_TASKS = "monitoring-backlog-chunks-in-tasks-of-their-own"
MAX_SENDERS = 64  # gateways remembered for backpressure (a restarted gateway is a new sender)
FIT_CAPACITY = "monitoring-capacity-fits-the-hand-over"
QUIET_HANDOVER = "monitoring-hand-over-in-a-quiet-task"
REBUILD_IN_PARTS = "monitoring-rebuild-the-carried-state-in-parts"
REBUILD_PART = 4000  # tracked alerts rebuilt per workflow task (about 80 ms on an idle core)
PACK_IN_PARTS = "monitoring-pack-the-hand-over-in-parts"
SETTLED_HOLDS = "monitoring-flapping-counted-across-resolutions-and-held-groups-wait"
PULL_FAILED_REFRESH = "monitoring-a-failed-pull-refreshes-what-fires"
# One id for the correlation and silence rules that came together (each patch id costs every run
# a marker and a search-attribute upsert): correlation along depends_on chains of alerts begun
# within its window (Router.causal_correlation), silences applied when a group opens
# (Router.silence_at_open), a silence ending as asked, a pending one expired by hand starting
# then, and each expiry told once however many silences ended that day.
CORRELATION_AND_SILENCES = "monitoring-correlation-along-depends-on-and-silences-as-alertmanager"
# Silences made or changed by hand carry when (`Silence.updated_at`, Alertmanager's updatedAt),
# and alerts a silence held are looked at again as soon as it is expired or cut short, not at
# the end it had (an alert no one sends again stayed muted until then).
SILENCE_CHANGES = "monitoring-silence-changes-stamped-and-held-alerts-released-at-once"
# Inhibition sources kept up to date alert by alert, held ones included (Router.live_sources).
LIVE_SOURCES = "monitoring-inhibition-sources-kept-live"
# A group that opens keeps its alerts muted then (a silence or inhibition that began during
# group_wait) out of the incident until the mute ends (Router.keep_muted_out, GroupState.kept_out).
# Asked only when a group opens with such an alert, so other runs carry no marker for it.
MUTED_KEPT_OUT = "monitoring-muted-alerts-kept-out-of-the-incident"
PACK_PART = 4000  # tracked alerts packed per workflow task (about 0.15 s on an idle core)
# After packing, the hand-over waits in short tasks (an activity round trip each, 10-40 ms) until
# no batch has arrived for HANDOVER_QUIET, so that gateways have seen it and hold their batches,
# and continues as new then; or after HANDOVER_WAIT whatever comes.
HANDOVER_QUIET = timedelta(milliseconds=200)
HANDOVER_WAIT = timedelta(seconds=3)
# The share of the hand-over limit the tracked alerts may take (the rest: batches not yet applied), and
# the fewest tracked alerts a size per alert is measured on.
CARRY_SHARE = 0.8
MIN_MEASURED = 500
PENDING_SEP = "|"  # not a base64 character: the packed state, then the pending batches as JSON
PART_SEP = "~"  # nor is this: the packed state's head, then its parts (see StatePacker)


class MonitoringState(Model):
    router: RouterState = RouterState()
    evaluator: EvaluatorState = EvaluatorState()
    recent_batches: list[str] = []
    alerts_received: int = 0
    batches: int = 0
    health: list[SourceHealth] = []
    last_pull: str | None = None
    runs: int = 1
    silence_seq: int = 0
    announced_expired: list[str] = []
    received_seq: dict[str, int] = {}  # sender -> highest batch seq received (the latest senders)


class _Remainder:
    """Alerts counted as a batch already, applied without the redelivery check: the part of a
    batch not yet applied when a workflow task's budget ran out, or a batch the previous run
    handed over (kept compressed until its turn comes: a hand-over stays cheap to pack)."""

    __slots__ = ("_records", "count", "packed")

    def __init__(self, records: list[dict] | None = None, packed: CompactBatch | None = None) -> None:
        self._records = records
        self.packed = packed
        self.count = len(records) if records is not None else packed.count if packed else 0

    def records(self) -> list[dict]:
        if self._records is None:
            assert self.packed is not None
            self._records, self.packed = self.packed.records(), None
        return self._records

    def as_batch(self) -> CompactBatch:
        return self.packed if self.packed is not None else CompactBatch.of("carried", self.records())


def silence_request_problem(req: SilenceRequest, now: datetime) -> str | None:
    """Why a silence request must be refused at `now`, or None."""
    problem = req.matchers_problem()
    if problem:
        return problem
    if req.duration <= timedelta(0):
        return "a silence needs a positive duration"
    if not req.created_by:
        return "a silence needs an author (created_by)"
    if req.starts_at is not None and req.starts_at + req.duration <= now:
        # As Alertmanager ("end time can't be in the past"): it would silence nothing.
        return (
            f"the silence would end at {(req.starts_at + req.duration).isoformat()} (start "
            f"{req.starts_at.isoformat()} + duration {req.duration}), already past at "
            f"{now.isoformat()}: give a later start or a longer duration"
        )
    return None


@contextlib.contextmanager
def _no_gc():  # type: ignore[no-untyped-def]
    """Packing or rebuilding a large scope allocates an object per field of every alert, none
    of them garbage yet: the collector would rescan them again and again (about 40 % of the
    time). The hand-over must fit the SDK's 2 s task limit, so it runs without collections."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def pack_state(state: MonitoringState, pending: list[CompactBatch] | None = None) -> str:
    """The state as a hand-over carries it (in parts, see `StatePacker`), then `pending`."""
    with _no_gc():
        packer = StatePacker(state)
        while not packer.done:
            packer.step(PACK_PART)
        return join_carried(packer.join(_pack_head(state, packer.counts)), pending)


def join_carried(
    body: str, pending: list[CompactBatch] | None = None, late: list[CompactBatch] | None = None
) -> str:
    """The packed state, then the batches accepted but not yet applied, as they came (compressed
    already: not compressed again, and never decoded here, however many there are). `pending`
    were counted in the packed state already; `late` arrived after it was packed, so each keeps
    its id, sender and seq for the next run to count and remember."""
    batches: list[list] = [[b.data, b.count, b.compressed] for b in pending or []]
    batches += [[b.data, b.count, b.compressed, b.batch_id, b.sender, b.seq] for b in late or []]
    return f"{body}{PENDING_SEP}{orjson.dumps(batches).decode()}" if batches else body


def unpack_state(data: str) -> tuple[MonitoringState, list[CompactBatch]]:
    with _no_gc():
        state, pending, carried = _unpack_parts(data)
        carried.build(state, None)
        return state, pending


def _keeps_muted_out() -> bool:
    return workflow.patched(MUTED_KEPT_OUT)


def _squeeze(obj: object) -> str:
    # Labels and annotations repeat from alert to alert: zlib takes most of it off.
    return base64.b64encode(zlib.compress(orjson.dumps(obj), 6)).decode()


def _unsqueeze(data: str):  # type: ignore[no-untyped-def]
    return orjson.loads(zlib.decompress(base64.b64decode(data)))


def _head(state: MonitoringState) -> dict:
    """The state without its tracked alerts (the groups are there, empty)."""
    # An empty `kept_out` is left out (with `kept_out_seen`): the measured size of a hand-over
    # decides the scope's capacity, and runs begun before the fields must measure the same.
    groups = {
        key: {"alerts", "dirty", *(() if g.kept_out else ("kept_out", "kept_out_seen"))}
        for key, g in state.router.groups.items()
    }
    body = state.model_dump(mode="json", exclude={"router": {"attached": True, "groups": groups}})
    # Slots folded into another group, by group (the group key, long, is not repeated per slot).
    attached: dict[str, list[str]] = {}
    for slot, key in state.router.attached.items():
        attached.setdefault(key, []).append(slot)
    body["attached"] = attached
    body["dirty"] = {key: list(g.dirty) for key, g in state.router.groups.items() if g.dirty}
    return body


def _entry_row(e: AlertEntry) -> list:
    return [
        alert_to_compact(e.alert), e.first_seen.timestamp(), e.last_seen.timestamp(),
        [t.timestamp() for t in e.transitions], e.flapping, e.sup_version,
    ]  # fmt: skip


def _pack_whole(state: MonitoringState) -> str:
    """The state with its tracked alerts in one compressed body: how runs begun before the
    hand-over in parts packed it (they replay that way); `_unpack_parts` reads both."""
    body = _head(state)
    body["entries"] = {
        key: [_entry_row(e) for e in g.alerts.values()] for key, g in state.router.groups.items()
    }
    return _squeeze(body)


def _pack_head(state: MonitoringState, counts: list[int]) -> str:
    body = _head(state)
    body["parts"] = counts
    return _squeeze(body)


class StatePacker:
    """Packs a state's tracked alerts a part at a time, each part (at most `step`'s count, a
    large group spread over several) compressed on its own. Packing 25,000 alerts with long
    annotations took one activation of 0.6-0.9 s on an idle core (the SDK's limit is 2 s); in parts
    each workflow task does a share, and the next run rebuilds a part per task without ever
    decoding the whole. The state must not change meanwhile (`MonitoringWorkflow._hand_over`
    starts again if it does)."""

    def __init__(self, state: MonitoringState) -> None:
        # Last first: parts are taken from the end of the list.
        self._todo = [
            (key, list(g.alerts.values())) for key, g in reversed(state.router.groups.items()) if g.alerts
        ]
        self.segments: list[str] = []
        self.counts: list[int] = []

    @property
    def done(self) -> bool:
        return not self._todo

    def step(self, count: int) -> None:
        rows: list[list] = []
        n = 0
        while self._todo and n < count:
            key, entries = self._todo[-1]
            take = entries[: count - n]
            del entries[: count - n]
            if not entries:
                self._todo.pop()
            rows.append([key, [_entry_row(e) for e in take]])
            n += len(take)
        self.segments.append(_squeeze(rows))
        self.counts.append(n)

    def join(self, head: str) -> str:
        """The packed state: the head (`_pack_head`), then the parts."""
        return PART_SEP.join([head, *self.segments])


# A group's tracked alerts as the hand-over carries them, not yet rebuilt.
Rows = list[tuple[str, list[list]]]


class CarriedAlerts:
    """The tracked alerts handed over and not yet rebuilt: the parts still compressed (decoded
    as rebuilding reaches them), and the rows of the part being rebuilt."""

    def __init__(self, rows: Rows, parts: list[str], left: int) -> None:
        self._rows = rows  # reversed (see `build_entries`)
        self._parts = parts[::-1]
        self.left = left

    def build(self, state: MonitoringState, budget: int | None) -> list[tuple[str, list]]:
        """Rebuild up to `budget` of them (all: None) into their groups, in packed order;
        returns (group key, the entries built) for the router to index."""
        built: list[tuple[str, list]] = []
        while self.left and (budget is None or budget > 0):
            if not self._rows:
                self._rows = [(key, rows[::-1]) for key, rows in reversed(_unsqueeze(self._parts.pop()))]
            for key, entries in build_entries(state, self._rows, budget):
                built.append((key, entries))
                self.left -= len(entries)
                if budget is not None:
                    budget -= len(entries)
        return built


def _unpack_parts(data: str) -> tuple[MonitoringState, list[CompactBatch], CarriedAlerts]:
    """The state without its tracked alerts (the groups are there, empty), the batches handed
    over, and the tracked alerts as packed, for `CarriedAlerts.build`."""
    data, _, carried = data.partition(PENDING_SEP)
    head, *parts = data.split(PART_SEP)
    body = _unsqueeze(head)
    counts = body.pop("parts", [])
    entries = body.pop("entries", {})  # packed whole (`_pack_whole`)
    old_pending = body.pop("pending", [])  # records, as runs before batches were carried packed
    pending = [CompactBatch.of("carried", old_pending)] if old_pending else []
    for d, n, c, *late in orjson.loads(carried or "[]"):
        batch_id, sender, seq = late or ("carried", "", 0)
        pending.append(CompactBatch(batch_id=batch_id, data=d, count=n, compressed=c, sender=sender, seq=seq))
    attached = body.pop("attached", {})
    dirty = body.pop("dirty", {})
    state = MonitoringState.model_validate(body)
    state.router.attached = {slot: key for key, slots in attached.items() for slot in slots}
    for key, fps in dirty.items():
        state.router.groups[key].dirty = dict.fromkeys(fps, True)
    # Last first, so that rebuilding takes from the ends of lists and still goes in packed order.
    rows = [(key, rows[::-1]) for key, rows in reversed(entries.items())]
    return state, pending, CarriedAlerts(rows, parts, sum(counts) + sum(len(r) for _, r in rows))


def build_entries(state: MonitoringState, rows: Rows, budget: int | None = None) -> list[tuple[str, list]]:
    """Rebuild up to `budget` packed alerts (all: None) into their groups; consumes them from
    `rows` (reversed: each group's rows last first, the last group first). Returns (group key,
    the entries built) for the router to index."""

    def ts(x: float) -> datetime:
        return datetime.fromtimestamp(x, UTC)

    built: list[tuple[str, list]] = []
    while rows and (budget is None or budget > 0):
        key, packed = rows[-1]  # reversed (see _unpack_parts)
        n = len(packed) if budget is None else min(budget, len(packed))
        take = packed[len(packed) - n :]
        del packed[len(packed) - n :]
        if not packed:
            rows.pop()
        if budget is not None:
            budget -= n
        group = state.router.groups[key]
        entries = []
        for rec, first, last, transitions, flapping, version in reversed(take):
            alert = alert_from_compact(rec)
            entry = construct_unvalidated(
                AlertEntry,
                {
                    "alert": alert,
                    "first_seen": ts(first),
                    "last_seen": ts(last),
                    "transitions": [ts(t) for t in transitions],
                    "flapping": flapping,
                    "sup_version": version,
                },
            )
            group.alerts[alert.fingerprint] = entry
            entries.append(entry)
        built.append((key, entries))
    return built


# Not sandboxed: this workflow applies thousands of alerts per task, and the sandbox's
# module proxies multiplied that cost several times over. Its code is deterministic by
# construction (no clock, randomness or I/O; only `workflow.now()`), which the replay tests
# check, so the sandbox's runtime checks buy nothing here.
@workflow.defn(sandboxed=False)
class MonitoringWorkflow:
    # The state is built here, not in `run`: a signal, update or query delivered with the first
    # workflow task (a silence added right after the start) runs before `run` does.
    @workflow.init
    def __init__(self, inp: MonitoringInput) -> None:
        self._queue: list[AlertBatch | CompactBatch | _Remainder] = []
        self._silence_changes: list[tuple[str, Silence]] = []
        self._closed: list[IncidentClosed] = []
        self._policy_changed = False
        self._capacity_warned_at: datetime | None = None
        self._timers: list[datetime] = []  # when the wake-up timers still pending ring
        self._ringing: set[asyncio.Future] = set()
        self._rang = False
        self._chunk_tasks = False  # set by `run` (workflow.patched)
        self._fitting = False  # likewise
        self._fits: int | None = None  # tracked alerts that fit a hand-over, once measured
        self._quiet_handover = False  # likewise
        self._pack_in_parts = False  # likewise
        self._settled_holds = False  # likewise (Router.settled_holds)
        self._causal_correlation = False  # likewise (Router.causal_correlation)
        self._silence_at_open = False  # likewise (Router.silence_at_open)
        self._live_sources = False  # likewise (Router.live_sources)
        self._handing_over = False  # packed, waiting for a task with no new batch (told to gateways)
        self._started_events = 0  # history events the run took to start (see `run`)
        self.scope = inp.scope
        self.policy = inp.policy
        self.incident_task_queue = inp.incident_task_queue
        self.payload_store = inp.payload_store
        self._max_carried = MAX_CARRIED_STORED if inp.payload_store else MAX_CARRIED
        if inp.carried:
            # The previous run (evicted by now) lives on in reference cycles, its whole state
            # with it, until the collector's oldest generation reaches it, now and then: every
            # hand-over kept one more state alive (917 MB RSS after four hand-overs of 25,000
            # alerts; 550-570 MB with this, bench/scope_capacity_bench.py). Collected before
            # the new state is built, its memory serves the new one. It still answers queries
            # until evicted, so it keeps its state until then.
            gc.collect()
        # The tracked alerts are rebuilt by `run`, a part per workflow task (see `_rebuild`).
        if inp.carried:
            with _no_gc():
                self.state, pending, self._carried_alerts = _unpack_parts(inp.carried)
        else:
            self.state, pending, self._carried_alerts = MonitoringState(), [], CarriedAlerts([], [], 0)
        # What the run needs of the hand-over, so that the input (up to 8 MB, which the SDK
        # keeps as long as the run) can let go of it.
        self._carried_state_bytes = len(inp.carried.partition(PENDING_SEP)[0]) if inp.carried else None
        inp.carried = None
        # Accepted by the previous run, not yet applied.
        self._queue.extend(_Remainder(packed=batch) for batch in pending)
        # A hand-over found too large is tried again once the queue is below this many bytes.
        self._handover_floor = self._max_carried
        self._seen: set[str] = set(self.state.recent_batches)
        for batch in pending:
            if batch.batch_id != "carried":  # arrived after the previous run packed its state
                self._remember(batch.batch_id)
                self.state.batches += 1
                if batch.sender:
                    self._received(batch)
        self.router = Router(self.policy.routing, self.state.router, self.scope)

    @workflow.run
    async def run(self, inp: MonitoringInput) -> None:
        next_pull = workflow.now()
        # Runs that began before these changes replay the way they ran (workflow.patched).
        lasting_timers = workflow.patched(LASTING_TIMERS)
        self._chunk_tasks = workflow.patched(CHUNK_TASKS)
        self._quiet_handover = workflow.patched(QUIET_HANDOVER)
        parts = workflow.patched(REBUILD_IN_PARTS)
        self._pack_in_parts = workflow.patched(PACK_IN_PARTS)
        self._settled_holds = workflow.patched(SETTLED_HOLDS)
        self.router.settled_holds = self._settled_holds
        self._causal_correlation = self._silence_at_open = workflow.patched(CORRELATION_AND_SILENCES)
        # Asked only where it matters: a patch costs the run history events (a marker and a
        # search-attribute upsert), and without inhibition rules there are no sources to keep.
        # Rules added by a reload take the live index from the next run on.
        self._live_sources = bool(self.policy.routing.inhibit_rules) and workflow.patched(LIVE_SOURCES)
        self._router_rules()
        if not parts:  # runs begun before rebuilt the state at once, before anything else
            self._rebuild(None)
        self._fitting = workflow.patched(FIT_CAPACITY)
        if self._carried_state_bytes is not None and self._chunk_tasks:
            # Rebuilding a large carried state takes much of an activation (the SDK's 2 s limit
            # is per activation): the first chunk of work waits for the next task.
            await self._next_task()
            # Rebuilt a part per task: 25,000 alerts at once held the worker 0.5 s (1.2 s on a
            # busy core), and every other scope it serves waited that long.
            while self._carried_alerts.left:
                self._rebuild(REBUILD_PART)
                await self._next_task()
        if self._carried_alerts.left:  # (only a run without tasks of its own for chunks)
            self._rebuild(None)
        if self._fitting and self._carried_state_bytes is not None:
            self._fit_capacity(self._carried_state_bytes)
        if parts and self._carried_state_bytes is not None:
            # A run that rebuilt a state hands over only once its history has grown past twice
            # what that took: with a low suggestion threshold, a run could otherwise do nothing
            # but rebuild and hand over again.
            self._started_events = workflow.info().get_current_history_length()

        while True:
            deadline = self.router.next_deadline()
            wake = next_pull if self.policy.sources else None
            if deadline is not None and (wake is None or deadline < wake):
                wake = deadline
            if lasting_timers:
                if wake is not None:  # one already due still waits a timer: never a busy loop
                    wake = max(wake, workflow.now() + timedelta(milliseconds=1))
                self._wake_at(wake)
                self._rang = False
                # Any timer ringing wakes the loop: one set for an earlier wake-up that no longer
                # matters rings before `wake`, and the loop then sets the timer for `wake`.
                await workflow.wait_condition(
                    lambda wake=wake: self._has_work() or self._rang or workflow.now() >= (wake or END)
                )
            else:
                timeout = max(wake - workflow.now(), timedelta(milliseconds=1)) if wake is not None else None
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(self._has_work, timeout=timeout)

            if self._policy_changed:
                self._policy_changed = False
                self.router = Router(self.policy.routing, self.state.router, self.scope)
                self.router.settled_holds = self._settled_holds
                self._router_rules()
                self._apply_capacity()
            await self._apply_silence_changes()
            for closed in self._closed:
                self.router.incident_closed(closed.group_key, workflow.now())
            self._closed.clear()
            backlog = self._ingest_pushed(INGEST_CHUNK)
            if self.policy.sources and workflow.now() >= next_pull:
                next_pull = workflow.now() + self.policy.poll_interval
                await self._pull()
            self.router.sweep(workflow.now())
            await self._act(self.router.due(workflow.now()))
            await self._announce_expired_silences()

            if self._handover_due() and self._quiet_handover:
                backlog = await self._hand_over() or backlog
            elif self._handover_due():  # runs begun before the quiet hand-over
                await workflow.wait_condition(workflow.all_handlers_finished)
                pending, batch_ids = self._take_pending()
                body = self._pack_body(batch_ids)
                carried = join_carried(body, pending)
                if len(carried) <= self._max_carried:
                    self._continue_as_new(carried)
                self._too_large(len(carried), len(body))
                backlog = bool(self._queue)
            if backlog:
                await self._next_task()

    def _router_rules(self) -> None:
        """Correlation and silence rules as this run began with (workflow.patched in `run`)."""
        self.router.causal_correlation = self._causal_correlation
        self.router.silence_at_open = self._silence_at_open
        self.router.live_sources = self._live_sources
        self.router.keep_muted_out = _keeps_muted_out

    def _rebuild(self, budget: int | None) -> None:
        """Rebuild up to `budget` of the tracked alerts handed over (all: None) and index them."""
        with _no_gc():
            for key, entries in self._carried_alerts.build(self.state, budget):
                self.router.adopt(key, entries)

    async def _hand_over(self) -> bool:
        """Continue as new, with the state packed now and the batches that arrive meanwhile
        carried as they came; returns (whether a backlog remains) only if the hand-over must wait.

        The server refuses a continue-as-new if a signal arrived while its task ran
        (`UnhandledCommand`), and the SDK then replays the whole run: under a steady stream of
        batches that was seconds of stall per hand-over. So the state is packed first (a part
        per task, see StatePacker), and the run continues as new in a later, short task with no
        new batch: once packed, the run says it is handing over
        (`FingerprintReport.handing_over`), and gateways hold their batches for this scope until
        the next run answers. Batches that arrive meanwhile are carried as they came."""
        if self._closed or self._silence_changes or self._policy_changed:
            return True  # the loop applies them first: the packed state must include them
        await workflow.wait_condition(workflow.all_handlers_finished)
        pending, batch_ids = self._take_pending()
        mark = len(self._queue)
        packer = StatePacker(self.state) if self._pack_in_parts else None
        while packer is not None and not packer.done:
            with _no_gc():
                packer.step(PACK_PART)
            if packer.done:
                break
            await self._next_task()
            if self._closed or self._silence_changes or self._policy_changed:
                return True  # the state changed under the packer: the loop applies it, then packs again
        body = self._pack_body(batch_ids, packer)
        size = len(body) + sum(len(b.data) for b in pending)
        if size > self._max_carried:
            self._too_large(size, len(body))
            return bool(self._queue)
        late: list[CompactBatch] = []
        self._handing_over = True  # until the run ends: the next one answers for the scope then
        started = quiet_since = workflow.now()
        while workflow.now() - quiet_since < HANDOVER_QUIET and workflow.now() - started < HANDOVER_WAIT:
            await self._next_task()
            if self._closed or self._silence_changes or self._policy_changed:
                self._handing_over = False  # changed since it was packed: the loop applies it first
                return True
            arrived = self._late(self._queue[mark:], batch_ids, late)
            mark = len(self._queue)
            if arrived:
                quiet_since = workflow.now()
                late += arrived
                size += sum(len(b.data) for b in arrived)
                if size > self._max_carried:
                    self._handing_over = False
                    self._too_large(size, len(body))
                    return True
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._continue_as_new(join_carried(body, pending, late))

    def _continue_as_new(self, carried: str) -> NoReturn:
        handed = MonitoringInput(
            scope=self.scope,
            policy=self.policy,
            carried=carried,
            incident_task_queue=self.incident_task_queue,
            payload_store=self.payload_store,
        )
        workflow.continue_as_new(handed)

    def _pack_body(self, batch_ids: list[str], packer: StatePacker | None = None) -> str:
        """The state as the next run starts from it: one run more, and the queued batches
        `batch_ids` counted and remembered (so a redelivery after the hand-over is applied once;
        the next run counts their alerts as it applies them). With `packer`, the tracked alerts
        it packed; without, packed whole here (runs begun before the hand-over in parts)."""
        remembered = list(self.state.recent_batches)
        self.state.recent_batches = (remembered + batch_ids)[-RECENT_BATCHES:]
        self.state.runs += 1
        self.state.batches += len(batch_ids)
        try:
            with _no_gc():
                return (
                    packer.join(_pack_head(self.state, packer.counts)) if packer else _pack_whole(self.state)
                )
        finally:  # unless the hand-over happens
            self.state.recent_batches = remembered
            self.state.runs -= 1
            self.state.batches -= len(batch_ids)

    def _late(self, arrived: list, batch_ids: list[str], late: list[CompactBatch]) -> list[CompactBatch]:
        """Batches that arrived after the state was packed, as the next run gets them (a
        redelivered one, already applied or already carried, is left out)."""
        taken = set(batch_ids) | {b.batch_id for b in late}
        out: list[CompactBatch] = []
        for batch in arrived:
            if batch.batch_id in self._seen or batch.batch_id in taken:
                continue
            taken.add(batch.batch_id)
            if isinstance(batch, AlertBatch):
                batch = CompactBatch.of(batch.batch_id, [alert_to_compact(a) for a in batch.alerts])
            out.append(batch)
        return out

    def _too_large(self, size: int, state_bytes: int) -> None:
        """A hand-over over the limit: apply the backlog first. Packing again after every chunk
        would cost as much as the chunk: wait until the queue has shrunk by what the hand-over
        was over (or, if the state alone is over, until the next batch has been applied)."""
        self._handover_floor = self._queued_bytes() - (size - self._max_carried)
        if self._fitting:
            self._fit_capacity(state_bytes)
        workflow.logger.warning(
            "scope %s: hand-over of %d bytes is too large to continue as new; applying the backlog first",
            self.scope,
            size,
        )

    async def _next_task(self) -> None:
        """The next chunk of a backlog in a workflow task of its own (see Orchestration.next_chunk):
        each activation stays far below the SDK's 2 s limit, and each task short. A chain of
        local activities kept one task open for the whole backlog, 9 s and more under load: the
        SDK then heartbeats the task, and a retried one failed to replay (`Missing associated
        machine for LocalActivity`), wedging the scope. An activity round trip costs about 18 ms
        on the dev server, a timer about a second."""
        if self._chunk_tasks:
            await workflow.execute_activity_method(
                Orchestration.next_chunk, start_to_close_timeout=timedelta(seconds=30)
            )
        else:  # runs that began with local-activity chunks replay the way they ran
            await workflow.execute_local_activity_method(
                Orchestration.next_chunk, start_to_close_timeout=timedelta(seconds=10)
            )

    def _fit_capacity(self, state_bytes: int) -> None:
        """Measure what a tracked alert of this scope costs in a hand-over and hold the scope to
        what fits: routing.max_tracked_alerts is a count, and alerts with many or long labels
        reach Temporal's payload limit well before it. A scope that cannot hand over grows its
        history until the server ends the run, and its state with it."""
        tracked = self.router.tracked_count()
        if tracked < MIN_MEASURED:
            return
        self._fits = int(CARRY_SHARE * self._max_carried * tracked / state_bytes)
        self._apply_capacity()

    def _apply_capacity(self) -> None:
        limit = self.policy.routing.max_tracked_alerts
        if self._fits is not None and self._fits < limit:
            self.router.capacity = self._fits
            self.router.capacity_reason = (
                f"{self._fits}, what fits one continue-as-new hand-over at the size measured for "
                f"this scope's alerts; routing.max_tracked_alerts is {limit}"
            )

    def _has_work(self) -> bool:
        return (
            bool(self._queue or self._silence_changes or self._closed or self._policy_changed)
            or self._handover_due()
        )

    def _wake_at(self, wake: datetime | None) -> None:
        """A timer that wakes the loop at `wake`, unless one already rings by then. Timers here
        are never cancelled: a cancel sent at the end of a long workflow task (a backlog worked
        off in local-activity chunks) can name a timer that fired meanwhile, and the server then
        refuses the task, every retry alike (BadCancelTimerAttributes). A timer that rings when
        it is no longer needed costs one empty wake-up."""
        if wake is None or any(t <= wake for t in self._timers):
            return
        self._timers.append(wake)

        async def ring() -> None:
            await workflow.sleep(wake - workflow.now())
            self._timers.remove(wake)
            self._rang = True

        task = asyncio.ensure_future(ring())
        self._ringing.add(task)  # held until it rings (a bare task may be collected)
        task.add_done_callback(self._ringing.discard)

    # --- pushed and pulled alerts ----------------------------------------------------------------
    def _ingest_pushed(self, budget: int) -> bool:
        """Apply queued batches, about `budget` work at most (a repeat of a known alert is one
        unit, a new or changed alert SLOW_PATH_COST); True if some remain queued."""
        refused = self.state.router.counts.get("over_capacity", 0)
        try:
            return self._apply_queue(budget)
        finally:
            now_refused = self.state.router.counts.get("over_capacity", 0)
            since = self._capacity_warned_at
            if now_refused > refused and (since is None or workflow.now() - since >= timedelta(minutes=1)):
                self._capacity_warned_at = workflow.now()  # at most once a minute, not every pass
                workflow.logger.warning(
                    "scope %s is at its limit (%s): %d new alerts not tracked so far",
                    self.scope,
                    self.router.capacity_reason,
                    now_refused,
                )

    def _apply_queue(self, budget: int) -> bool:
        now = workflow.now()
        while self._queue and budget > 0:
            batch = self._queue[0]
            if isinstance(batch, _Remainder):
                records = batch.records()
            else:
                if batch.batch_id in self._seen:
                    self._queue.pop(0)
                    continue  # a redelivered batch is applied once
                self._remember(batch.batch_id)
                self.state.batches += 1
                if isinstance(batch, AlertBatch):
                    self._queue.pop(0)
                    self.router.ingest(batch.alerts, now)
                    self.state.alerts_received += len(batch.alerts)
                    budget -= len(batch.alerts) * SLOW_PATH_COST
                    continue
                records = batch.records()
            consumed, repeats = self.router.ingest_records(records, now, budget)
            self.state.alerts_received += consumed
            budget -= repeats + (consumed - repeats) * SLOW_PATH_COST
            if consumed < len(records):
                self._queue[0] = _Remainder(records[consumed:])
            else:
                self._queue.pop(0)
                self._handover_floor = max(self._handover_floor, 0)
        return bool(self._queue)

    def _take_pending(self) -> tuple[list[CompactBatch], list[str]]:
        """The queue as batches for the next run, and the ids of its batches (the next run
        remembers them, so a redelivery after the hand-over is still applied once). The queue
        keeps them too: if the hand-over does not happen, they are applied here."""
        out: list[CompactBatch] = []
        ids: list[str] = []
        for batch in self._queue:
            if isinstance(batch, _Remainder):
                out.append(batch.as_batch())
            elif batch.batch_id not in self._seen and batch.batch_id not in ids:
                ids.append(batch.batch_id)
                if isinstance(batch, AlertBatch):
                    out.append(CompactBatch.of(batch.batch_id, [alert_to_compact(a) for a in batch.alerts]))
                else:
                    out.append(batch)
        return out, ids

    def _handover_due(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            and self._queued_bytes() <= self._handover_floor
            and info.get_current_history_length() >= 2 * self._started_events
        )

    def _queued_bytes(self) -> int:
        """About what the queue adds to a hand-over (a cheap estimate, so that a hand-over that
        cannot fit is not packed only to find out)."""
        total = 0
        for item in self._queue:
            if isinstance(item, CompactBatch):
                total += len(item.data)
            elif isinstance(item, _Remainder):
                total += len(item.packed.data) if item.packed is not None else item.count * 40
            else:
                total += len(item.alerts) * 40
        return total

    def _remember(self, batch_id: str) -> None:
        self._seen.add(batch_id)
        self.state.recent_batches.append(batch_id)
        if len(self.state.recent_batches) > RECENT_BATCHES:
            drop = self.state.recent_batches[: len(self.state.recent_batches) - RECENT_BATCHES]
            del self.state.recent_batches[: len(drop)]
            self._seen.difference_update(drop)

    async def _pull(self) -> None:
        at = workflow.now()
        try:
            collected = await workflow.execute_activity_method(
                Collector.collect, CollectRequest(scope=self.scope, at=at), **QUICK
            )
            evaluated = await workflow.execute_activity_method(
                Evaluator.evaluate,
                EvaluateRequest(
                    scope=self.scope, at=at, results=collected.results, state=self.state.evaluator
                ),
                **QUICK,
            )
        except ActivityError as exc:
            workflow.logger.warning("pull failed in scope %s: %s", self.scope, exc.cause or exc)
            self.state.health = [SourceHealth(source="collector", ok=False, detail=str(exc.cause or exc))]
            if self.state.evaluator.firing and workflow.patched(PULL_FAILED_REFRESH):
                # Nothing was measured: what fires still fires (an outage is not a recovery).
                refreshed = still_firing(self.state.evaluator, f"pull failed: {exc.cause or exc}")
                self.state.alerts_received += len(refreshed)
                self.router.ingest(refreshed, at)
            return
        self.state.health = collected.health
        self.state.last_pull = at.isoformat()
        self.state.evaluator = evaluated.state
        if evaluated.alerts:
            self.state.alerts_received += len(evaluated.alerts)
            self.router.ingest(evaluated.alerts, at)

    # --- incidents -------------------------------------------------------------------------------
    async def _act(self, actions: list[GroupAction]) -> None:
        sem = asyncio.Semaphore(START_CONCURRENCY)

        async def one(action: GroupAction) -> None:
            async with sem:
                if action.kind == "open":
                    await self._open(action)
                else:
                    await self._update(action)

        await asyncio.gather(*(one(a) for a in actions))

    async def _open(self, action: GroupAction) -> None:
        try:
            await workflow.start_child_workflow(
                "IncidentWorkflow",
                IncidentInput(
                    incident_id=action.incident_id,
                    group_key=action.group_key,
                    group_labels=action.labels,
                    alerts=action.alerts,
                    scope=self.scope,
                    receiver=action.receiver,
                    decisions=action.decisions,
                    decisions_dropped=action.decisions_dropped,
                    firing_count=action.firing_count,
                    monitoring_workflow_id=workflow.info().workflow_id,
                    policy=self.policy,
                ),
                id=action.incident_id,
                task_queue=self.incident_task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError as exc:
            # Already running (e.g. started by a previous run of this workflow): send it the alerts.
            workflow.logger.info("incident %s exists (%s): updating it", action.incident_id, exc)
            await self._update(action)

    async def _update(self, action: GroupAction) -> None:
        try:
            await workflow.get_external_workflow_handle(action.incident_id).signal(
                "add_alerts",
                AlertsSignal(
                    alerts=action.alerts,
                    decisions=action.decisions,
                    decisions_dropped=action.decisions_dropped,
                    firing_count=action.firing_count,
                ),
            )
        except Exception as exc:
            # The incident closed in the meantime: the group opens a new one on the next pass.
            workflow.logger.info("incident %s unreachable (%s): will reopen", action.incident_id, exc)
            self.router.incident_lost(action.group_key)

    # --- silences --------------------------------------------------------------------------------
    async def _apply_silence_changes(self) -> None:
        changes, self._silence_changes = self._silence_changes, []
        for what, silence in changes:
            verb = {"add": "created", "expire": "expired"}.get(what, "updated")
            # Each change is told: an update's key names its request ("update/<request id>").
            await self._tell_people(
                f"silence/{silence.id}/{verb}" + what.removeprefix("update"),
                f"Silence {silence.id} {verb} by {silence.created_by}",
                f"Matchers: {', '.join(map(str, silence.matchers))}\n"
                f"From: {silence.starts_at.isoformat()}\nUntil: {silence.ends_at.isoformat()}\n"
                f"Comment: {silence.comment}",
            )

    async def _announce_expired_silences(self) -> None:
        now = workflow.now()
        for s in self.router.state.silences:
            if s.ends_at <= now and s.id not in self.state.announced_expired:
                self._mark_announced(s.id)
                await self._tell_people(
                    f"silence/{s.id}/expired",
                    f"Silence {s.id} expired",
                    f"Matchers: {', '.join(map(str, s.matchers))}; created by {s.created_by}: {s.comment}",
                )
        for gone in self.router.drop_old_silences(now):
            if gone.id in self.state.announced_expired:
                self.state.announced_expired.remove(gone.id)

    def _mark_announced(self, silence_id: str) -> None:
        self.state.announced_expired.append(silence_id)
        if workflow.patched(CORRELATION_AND_SILENCES):
            # Bounded by the silences kept: `drop_old_silences` forgets both together. Trimmed to
            # 500, a scope where more silences ended within a day (they are kept a day) forgot
            # that it had told of one still kept, told of it again on its next pass, and pushed
            # another out: a notification per pass, for ever.
            return
        del self.state.announced_expired[:-500]

    async def _tell_people(self, key: str, subject: str, body: str) -> None:
        try:
            await workflow.execute_activity_method(
                Notifier.notify,
                Notification(
                    key=f"{workflow.info().workflow_id}/{key}",
                    kind=NotificationKind.SILENCE,
                    subject=subject,
                    body=body,
                ),
                **EFFECT,
            )
        except ActivityError as exc:
            workflow.logger.warning("silence notification failed: %s", exc.cause or exc)

    # --- messages --------------------------------------------------------------------------------
    @workflow.signal
    def ingest(self, batch: AlertBatch) -> None:
        self._queue.append(batch)

    @workflow.signal
    def ingest_compact(self, batch: CompactBatch) -> None:
        """The gateway's hot path: alerts it validated, as one compact JSON string."""
        self._queue.append(batch)
        if batch.sender:
            self._received(batch)

    def _received(self, batch: CompactBatch) -> None:
        seqs = self.state.received_seq
        seqs[batch.sender] = max(seqs.pop(batch.sender, 0), batch.seq)  # latest sender last
        if len(seqs) > MAX_SENDERS:
            del seqs[next(iter(seqs))]

    @workflow.signal
    def incident_closed(self, closed: IncidentClosed) -> None:
        self._closed.append(closed)

    @workflow.signal
    def reload(self, policy: Policy) -> None:
        self.policy = policy
        self._policy_changed = True

    @workflow.signal
    def set_payload_store(self, setting: PayloadStoreSetting) -> None:
        """The deployment turned its payload store on or off: a larger or smaller hand-over from
        now on. A capacity fitted to the old limit is dropped; the next hand-over (or one found
        too large) measures again."""
        if setting.enabled == self.payload_store:
            return
        self.payload_store = setting.enabled
        self._max_carried = MAX_CARRIED_STORED if setting.enabled else MAX_CARRIED
        self._handover_floor = self._max_carried
        self._fits = None
        self.router.capacity = self.policy.routing.max_tracked_alerts
        self.router.capacity_reason = f"routing.max_tracked_alerts {self.router.capacity}"

    @workflow.update
    def add_silence(self, req: SilenceRequest) -> Silence:
        return self._new_silence(req)

    def _new_silence(self, req: SilenceRequest) -> Silence:
        now = workflow.now()
        if req.request_id:
            for s in self.router.state.silences:
                if s.id == f"sil-{req.request_id}":
                    return s
        self.state.silence_seq += 1
        starts = max(now, req.starts_at) if req.starts_at is not None else now
        ends = starts + req.duration
        if req.starts_at is not None and workflow.patched(CORRELATION_AND_SILENCES):
            # `duration` from the start asked for, as documented (and as Alertmanager keeps endsAt
            # when it moves a past start to now): a start already past made it last longer.
            ends = req.starts_at + req.duration
        silence = Silence(
            id=f"sil-{req.request_id}" if req.request_id else f"sil-{self.state.silence_seq}",
            matchers=req.matchers,
            starts_at=starts,
            ends_at=ends,
            created_by=req.created_by,
            comment=req.comment,
            updated_at=now if workflow.patched(SILENCE_CHANGES) else None,
        )
        self.router.add_silence(silence)
        self._silence_changes.append(("add", silence))
        return silence

    @add_silence.validator
    def _validate_silence(self, req: SilenceRequest) -> None:
        problem = silence_request_problem(req, workflow.now())
        if problem:
            raise ValueError(problem)

    @workflow.update
    def update_silence(self, req: SilenceUpdate) -> Silence:
        """A silence posted again under its id, with Alertmanager's rules: changed in place when
        its matchers are the same and, if active, its start too and its end not past (if pending,
        its new start not past); otherwise it expires (unless it has) and the change becomes a new
        silence, with a new id: what silenced before stays on record as it was."""
        now = workflow.now()
        prev = next(s for s in self.router.state.silences if s.id == req.silence_id)  # validated
        change = req.change
        if change.request_id and any(s.id == f"sil-{change.request_id}" for s in self.router.state.silences):
            return self._new_silence(change)  # a retry of a replacement: the one it made
        if prev.updatable_in_place(change, now):
            # An active one keeps its start (the same, to the millisecond); a pending one moves.
            starts = prev.starts_at if prev.starts_at <= now else (change.starts_at or now)
            updated = prev.model_copy(
                update={
                    "starts_at": starts,
                    "ends_at": (change.starts_at or now) + change.duration,
                    "created_by": change.created_by,
                    "comment": change.comment,
                    "updated_at": now,
                }
            )
            self.router.replace_silence(updated)  # same id; what it held is looked at again
            self._silence_changes.append((f"update/{change.request_id}", updated))
            return updated
        if prev.state(now) != SilenceState.EXPIRED:
            gone = self.router.expire_silence(prev.id, now, by_hand=True)
            assert gone is not None
            self._mark_announced(prev.id)
            told = gone.model_copy(update={"created_by": change.created_by})
            self._silence_changes.append(("expire", told))
        return self._new_silence(change)

    @update_silence.validator
    def _validate_update(self, req: SilenceUpdate) -> None:
        if not any(s.id == req.silence_id for s in self.router.state.silences):
            raise ValueError(f"no silence {req.silence_id}")
        problem = silence_request_problem(req.change, workflow.now())
        if problem:
            raise ValueError(problem)

    @workflow.update
    def expire_silence(self, req: SilenceExpire) -> Silence:
        now = workflow.now()
        # A pending silence expired by hand never began: it starts and ends now (Alertmanager),
        # not "from tomorrow until now".
        silence = self.router.expire_silence(
            req.silence_id,
            now,
            pending_too=workflow.patched(CORRELATION_AND_SILENCES),
            by_hand=workflow.patched(SILENCE_CHANGES),
        )
        if silence is None:
            raise ApplicationError(f"no silence {req.silence_id}", type="UnknownSilence")
        self._mark_announced(silence.id)
        self._silence_changes.append(("expire", silence.model_copy(update={"created_by": req.by})))
        return silence

    @expire_silence.validator
    def _validate_expire(self, req: SilenceExpire) -> None:
        # As Alertmanager: expiring an expired silence is refused, not told to people again.
        for s in self.router.state.silences:
            if s.id == req.silence_id and s.ends_at <= workflow.now():
                raise ValueError(f"silence {s.id} already expired at {s.ends_at.isoformat()}")

    @workflow.query
    def silences(self) -> list[Silence]:
        return list(self.router.state.silences)

    @workflow.query
    def alerts(self, query: AlertQuery) -> AlertListing:
        """The firing alerts this scope tracks (Alertmanager's `GET /api/v2/alerts`)."""
        return self.router.alert_views(query, workflow.now())

    @workflow.query
    def status(self) -> MonitoringStatus:
        groups = self.router.state.groups
        return MonitoringStatus(
            scope=self.scope,
            groups=len(groups),
            open_incidents=sum(1 for g in groups.values() if g.incident_open),
            silences=len(self.router.active_silences(workflow.now())),
            alerts_received=self.state.alerts_received,
            batches=self.state.batches,
            counts=dict(self.state.router.counts),
            health=self.state.health,
            runs=self.state.runs,
            last_pull=self.state.last_pull,
            tracked=self.router.tracked_count(),
            handover_limit_bytes=self._max_carried,
            payload_store=self.payload_store,
            capacity=self.router.capacity,
        )

    @workflow.query
    def check_fingerprints(self, req: FingerprintCheck) -> FingerprintReport:
        """Which of these alerts this scope holds: a read for durability checks (every alert the
        gateway acknowledged must be held, or still queued while a backlog is worked off)."""
        queued = self._carried_alerts.left  # handed over, not yet rebuilt
        for item in self._queue:
            if isinstance(item, (_Remainder, CompactBatch)):
                queued += item.count
            else:
                queued += len(item.alerts)
        return FingerprintReport(
            tracked=len(self.router.tracked_fingerprints()),
            queued=queued,
            missing=self.router.untracked(req.fingerprints),
            received_seq=self.state.received_seq.get(req.sender, 0),
            handing_over=self._handing_over,
            # Due, not merely suggested: a scope over the hand-over limit may stay suggested for
            # long, and every gateway would probe it 20 times a second meanwhile.
            handover_soon=self._handover_due(),
        )

    @workflow.query
    def recent_decisions(self) -> list[RouteDecision]:
        return list(self.router.state.recent[-self.router.recent_limit :])
