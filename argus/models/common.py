"""Base model and small helpers shared by every contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    # Every timestamp that crosses a boundary is aware UTC; a naive one is taken as UTC,
    # which is what Prometheus, Alertmanager and most webhooks mean.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_to_utc)]


class Model(BaseModel):
    """Strict-ish base: unknown fields are refused so a typo in config or input is an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OpenModel(BaseModel):
    """For payloads that may carry vendor extras we keep but do not interpret."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
