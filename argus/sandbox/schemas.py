"""HTTP request bodies of the sandbox. Unknown fields are refused so a typo is a 422, not a no-op."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .faults import FaultType, check_magnitude
from .world import MAX_REPLICAS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultIn(Body):
    service: str = Field(min_length=1)
    type: FaultType
    magnitude: float | None = None
    duration_s: float | None = Field(default=None, gt=0)

    @field_validator("magnitude")
    @classmethod
    def _in_range(cls, v: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("type")
        return v if v is None or kind is None else check_magnitude(kind, v)


class ActionIn(Body):
    service: str = Field(min_length=1)
    key: str = Field(min_length=1, max_length=256, description="idempotency key: a repeat performs nothing")


class ScaleIn(ActionIn):
    replicas: int = Field(ge=1, le=MAX_REPLICAS)


class ClearFaultIn(ActionIn):
    fault_id: str | None = Field(default=None, description="one fault; all of the service's when absent")


class DeployIn(Body):
    service: str = Field(min_length=1)
    version: str = Field(min_length=1, max_length=64)
    bad: bool = False
    description: str = ""
