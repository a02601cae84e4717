"""Kubernetes deployments as remediation targets: rollout restart, scale and undo, through the
official `kubernetes` client (apps/v1 deployments get/patch, the scale subresource, replicasets list).

Exactly once: every change carries its idempotency key into the deployment itself, in the
`argus.io/actions` annotation, written by the same patch as the change (restart, undo) or just
before it (scale, which is a plain "set replicas to N" and so harmless to repeat). An Executor whose
previous attempt's outcome is unknown reads the deployment first: the key is there, or the change
never happened. Patches carry the resourceVersion they were computed from, so a concurrent change
is a 409 and a fresh read, never a lost update.

The client is synchronous (urllib3); calls run on a thread. It does not retry on its own
(`retries=0`): the calling activity's retry policy does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from argus.models.config import KubernetesConfig

from .base import IntegrationError, PermanentError

ACTIONS_ANNOTATION = "argus.io/actions"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
KEEP_ACTIONS = 20
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def key_id(key: str) -> str:
    """Annotation values stay small: actions are recorded under a hash of their key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def merge_patch(current: Any, target: Any) -> Any:
    """An RFC 7386 merge patch that turns `current` into `target` (keys to drop become null)."""
    if not isinstance(current, dict) or not isinstance(target, dict):
        return target
    out: dict[str, Any] = {}
    for k, v in target.items():
        if k not in current:
            out[k] = v
        elif current[k] != v:
            out[k] = merge_patch(current[k], v)
    for k in current:
        if k not in target:
            out[k] = None
    return out


