"""Base model and small helpers shared by every contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    # Every timestamp that crosses a boundary is aware UTC; a naive one is taken as UTC,
    # which is what Prometheus, Alertmanager and most webhooks mean.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_to_utc)]


def _compiles(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"{v!r} is not a valid regular expression: {exc}") from exc
    return v


# A Python regular expression, refused at validation when it does not compile.
RegexStr = Annotated[str, AfterValidator(_compiles)]


M = TypeVar("M", bound=BaseModel)


class Model(BaseModel):
    """Strict-ish base: unknown fields are refused so a typo in config or input is an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OpenModel(BaseModel):
    """For payloads that may carry vendor extras we keep but do not interpret."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def construct_unvalidated(cls: type[M], values: dict) -> M:
    """Build a model from values that were validated before (e.g. by the gateway, or written
    by ARGUS itself), without validating again.

    It does what `model_construct` does minus its per-field bookkeeping, which dominates the
    cost on the ingest hot path and when a large state is carried over by continue-as-new
    (1.6 µs instead of 9 µs per alert). `values` must hold every field of the model.
    """
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m
