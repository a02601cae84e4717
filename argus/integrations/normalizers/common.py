"""Helpers shared by the normalisers: error collection and timestamp parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

ZERO_TIME_YEAR = 1  # Alertmanager's "0001-01-01T00:00:00Z" means "not set"


class PayloadError(ValueError):
    """A payload that cannot be accepted; `problems` are "location: message" strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def problems_from(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        loc = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        out.append(f"{loc.lstrip('.') or 'body'}: {err['msg']}")
    return out


def parse_time(value: Any, where: str, problems: list[str]) -> datetime | None:
    """RFC 3339 string or unix seconds → aware UTC; None for missing or zero time."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            dt = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str):
            text = value.strip().replace("Z", "+00:00")
            if "." in text:
                # Go prints up to nine fractional digits; Python takes six.
                head, _, rest = text.partition(".")
                digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]  # leading digits only
                tz = rest[len(digits) :]
                text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
            dt = datetime.fromisoformat(text)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        problems.append(f"{where}: invalid timestamp {value!r} (use RFC 3339, e.g. 2026-01-01T00:00:00Z)")
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    if dt.year <= ZERO_TIME_YEAR:
        return None
    return dt


def string_map(value: Any, where: str, problems: list[str], required: bool = False) -> dict[str, str]:
    if value is None:
        if required:
            problems.append(f"{where}: field required")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object of string values, got {type(value).__name__}")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            problems.append(f"{where}.{k}: must be a string, got {type(v).__name__}")
            continue
        out[str(k)] = str(v)
    return out