class KubernetesTarget:
    def __init__(self, api: k8s.ApiClient, namespaces: list[str], timeout: float = 20.0) -> None:
        self.api = api
        self.apps = k8s.AppsV1Api(api)
        self.namespaces = namespaces
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg: KubernetesConfig, token: str | None = None) -> KubernetesTarget:
        if cfg.host:
            conf = k8s.Configuration(host=cfg.host)
            conf.verify_ssl = cfg.verify_ssl
            if token:
                conf.api_key = {"authorization": token}
                conf.api_key_prefix = {"authorization": "Bearer"}
        else:
            from kubernetes import config as kconfig

            conf = k8s.Configuration()
            try:
                kconfig.load_kube_config(
                    config_file=cfg.kubeconfig, context=cfg.context, client_configuration=conf
                )
            except Exception:
                kconfig.load_incluster_config(client_configuration=conf)
        conf.retries = 0  # the activity's retry policy decides, not urllib3
        return cls(k8s.ApiClient(conf), cfg.namespaces, cfg.timeout.total_seconds())

    def close(self) -> None:
        self.api.close()

    # --- raw calls ---------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            message = exc.reason or ""
            try:
                message = json.loads(exc.body or "{}").get("message", message)
            except ValueError:
                pass
            if exc.status in (409, 429) or (exc.status or 0) >= 500:
                raise IntegrationError(f"kubernetes {what}: {exc.status} {message}") from exc
            raise PermanentError(f"kubernetes {what}: {exc.status} {message}") from exc
        except Exception as exc:  # connection refused, timeouts, TLS
            raise IntegrationError(f"kubernetes {what}: {type(exc).__name__}: {exc}") from exc
        return json.loads(resp.data or b"{}")

    def _check_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise PermanentError(
                f"namespace {namespace!r} is not allowed for remediation (allowed: {self.namespaces or 'none'})"
            )

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        self._check_namespace(namespace)
        return self._call(
            f"get deployment {namespace}/{name}", self.apps.read_namespaced_deployment, name, namespace
        )

    def _patch(self, namespace: str, name: str, body: dict[str, Any], content_type: str) -> dict[str, Any]:
        return self._call(
            f"patch deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            body,
            _content_type=content_type,
        )

    # --- the action record -------------------------------------------------------------------
    @staticmethod
    def _records(dep: dict[str, Any]) -> dict[str, Any]:
        raw = (dep.get("metadata", {}).get("annotations") or {}).get(ACTIONS_ANNOTATION)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _with_record(self, dep: dict[str, Any], key: str, action: str, prior: dict[str, Any]) -> str:
        records = self._records(dep)
        records[key_id(key)] = {"action": action, "at": datetime.now(UTC).isoformat(), "prior": prior}
        newest = sorted(records.items(), key=lambda kv: kv[1].get("at", ""))[-KEEP_ACTIONS:]
        return json.dumps(dict(newest), separators=(",", ":"), sort_keys=True)

    def applied(self, namespace: str, name: str, key: str) -> dict[str, Any] | None:
        """The record of `key` on the deployment, or None when that change never happened."""
        return self._records(self.get_deployment(namespace, name)).get(key_id(key))

    # --- actions -----------------------------------------------------------------------------
    def restart(self, namespace: str, name: str, key: str) -> dict[str, Any]:
        dep = self.get_deployment(namespace, name)
        done = self._records(dep).get(key_id(key))
        if done is not None:
            return {
                "detail": f"already applied: rollout restart of {namespace}/{name}",
                "prior": done["prior"],
            }
        prior = {
            "restartedAt": (dep["spec"]["template"].get("metadata", {}).get("annotations") or {}).get(
                RESTARTED_AT
            )
        }
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {
                "resourceVersion": dep["metadata"]["resourceVersion"],
                "annotations": {ACTIONS_ANNOTATION: self._with_record(dep, key, "restart", prior)},
            },
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}},
        }
        self._patch(namespace, name, body, STRATEGIC)
        return {"detail": f"rollout restart of {namespace}/{name} at {now}", "prior": prior}

    def replicas(self, namespace: str, name: str) -> int:
        scale = self._call(
            f"get scale {namespace}/{name}", self.apps.read_namespaced_deployment_scale, name, namespace
        )
        return int(scale.get("spec", {}).get("replicas", 0))

    def scale(
        self, namespace: str, name: str, replicas: int, key: str, check: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Set replicas through the scale subresource. `check(current)` may refuse (blast radius)."""
        dep = self.get_deployment(namespace, name)
        done = self._records(dep).get(key_id(key))
        if done is None:
            current = int(dep["spec"].get("replicas", 1))
            if check is not None:
                check(current)
            prior = {"replicas": current}
            body = {
                "metadata": {
                    "resourceVersion": dep["metadata"]["resourceVersion"],
                    "annotations": {ACTIONS_ANNOTATION: self._with_record(dep, key, "scale", prior)},
                }
            }
            self._patch(namespace, name, body, MERGE)
        else:
            # Recorded earlier; setting the same count again is harmless and finishes a cut-off attempt.
            prior = done["prior"]
        self._call(
            f"scale {namespace}/{name}",
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": int(replicas)}},
            _content_type=MERGE,
        )
        verb = "already applied: " if done is not None else ""
        return {
            "detail": f"{verb}scaled {namespace}/{name} from {prior['replicas']} to {replicas}",
            "prior": prior,
        }

    def undo(self, namespace: str, name: str, key: str, to_revision: int | None = None) -> dict[str, Any]:
        """`kubectl rollout undo`: put the template of an earlier ReplicaSet back."""
        dep = self.get_deployment(namespace, name)
        done = self._records(dep).get(key_id(key))
        if done is not None:
            return {"detail": f"already applied: rollout undo of {namespace}/{name}", "prior": done["prior"]}
        current = int((dep["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
        selector = dep["spec"].get("selector", {}).get("matchLabels", {})
        listing = self._call(
            f"list replicasets in {namespace}",
            self.apps.list_namespaced_replica_set,
            namespace,
            label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        )
        uid = dep["metadata"].get("uid")
        revisions: dict[int, dict[str, Any]] = {}
        for rs in listing.get("items", []):
            owners = rs.get("metadata", {}).get("ownerReferences") or []
            if uid and not any(o.get("uid") == uid for o in owners):
                continue
            rev = int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
            revisions[rev] = rs
        if to_revision is not None:
            target = revisions.get(to_revision)
            if target is None:
                raise PermanentError(
                    f"{namespace}/{name} has no revision {to_revision} (has {sorted(revisions)})"
                )
        else:
            older = [r for r in revisions if r < current]
            if not older:
                raise PermanentError(f"{namespace}/{name} has no revision before {current} to roll back to")
            to_revision = max(older)
            target = revisions[to_revision]
        template = json.loads(json.dumps(target["spec"]["template"]))
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        body = {
            "metadata": {
                "resourceVersion": dep["metadata"]["resourceVersion"],
                "annotations": {
                    ACTIONS_ANNOTATION: self._with_record(dep, key, "undo", {"revision": current})
                },
            },
            "spec": {"template": merge_patch(dep["spec"]["template"], template)},
        }
        self._patch(namespace, name, body, MERGE)
        return {
            "detail": f"rolled {namespace}/{name} back from revision {current} to {to_revision}",
            "prior": {"revision": current},
        }


async def run_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)
