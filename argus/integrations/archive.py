"""The incident archive: closed (and open) incidents with their RCA, actions and outcome.

Temporal deletes closed workflows after the namespace retention, so ARGUS keeps its own
record here. SQLite by default; any SQLAlchemy URL (PostgreSQL in production) works.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from argus.models import ChangeEvent, IncidentState, IncidentSummary

from .sql import make_engine


class _Base(DeclarativeBase):
    pass


class IncidentRow(_Base):
    __tablename__ = "incidents"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True, index=True)  # workflow id + run id
    incident_id: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(40), index=True, default="")
    title: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(String(200), index=True, default="")
    severity: Mapped[str] = mapped_column(String(20), default="")
    environment: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(40), default="triggered")
    outcome: Mapped[str] = mapped_column(String(40), default="none")
    playbook: Mapped[str] = mapped_column(String(200), default="")
    root_cause: Mapped[str] = mapped_column(String(200), default="")
    fault_signature: Mapped[str] = mapped_column(String(200), default="")
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[dict] = mapped_column(JSON, default=dict)


class ChangeRow(_Base):
    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(200), unique=True)
    service: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class IncidentArchive:
    """Create-or-get incident records, save their state as they move, and answer history questions."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    # --- incidents ---------------------------------------------------------------------------
    def open(self, state: IncidentState, run_id: str) -> str:
        """Record an incident; idempotent on (incident id, run id). Returns its number (INC-n)."""
        key = f"{state.incident_id}:{run_id}"
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(IncidentRow).where(IncidentRow.key == key)).first()
            if row is None:
                row = IncidentRow(
                    key=key,
                    incident_id=state.incident_id,
                    run_id=run_id,
                    title=state.title,
                    service=state.service,
                    severity=state.severity.value,
                    environment=state.environment,
                    status=state.status.value,
                    backfill=state.backfill,
                    opened_at=state.opened_at,
                    state={},
                )
                s.add(row)
                s.flush()
                row.number = f"INC-{row.seq}"
                snapshot = state.model_copy(update={"number": row.number})
                row.state = json.loads(snapshot.model_dump_json())
            return row.number

    def save(self, state: IncidentState, run_id: str) -> None:
        key = f"{state.incident_id}:{run_id}"
        top = state.rca.top if state.rca else None
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(IncidentRow).where(IncidentRow.key == key)).first()
            if row is None:
                raise KeyError(f"incident {key} was never opened in the archive")
            row.status = state.status.value
            row.outcome = state.outcome.value
            row.closed_at = state.closed_at
            row.playbook = state.proposal.playbook if state.proposal else ""
            row.root_cause = top.service if top else ""
            row.fault_signature = top.fault_signature if top else ""
            row.state = json.loads(state.model_dump_json())

    def _summary(self, row: IncidentRow) -> IncidentSummary:
        return IncidentSummary(
            incident_id=row.incident_id,
            number=row.number,
            title=row.title,
            service=row.service,
            severity=row.severity,
            status=row.status,
            opened_at=_aware(row.opened_at),
            closed_at=_aware(row.closed_at),
            outcome=row.outcome,
            source="archive",
        )

    def list(
        self, service: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[IncidentSummary]:
        q = select(IncidentRow).order_by(IncidentRow.seq.desc()).limit(limit)
        if service:
            q = q.where(IncidentRow.service == service)
        if status:
            q = q.where(IncidentRow.status == status)
        with Session(self.engine) as s:
            return [self._summary(r) for r in s.scalars(q)]

    def get(self, ident: str) -> IncidentState | None:
        """By number (INC-7) or incident id (latest run)."""
        with Session(self.engine) as s:
            q = select(IncidentRow).where(
                (IncidentRow.number == ident.upper()) | (IncidentRow.incident_id == ident)
            )
            row = s.scalars(q.order_by(IncidentRow.seq.desc())).first()
            if row is None or not row.state:
                return None
            return IncidentState.model_validate(row.state)

    def all_states(self, closed_only: bool = True, limit: int = 5000) -> list[IncidentState]:
        q = select(IncidentRow).order_by(IncidentRow.seq.desc()).limit(limit)
        if closed_only:
            q = q.where(IncidentRow.closed_at.is_not(None))
        with Session(self.engine) as s:
            return [IncidentState.model_validate(r.state) for r in s.scalars(q) if r.state]

    def playbook_stats(self) -> dict[str, tuple[int, int]]:
        """Per playbook: (times it fixed the incident, times it ran)."""
        stats: dict[str, list[int]] = {}
        q = select(IncidentRow.playbook, IncidentRow.outcome).where(
            IncidentRow.closed_at.is_not(None), IncidentRow.playbook != ""
        )
        with Session(self.engine) as s:
            for playbook, outcome in s.execute(q):
                if outcome in ("none", "rejected"):
                    continue
                ok, total = stats.setdefault(playbook, [0, 0])
                stats[playbook] = [ok + (outcome == "fixed"), total + 1]
        return {k: (v[0], v[1]) for k, v in stats.items()}

    def similar(self, service: str, limit: int = 5) -> list[IncidentSummary]:
        q = (
            select(IncidentRow)
            .where(IncidentRow.closed_at.is_not(None), IncidentRow.service == service)
            .order_by(IncidentRow.seq.desc())
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [self._summary(r) for r in s.scalars(q)]

    # --- change events (deploys, config changes) -----------------------------------------------
    def record_change(self, event: ChangeEvent) -> ChangeEvent:
        with Session(self.engine) as s, s.begin():
            if event.id:
                existing = s.scalars(select(ChangeRow).where(ChangeRow.id == event.id)).first()
                if existing is not None:
                    return ChangeEvent.model_validate(existing.data)
            row = ChangeRow(id=event.id or "", service=event.service, at=event.at, kind=event.kind, data={})
            s.add(row)
            s.flush()
            if not event.id:
                event = event.model_copy(update={"id": f"chg-{row.seq}"})
                row.id = event.id
            row.data = json.loads(event.model_dump_json())
            return event

    def changes_between(self, start: datetime, end: datetime) -> list[ChangeEvent]:
        q = select(ChangeRow).where(ChangeRow.at >= start, ChangeRow.at <= end).order_by(ChangeRow.at)
        with Session(self.engine) as s:
            return [ChangeEvent.model_validate(r.data) for r in s.scalars(q)]
