"""The small Protocols every outside system is reached through.

Each has an embedded default (local store, outbox, git repository) beside the real
implementations, so ARGUS and its tests run on one machine with no accounts. Clients here
never retry on their own: the calling activity's retry policy does. Errors no retry can fix
are raised as `PermanentError`; activities turn them into non-retryable failures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from argus.models import (
    ChangeEvent,
    Delivery,
    Document,
    Notification,
    PublishResult,
    Sample,
    Series,
    SourceHealth,
    TicketRef,
    TicketRequest,
    TicketUpdate,
)
from argus.models.traces import SpanRecord


class IntegrationError(Exception):
    """A call to an outside system failed in a way a retry may fix (timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(IntegrationError):
    """A call failed in a way no retry can fix (bad request, unknown object, refused)."""


@runtime_checkable
class MetricsSource(Protocol):
    name: str

    async def instant(self, expr: str, at: datetime) -> list[Sample]: ...

    async def range(self, expr: str, start: datetime, end: datetime, step_seconds: float) -> list[Series]: ...

    async def health(self) -> SourceHealth: ...


class LogBucket(Protocol):
    service: str
    start: float
    count: int


@runtime_checkable
class LogSource(Protocol):
    name: str

    async def error_counts(
        self, start: datetime, end: datetime, interval_seconds: int
    ) -> dict[str, list[tuple[float, int]]]:
        """Per service, (bucket start, error count) over the window."""
        ...

    async def messages(self, start: datetime, end: datetime, limit: int) -> list[dict[str, str]]:
        """Raw log records (at least `service`, `level`, `message`, `@timestamp`)."""
        ...

    async def health(self) -> SourceHealth: ...


@runtime_checkable
class TraceSource(Protocol):
    """Spans of the incident window (the OTLP receiver's store, or a tracing backend)."""

    name: str

    async def spans(self, start: datetime, end: datetime, limit: int) -> list[SpanRecord]:
        """Spans that began in [start, end]; at most about `limit`, sampled by whole traces."""
        ...

    async def health(self) -> SourceHealth: ...


@runtime_checkable
class TicketSystem(Protocol):
    name: str

    def create(self, request: TicketRequest) -> TicketRef:
        """Create the ticket, or return the one already made for `request.key`."""
        ...

    def update(self, update: TicketUpdate) -> TicketRef: ...

    def get(self, key: str) -> TicketRef | None: ...


@runtime_checkable
class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> Delivery:
        """Deliver once per `notification.key`; a repeated key returns the first delivery."""
        ...


@runtime_checkable
class Publisher(Protocol):
    name: str

    def publish(self, document: Document) -> PublishResult:
        """Create or update the document in place; never make a duplicate."""
        ...


@runtime_checkable
class ChangeLog(Protocol):
    def record(self, event: ChangeEvent) -> ChangeEvent: ...

    def between(self, start: datetime, end: datetime) -> list[ChangeEvent]: ...
