"""The embedded ticket tracker: tickets and comments in a local SQLite file.

Create is create-or-get by the request key, so a retried or replayed Ticket Writer never
makes a second ticket for one incident.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from argus.models import TicketRef, TicketRequest, TicketUpdate

from .sql import make_engine


class _Base(DeclarativeBase):
    pass


class TicketRow(_Base):
    __tablename__ = "tickets"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_key: Mapped[str] = mapped_column(String(300), unique=True)
    key: Mapped[str] = mapped_column(String(40), unique=True, default="")
    incident_id: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    service: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    labels: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(40), default="open")
    resolution: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommentRow(_Base):
    __tablename__ = "ticket_comments"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    update_key: Mapped[str] = mapped_column(String(300), unique=True)
    ticket: Mapped[str] = mapped_column(ForeignKey("tickets.key"), index=True)
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LocalTickets:
    name = "local"

    def __init__(self, url: str, base_url: str = "") -> None:
        self.engine = make_engine(url)
        self.base_url = base_url.rstrip("/")
        _Base.metadata.create_all(self.engine)

    def _ref(self, row: TicketRow) -> TicketRef:
        url = f"{self.base_url}/tickets/{row.key}" if self.base_url else f"local:{row.key}"
        return TicketRef(system=self.name, key=row.key, url=url, state=row.state)

    def create(self, request: TicketRequest) -> TicketRef:
        now = datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(TicketRow).where(TicketRow.request_key == request.key)).first()
            if row is None:
                row = TicketRow(
                    request_key=request.key,
                    incident_id=request.incident_id,
                    title=request.title,
                    description=request.description,
                    service=request.service,
                    severity=request.severity,
                    labels=",".join(request.labels),
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                row.key = f"LOCAL-{row.seq}"
            return self._ref(row)

    def update(self, update: TicketUpdate) -> TicketRef:
        now = datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            row = s.scalars(select(TicketRow).where(TicketRow.key == update.ticket.key)).first()
            if row is None:
                from .base import PermanentError

                raise PermanentError(f"local ticket {update.ticket.key} does not exist")
            done = s.scalars(select(CommentRow).where(CommentRow.update_key == update.key)).first()
            if done is None:
                if update.comment:
                    s.add(CommentRow(update_key=update.key, ticket=row.key, body=update.comment, at=now))
                else:
                    s.add(CommentRow(update_key=update.key, ticket=row.key, body="", at=now))
                if update.state:
                    row.state = update.state
                if update.resolution:
                    row.resolution = update.resolution
                row.updated_at = now
            return self._ref(row)

    def get(self, key: str) -> TicketRef | None:
        with Session(self.engine) as s:
            row = s.scalars(
                select(TicketRow).where((TicketRow.key == key) | (TicketRow.request_key == key))
            ).first()
            return self._ref(row) if row else None

    def comments(self, key: str) -> list[str]:
        with Session(self.engine) as s:
            q = (
                select(CommentRow)
                .where(CommentRow.ticket == key, CommentRow.body != "")
                .order_by(CommentRow.seq)
            )
            return [c.body for c in s.scalars(q)]

    def count(self) -> int:
        with Session(self.engine) as s:
            return len(list(s.scalars(select(TicketRow.seq))))
