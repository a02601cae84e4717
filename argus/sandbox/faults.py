"""Injectable faults: their kinds, what `magnitude` means for each, and the record of one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .timefmt import rfc3339


class FaultType(StrEnum):
    LATENCY = "latency"  # magnitude: extra milliseconds of own processing per request
    ERRORS = "errors"  # magnitude: ratio of requests that fail at the service itself
    CPU = "cpu"  # magnitude: share of every replica's CPU taken by a hog
    MEMORY_LEAK = "memory_leak"  # magnitude: MiB leaked per replica per simulated second
    BAD_DEPLOY = "bad_deploy"  # magnitude: error ratio the new version adds (it is also slower)
    OVERLOAD = "overload"  # magnitude: multiplier on the request rate arriving at the service


DEFAULT_MAGNITUDE: dict[FaultType, float] = {
    FaultType.LATENCY: 300.0,
    FaultType.ERRORS: 0.3,
    FaultType.CPU: 0.7,
    FaultType.MEMORY_LEAK: 2.0,
    FaultType.BAD_DEPLOY: 0.25,
    FaultType.OVERLOAD: 2.0,
}

# Allowed magnitudes, low end excluded: a zero fault is a typo, not a test.
_BOUNDS: dict[FaultType, tuple[float, float]] = {
    FaultType.LATENCY: (0.0, 60_000.0),
    FaultType.ERRORS: (0.0, 1.0),
    FaultType.CPU: (0.0, 0.95),
    FaultType.MEMORY_LEAK: (0.0, 10_000.0),
    FaultType.BAD_DEPLOY: (0.0, 1.0),
    FaultType.OVERLOAD: (1.0, 50.0),
}


def check_magnitude(kind: FaultType, magnitude: float | None) -> float:
    """The magnitude to use, or ValueError naming the allowed range."""
    if magnitude is None:
        return DEFAULT_MAGNITUDE[kind]
    low, high = _BOUNDS[kind]
    if not low < magnitude <= high:
        raise ValueError(f"magnitude for {kind.value} must be in ({low:g}, {high:g}], got {magnitude:g}")
    return float(magnitude)


@dataclass
class Fault:
    id: str
    service: str
    type: FaultType
    magnitude: float
    started_at: float
    duration_s: float | None = None
    ended_at: float | None = None
    ended_by: str | None = None  # expired | cleared | restart | rollback | deploy
    version: str | None = None  # the version a bad deploy introduced

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def ends_at(self) -> float | None:
        return None if self.duration_s is None else self.started_at + self.duration_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "type": self.type.value,
            "magnitude": self.magnitude,
            "duration_s": self.duration_s,
            "started_at": rfc3339(self.started_at),
            "ends_at": rfc3339(self.ends_at) if self.ends_at is not None else None,
            "active": self.active,
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "ended_by": self.ended_by,
            "version": self.version,
        }
