"""Playbooks, recommendations, proposals, approval decisions and action results."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .common import Model, UtcDateTime
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
    pattern: str | None = None
    choices: list[str] | None = None


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
    source: str = ""


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


class StepStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    ROLLED_BACK = "rolled_back"
    DRY_RUN = "dry_run"
    REFUSED = "refused"


class StepRequest(Model):
    """Input of one Executor call: the step, which incident it belongs to, and its idempotency key."""

    incident_id: str
    step: ProposedStep
    key: str
    rollback: bool = False
    dry_run: bool = False


class ActionResult(Model):
    step: str
    action: str
    status: StepStatus
    output: str = ""
    at: UtcDateTime | None = None
    key: str = ""


class RemediationOutcome(StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"
    FIXED_BY_OTHER = "fixed_by_other"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    NONE = "none"
