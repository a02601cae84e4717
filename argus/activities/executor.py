"""Executor: runs one approved playbook step (or its rollback) within guardrails, once.

Guardrails here are the ones a single step can check: the action type's allow-list
(sandbox actions, HTTP URL prefixes, shell commands with validated arguments — never a
shell string), and dry-run. Exactly once: the target is asked whether the step's key was
already applied (sandbox), or a local journal records it (HTTP, shell); an unknown outcome
is never retried blindly.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.action_journal import ActionJournal
from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.sandbox import SandboxTarget
from argus.models import ActionResult, ActionType, StepRequest, StepStatus
from argus.models.config import RemediationConfig

SANDBOX_ACTIONS = {"restart", "rollback", "scale"}


class Refused(Exception):
    """A step outside the guardrails: never run, never retried."""


class Executor:
    def __init__(
        self, config: RemediationConfig, sandbox: SandboxTarget | None, journal: ActionJournal
    ) -> None:
        self.config = config
        self.sandbox = sandbox
        self.journal = journal

    # --- guardrails ------------------------------------------------------------------------------
    def check(self, req: StepRequest) -> None:
        spec = req.step.rollback if req.rollback else req.step.run
        if spec is None:
            raise Refused(f"step {req.step.name!r} has no rollback")
        if spec.type == ActionType.SANDBOX:
            if self.sandbox is None:
                raise Refused("the sandbox action type is not configured")
            if spec.action not in SANDBOX_ACTIONS:
                raise Refused(
                    f"sandbox action {spec.action!r} is not allowed (allowed: {sorted(SANDBOX_ACTIONS)})"
                )
        elif spec.type == ActionType.HTTP:
            url = str(spec.args.get("url", ""))
            if not any(url.startswith(p) for p in self.config.http_allow):
                raise Refused(f"HTTP target {url!r} is not under an allowed prefix {self.config.http_allow}")
            if spec.action.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                raise Refused(f"HTTP method {spec.action!r} is not allowed")
        elif spec.type == ActionType.SHELL:
            allowed = self.config.shell_allow.get(spec.action)
            if allowed is None:
                raise Refused(f"command {spec.action!r} is not in the shell allow-list")
            argv = spec.args.get("argv", [])
            if not isinstance(argv, list) or not all(isinstance(a, str | int | float) for a in argv):
                raise Refused("shell arguments must be a list of plain values")
            if len(argv) > len(allowed):
                raise Refused(f"{spec.action}: {len(argv)} arguments given, at most {len(allowed)} allowed")
            for i, arg in enumerate(argv):
                if not re.fullmatch(allowed[i], str(arg)):
                    raise Refused(f"{spec.action}: argument {i + 1} {arg!r} does not match {allowed[i]!r}")
        else:
            raise Refused(f"action type {spec.type.value} is not configured on this worker")

    # --- running ---------------------------------------------------------------------------------
    async def _sandbox(self, key: str, action: str, args: dict) -> str:
        assert self.sandbox is not None
        prior = await self.sandbox.lookup(key)
        if prior is not None:
            return f"already applied: {prior.get('detail', prior)}"
        result = await self.sandbox.act(action, key, args)
        return str(result.get("detail", result))

    async def _http(self, key: str, method: str, args: dict) -> str:
        async with httpx.AsyncClient(timeout=float(args.get("timeout", 10))) as client:
            resp = await client.request(
                method.upper(), args["url"], json=args.get("json"), headers={"Idempotency-Key": key}
            )
        if resp.status_code >= 500:
            raise IntegrationError(f"{method} {args['url']}: {resp.status_code}")
        if resp.status_code >= 400:
            raise PermanentError(f"{method} {args['url']}: {resp.status_code} {resp.text[:200]}")
        return f"{resp.status_code} {resp.text[:200]}"

    async def _shell(self, command: str, args: dict) -> str:
        exe = shutil.which(command)
        if exe is None:
            raise PermanentError(f"command {command!r} not found on the worker")
        proc = await asyncio.create_subprocess_exec(
            exe,
            *map(str, args.get("argv", [])),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=float(args.get("timeout", 60)))
        if proc.returncode != 0:
            raise PermanentError(f"{command} exited {proc.returncode}: {out.decode()[-300:]}")
        return out.decode()[-500:]

    async def run(self, req: StepRequest) -> ActionResult:
        spec = req.step.rollback if req.rollback else req.step.run
        key = f"{req.key}/rollback" if req.rollback else req.key
        now = datetime.now(UTC)
        try:
            self.check(req)
        except Refused as exc:
            raise ApplicationError(f"refused: {exc}", type="StepRefused", non_retryable=True) from exc
        assert spec is not None
        if req.dry_run:
            return ActionResult(
                step=req.step.name,
                action=spec.action,
                status=StepStatus.DRY_RUN,
                at=now,
                key=key,
                output=f"dry run: would {spec.type.value} {spec.action} {spec.args}",
            )
        try:
            if spec.type == ActionType.SANDBOX:
                output = await self._sandbox(key, spec.action, spec.args)
            else:
                prior = await asyncio.to_thread(self.journal.get, key)
                if prior and prior[0] == "done":
                    output = f"already applied: {prior[1].get('output', '')}"
                elif prior and prior[0] == "started":
                    raise ApplicationError(
                        f"step {req.step.name}: a previous attempt started but its outcome is unknown; "
                        "not repeating it blindly",
                        type="OutcomeUnknown",
                        non_retryable=True,
                    )
                else:
                    await asyncio.to_thread(self.journal.start, key)
                    try:
                        if spec.type == ActionType.HTTP:
                            output = await self._http(key, spec.action, spec.args)
                        else:
                            output = await self._shell(spec.action, spec.args)
                    except Exception as exc:
                        # A failure we saw is a known outcome: a retry may act again.
                        await asyncio.to_thread(self.journal.finish, key, "failed", {"error": str(exc)})
                        raise
                    await asyncio.to_thread(self.journal.finish, key, "done", {"output": output})
        except PermanentError as exc:
            raise ApplicationError(
                f"step {req.step.name} failed: {exc}", type="StepFailed", non_retryable=True
            ) from exc
        except IntegrationError as exc:
            raise ApplicationError(f"step {req.step.name}: {exc}", type="TargetUnavailable") from exc
        status = StepStatus.ROLLED_BACK if req.rollback else StepStatus.DONE
        return ActionResult(
            step=req.step.name, action=spec.action, status=status, output=output, at=now, key=key
        )

    @activity.defn(name="execute_step")
    async def execute_step(self, req: StepRequest) -> ActionResult:
        return await self.run(req)
