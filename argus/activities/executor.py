"""Executor: runs one approved playbook step (or its rollback) within guardrails, exactly once.

Guardrails a single step can check live here: the action type must be configured on this worker;
sandbox and kubernetes actions come from a fixed set; HTTP targets must sit under an allowed URL
prefix; shell commands must be allow-listed and every argument must match that command's pattern
for its position (the command runs with exec, never through a shell, so no string built from alert
text is ever interpreted); kubernetes namespaces must be allowed; a scale step must stay inside the
blast radius (at most `max_replicas`, and within `max_scale_factor` of the live replica count, read
from the target just before acting). Dry-run checks everything and changes nothing.

Exactly once: the sandbox and Kubernetes are asked first whether the step's key was already applied
(the sandbox keeps its action records; a deployment carries its keys in an annotation), so a retry
after a crash reads the target's state instead of acting again. HTTP and shell targets cannot be
asked, so a local journal records the key before acting and the result after: a key found started
but unfinished is an unknown outcome, which is never retried blindly.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from argus.integrations.action_journal import ActionJournal
from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.kubernetes import KubernetesTarget
from argus.integrations.sandbox import SandboxTarget
from argus.models import ActionResult, ActionSpec, ActionType, StepRequest, StepStatus
from argus.models.config import RemediationConfig
from argus.models.remediation import BlastRadius

SANDBOX_ACTIONS = {"restart", "rollback", "scale"}
KUBERNETES_ACTIONS = {"restart", "scale", "undo"}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HEARTBEAT_S = 2.0

T = TypeVar("T")


class Refused(Exception):
    """A step outside the guardrails: never run, never retried."""


class Guardrails:
    """The static checks of one action against this worker's configuration. The Recommender uses
    the same checks so that people are never asked to approve what the Executor would refuse."""

    def __init__(self, config: RemediationConfig, sandbox: bool, kubernetes: bool) -> None:
        self.config = config
        self.sandbox = sandbox
        self.kubernetes = kubernetes

    def refusal(self, spec: ActionSpec) -> str | None:
        try:
            self.check(spec)
        except Refused as exc:
            return str(exc)
        return None

    def check(self, spec: ActionSpec) -> None:
        if spec.type == ActionType.SANDBOX:
            if not self.sandbox:
                raise Refused("the sandbox action type is not configured on this worker")
            if spec.action not in SANDBOX_ACTIONS:
                raise Refused(
                    f"sandbox action {spec.action!r} is not allowed (allowed: {sorted(SANDBOX_ACTIONS)})"
                )
            self._service(spec.args.get("service"))
            if spec.action == "scale" and "replicas" in spec.args:
                _replicas(spec.args["replicas"])
        elif spec.type == ActionType.KUBERNETES:
            if not self.kubernetes or self.config.kubernetes is None:
                raise Refused("the kubernetes action type is not configured on this worker")
            if spec.action not in KUBERNETES_ACTIONS:
                raise Refused(
                    f"kubernetes action {spec.action!r} is not allowed (allowed: {sorted(KUBERNETES_ACTIONS)})"
                )
            ns, name = spec.args.get("namespace"), spec.args.get("deployment")
            if not isinstance(ns, str) or ns not in self.config.kubernetes.namespaces:
                raise Refused(
                    f"kubernetes namespace {ns!r} is not allowed (allowed: {self.config.kubernetes.namespaces})"
                )
            if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
                raise Refused(f"kubernetes deployment name {name!r} is not a valid DNS-1123 label")
            if spec.action == "scale" and "replicas" in spec.args:
                _replicas(spec.args["replicas"])
            if spec.action == "undo" and spec.args.get("revision") is not None:
                rev = spec.args["revision"]
                if not isinstance(rev, int) or isinstance(rev, bool) or rev < 1:
                    raise Refused(f"kubernetes undo: revision {rev!r} must be a positive integer")
        elif spec.type == ActionType.HTTP:
            url = spec.args.get("url")
            if not isinstance(url, str) or not any(url.startswith(p) for p in self.config.http_allow):
                raise Refused(f"HTTP target {url!r} is not under an allowed prefix {self.config.http_allow}")
            if spec.action.upper() not in HTTP_METHODS:
                raise Refused(f"HTTP method {spec.action!r} is not allowed (allowed: {sorted(HTTP_METHODS)})")
        elif spec.type == ActionType.SHELL:
            allowed = self.config.shell_allow.get(spec.action)
            if allowed is None:
                raise Refused(
                    f"command {spec.action!r} is not in the shell allow-list ({sorted(self.config.shell_allow)})"
                )
            argv = spec.args.get("argv", [])
            if not isinstance(argv, list) or not all(
                isinstance(a, str | int | float) and not isinstance(a, bool) for a in argv
            ):
                raise Refused(f"{spec.action}: arguments must be a list of plain values, got {argv!r}")
            if len(argv) > len(allowed):
                raise Refused(f"{spec.action}: {len(argv)} arguments given, at most {len(allowed)} allowed")
            for i, arg in enumerate(argv):
                if not re.fullmatch(allowed[i], str(arg)):
                    raise Refused(
                        f"{spec.action}: argument {i + 1} {str(arg)!r} does not match {allowed[i]!r}"
                    )
        else:  # pragma: no cover - the enum has no other member
            raise Refused(f"action type {spec.type} is not known")

    @staticmethod
    def _service(value: Any) -> None:
        if not isinstance(value, str) or not _SERVICE.fullmatch(value):
            raise Refused(f"service name {value!r} is not a plain service name")


def _replicas(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Refused(f"replicas {value!r} must be a non-negative integer")
    return value


def check_scale(current: int, target: int, limits: BlastRadius, restoring: bool) -> None:
    """Blast radius of a scale step, judged against the live replica count."""
    if target > limits.max_replicas:
        raise Refused(f"scaling to {target} replicas exceeds the blast-radius limit of {limits.max_replicas}")
    if restoring:
        return  # a rollback puts back what was there
    f = limits.max_scale_factor
    if current > 0 and target > current * f:
        raise Refused(f"scaling from {current} to {target} replicas exceeds the blast-radius factor {f:g}x")
    if target < math.ceil(current / f) or target < 1:
        raise Refused(
            f"scaling from {current} down to {target} replicas removes more than the factor {f:g} allows"
        )


class Executor:
    def __init__(
        self,
        config: RemediationConfig,
        sandbox: SandboxTarget | None,
        journal: ActionJournal,
        kubernetes: KubernetesTarget | None = None,
    ) -> None:
        self.config = config
        self.sandbox = sandbox
        self.journal = journal
        self.kubernetes = kubernetes
        self.guardrails = Guardrails(config, sandbox is not None, kubernetes is not None)

    # --- guardrails ------------------------------------------------------------------------------
    def check(self, req: StepRequest) -> None:
        spec = req.step.rollback if req.rollback else req.step.run
        if spec is None:
            raise Refused(f"step {req.step.name!r} has no rollback")
        self.guardrails.check(spec)

    # --- targets -------------------------------------------------------------------------------
    async def _sandbox(self, req: StepRequest, spec: ActionSpec, key: str) -> tuple[str, dict[str, Any]]:
        assert self.sandbox is not None
        args = dict(spec.args)
        if spec.action == "scale" and "replicas" not in args:
            if "replicas" not in req.prior:
                raise Refused("a scale rollback without replicas needs the replica count its step recorded")
            args["replicas"] = int(req.prior["replicas"])
        done = await self.sandbox.lookup(key)
        if done is not None:
            return f"already applied: {done.get('detail', done)}", await self._recorded_prior(key)
        prior: dict[str, Any] = {}
        if spec.action == "scale":
            state = await self.sandbox.state()
            svc = state.get("services", {}).get(args["service"])
            if svc is None:
                raise PermanentError(f"the sandbox has no service {args['service']!r}")
            current = int(svc["replicas"])
            check_scale(current, int(args["replicas"]), req.blast_radius, restoring=req.rollback)
            prior = {"replicas": current}
        elif spec.action == "rollback":
            state = await self.sandbox.state()
            prior = {"version": state.get("services", {}).get(args["service"], {}).get("version")}
        await asyncio.to_thread(self.journal.start, key)
        result = await self.sandbox.act(spec.action, key, args)
        await asyncio.to_thread(
            self.journal.finish, key, "done", {"output": str(result.get("detail")), "prior": prior}
        )
        return str(result.get("detail", result)), prior

    async def _recorded_prior(self, key: str) -> dict[str, Any]:
        rec = await asyncio.to_thread(self.journal.get, key)
        return dict(rec[1].get("prior", {})) if rec else {}

    async def _kubernetes(self, req: StepRequest, spec: ActionSpec, key: str) -> tuple[str, dict[str, Any]]:
        assert self.kubernetes is not None
        ns, name = spec.args["namespace"], spec.args["deployment"]
        k = self.kubernetes
        if spec.action == "restart":
            out = await asyncio.to_thread(k.restart, ns, name, key)
        elif spec.action == "scale":
            target = spec.args.get("replicas", req.prior.get("replicas") if req.rollback else None)
            if target is None:
                raise Refused("a scale rollback without replicas needs the replica count its step recorded")
            target = int(target)
            out = await asyncio.to_thread(
                k.scale,
                ns,
                name,
                target,
                key,
                lambda cur: check_scale(cur, target, req.blast_radius, req.rollback),
            )
        else:
            revision = spec.args.get("revision", req.prior.get("revision") if req.rollback else None)
            out = await asyncio.to_thread(k.undo, ns, name, key, revision)
        return str(out["detail"]), dict(out.get("prior") or {})

    async def _http(self, key: str, method: str, args: dict) -> str:
        try:
            async with httpx.AsyncClient(timeout=float(args.get("timeout", 10))) as client:
                resp = await client.request(
                    method.upper(), args["url"], json=args.get("json"), headers={"Idempotency-Key": key}
                )
        except httpx.HTTPError as exc:
            raise IntegrationError(f"{method} {args['url']}: {type(exc).__name__}: {exc}") from exc
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
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=float(args.get("timeout", 60)))
        except TimeoutError:
            proc.kill()
            raise PermanentError(f"{command} did not finish within {args.get('timeout', 60)} s") from None
        if proc.returncode != 0:
            raise PermanentError(f"{command} exited {proc.returncode}: {out.decode()[-300:]}")
        return out.decode()[-500:]

    async def _journalled(self, req: StepRequest, spec: ActionSpec, key: str) -> tuple[str, dict[str, Any]]:
        """HTTP and shell: the target cannot be asked, so the journal decides."""
        prior = await asyncio.to_thread(self.journal.get, key)
        if prior and prior[0] == "done":
            return f"already applied: {prior[1].get('output', '')}", {}
        if prior and prior[0] == "started":
            raise ApplicationError(
                f"step {req.step.name}: a previous attempt started but its outcome is unknown and "
                f"{spec.type.value} targets cannot be asked; not repeating it blindly",
                type="OutcomeUnknown",
                non_retryable=True,
            )
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
        return output, {}

    # --- running ---------------------------------------------------------------------------------
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
                output, prior = await _heartbeating(self._sandbox(req, spec, key))
            elif spec.type == ActionType.KUBERNETES:
                output, prior = await _heartbeating(self._kubernetes(req, spec, key))
            else:
                output, prior = await _heartbeating(self._journalled(req, spec, key))
        except Refused as exc:
            raise ApplicationError(f"refused: {exc}", type="StepRefused", non_retryable=True) from exc
        except PermanentError as exc:
            raise ApplicationError(
                f"step {req.step.name} failed: {exc}", type="StepFailed", non_retryable=True
            ) from exc
        except IntegrationError as exc:
            raise ApplicationError(f"step {req.step.name}: {exc}", type="TargetUnavailable") from exc
        status = StepStatus.ROLLED_BACK if req.rollback else StepStatus.DONE
        return ActionResult(
            step=req.step.name, action=spec.action, status=status, output=output, at=now, key=key, prior=prior
        )

    @activity.defn(name="execute_step")
    async def execute_step(self, req: StepRequest) -> ActionResult:
        return await self.run(req)


async def _heartbeating(work: Awaitable[T]) -> T:
    """Heartbeat while the target works, so a worker that dies mid-step is noticed within the
    heartbeat timeout rather than the step's whole start-to-close timeout."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_S)
        if done:
            return task.result()
        if activity.in_activity():
            activity.heartbeat("acting")
