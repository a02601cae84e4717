"""Playbooks, recommendations, proposals, approval decisions and action results."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .common import Model, RegexStr, UtcDateTime
from .durations import Duration


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "medium": 1, "high": 2}[self.value]


class ActionType(StrEnum):
    SANDBOX = "sandbox"
    HTTP = "http"
    SHELL = "shell"
    KUBERNETES = "kubernetes"


class ParamSpec(Model):
    type: Literal["string", "int", "float", "bool"] = "string"
    description: str = ""
    default: str | int | float | bool | None = None
    required: bool = True
    pattern: RegexStr | None = None
    choices: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, name: str, value: object) -> str | int | float | bool:
        """The value as this parameter's type, or ValueError naming the parameter and the rule broken."""
        try:
            if self.type == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out: str | int | float | bool = int(value)  # type: ignore[call-overload]
            elif self.type == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)  # type: ignore[arg-type]
            elif self.type == "bool":
                if not isinstance(value, bool):
                    raise ValueError
                out = value
            else:
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise ValueError
                out = str(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r}: {value!r} is not a {self.type}") from None
        if isinstance(out, str):
            if self.pattern and not re.fullmatch(self.pattern, out):
                raise ValueError(f"parameter {name!r}: {out!r} does not match {self.pattern!r}")
            if self.choices and out not in self.choices:
                raise ValueError(f"parameter {name!r}: {out!r} is not one of {self.choices}")
        elif not isinstance(out, bool):
            if self.minimum is not None and out < self.minimum:
                raise ValueError(f"parameter {name!r}: {out} is below the minimum {self.minimum:g}")
            if self.maximum is not None and out > self.maximum:
                raise ValueError(f"parameter {name!r}: {out} is above the maximum {self.maximum:g}")
        return out


class ActionSpec(Model):
    """One action: a type and its arguments. Arguments may use `{{ param }}` placeholders,
    filled from the playbook's typed parameters only (never from free alert text)."""

    type: ActionType
    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration | None = None


class PlaybookStep(Model):
    name: str
    run: ActionSpec
    rollback: ActionSpec | None = None


class PlaybookMatch(Model):
    """When a playbook applies: alert label matchers and/or fault signatures of the top hypotheses."""

    labels: dict[str, str] = Field(default_factory=dict)
    alertnames: list[str] = Field(default_factory=list)
    signatures: list[str] = Field(default_factory=list)
    # Not for a fault whose signature has any of these parts, whatever else it matches: a
    # restart fits "cpu" but not "cpu+overload", where it drops the surge's requests and brings
    # it back on the same capacity.
    unless_signatures: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)


class Playbook(Model):
    name: str
    description: str = ""
    risk: Risk = Risk.MEDIUM
    expected_effect: str = ""
    match: PlaybookMatch = Field(default_factory=PlaybookMatch)
    parameters: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[PlaybookStep]
    source: str = ""

    @field_validator("steps")
    @classmethod
    def _has_steps(cls, v: list[PlaybookStep]) -> list[PlaybookStep]:
        if not v:
            raise ValueError("a playbook needs at least one step")
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        return v

    @property
    def rollback_summary(self) -> str:
        parts = [f"{s.name}: {s.rollback.action}" for s in self.steps if s.rollback]
        return "; ".join(parts) if parts else "no automatic rollback"


class Recommendation(Model):
    playbook: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    score: float
    risk: Risk
    expected_effect: str
    rollback: str
    reason: str
    past_success_rate: float | None = None
    past_runs: int = 0
    source: str = ""
    refused: str = ""  # why the guardrails would refuse it (then it is never proposed)


class ProposedStep(Model):
    name: str
    run: ActionSpec
    rollback: ActionSpec | None = None


class Proposal(Model):
    """The concrete actions an approver is asked to allow. `hash` binds a decision to them."""

    incident_id: str
    playbook: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    steps: list[ProposedStep]
    risk: Risk
    summary: str
    revision: int = 1
    hash: str = ""

    @model_validator(mode="after")
    def _fill_hash(self) -> Proposal:
        if not self.hash:
            self.hash = self.compute_hash()
        return self

    def compute_hash(self) -> str:
        body = {
            "incident": self.incident_id,
            "playbook": self.playbook,
            "params": self.params,
            "steps": [s.model_dump(mode="json") for s in self.steps],
            "revision": self.revision,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalDecision(Model):
    """A person's answer to a proposal; arrives as a workflow update (or signal fallback)."""

    approver: str
    decision: DecisionKind
    proposal_hash: str
    comment: str = ""
    via: str = "cli"
    request_id: str = ""
    at: UtcDateTime | None = None
    groups: list[str] = Field(default_factory=list)
    origin: str = ""  # from where: client address, Teams tenant/conversation, Slack team/channel, host


class StepStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    ROLLED_BACK = "rolled_back"
    DRY_RUN = "dry_run"
    REFUSED = "refused"


class BlastRadius(Model):
    """How much one remediation may touch. The workflow checks what a proposal names; the Executor
    checks the live target (current replicas) before it acts."""

    max_services: int = Field(default=2, ge=1)  # distinct services one proposal may touch
    fleet_max_services: int = Field(default=5, ge=1)  # distinct services remediated fleet-wide per window
    fleet_window: Duration = timedelta(hours=1)
    max_replicas: int = Field(default=20, ge=1)  # a scale step may not go above this
    max_scale_factor: float = Field(default=3.0, ge=1.0)  # nor beyond this multiple of (or fraction of) now


class StepRequest(Model):
    """Input of one Executor call: the step, which incident it belongs to, and its idempotency key.
    A rollback carries `prior`, the target's state that its forward step recorded before acting."""

    incident_id: str
    step: ProposedStep
    key: str
    rollback: bool = False
    dry_run: bool = False
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    prior: dict[str, Any] = Field(default_factory=dict)


class ActionResult(Model):
    step: str
    action: str
    status: StepStatus
    output: str = ""
    at: UtcDateTime | None = None
    key: str = ""
    prior: dict[str, Any] = Field(default_factory=dict)  # the target's state before the step, for undo


# --- the per-service remediation lock and the fleet budget (entity workflows) ------------------------


class LockRequest(Model):
    """An incident asks for the right to change a service. `holder` is the incident's workflow id."""

    service: str
    holder: str
    proposal_hash: str = ""
    lease: Duration
    rate_limit: int = Field(ge=1)
    rate_window: Duration


class LockReply(Model):
    status: Literal["granted", "queued", "refused"]
    service: str
    reason: str = ""
    holder: str | None = None
    position: int = 0


class LockRelease(Model):
    service: str
    holder: str
    outcome: str = ""


class LockState(Model):
    """The lock's state: also what continue-as-new carries and what the `state` query returns."""

    service: str
    holder: str | None = None
    held_since: UtcDateTime | None = None
    lease_until: UtcDateTime | None = None
    queue: list[LockRequest] = Field(default_factory=list)
    grants: list[UtcDateTime] = Field(default_factory=list)  # grant times inside the rate window
    rate_window: Duration | None = None
    log: list[str] = Field(default_factory=list)


class BudgetRequest(Model):
    holder: str
    services: list[str]
    max_services: int = Field(ge=1)
    window: Duration


class BudgetReply(Model):
    granted: bool
    reason: str = ""
    touched: list[str] = Field(default_factory=list)


class BudgetEntry(Model):
    holder: str
    services: list[str]
    at: UtcDateTime


class BudgetState(Model):
    entries: list[BudgetEntry] = Field(default_factory=list)
    window: Duration | None = None


class RemediationOutcome(StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"
    FIXED_BY_OTHER = "fixed_by_other"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    NONE = "none"
