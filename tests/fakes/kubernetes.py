"""Fake Kubernetes API server: the apps/v1 calls ARGUS's Executor makes, in the API server's wire format.

Served: `GET/PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`, `GET/PATCH .../{name}/scale`
(an `autoscaling/v1` Scale) and `GET /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=k=v,...`.
Patches honour their Content-Type: `application/merge-patch+json` (RFC 7386) and
`application/strategic-merge-patch+json` (maps merge the same way; the fake never receives lists that
strategic merge would treat differently), `application/json-patch+json` is refused with 415 as for
an object we do not model. A `metadata.resourceVersion` in a patch is a precondition: 409 Conflict
with the API server's Status body when the object changed. Errors are `Status` objects
(`{"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, ...}`).

It plays the deployment controller too: a changed pod template makes a new ReplicaSet with the next
`deployment.kubernetes.io/revision`, or re-uses (and re-numbers) the ReplicaSet whose template it
equals, as a rollback does. Bearer tokens are checked when `token` is set.

    fake = start_kubernetes_fake(token="k8s-token")
    fake.add_deployment("prod", "payments", replicas=2, image="payments:1.0")
    fake.set_image("prod", "payments", "payments:1.1")   # a rollout: revision 2
    fake.hold_after_apply("PATCH", r".*/deployments/payments", delay=5.0)   # apply, then answer late
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply

REVISION = "deployment.kubernetes.io/revision"
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Reply:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return Reply(code, json=body)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = apply_merge_patch(out.get(k), v)
    return out


class FakeKubernetes(FakeServer):
    vendor = "kubernetes"

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = 1000
        self._holds: list[tuple[str, re.Pattern[str], float]] = []
        base = r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)"
        self.route("GET", base + r"/deployments/(?P<name>[^/]+)", self._get)
        self.route("PATCH", base + r"/deployments/(?P<name>[^/]+)", self._patch)
        self.route("GET", base + r"/deployments/(?P<name>[^/]+)/scale", self._get_scale)
        self.route("PATCH", base + r"/deployments/(?P<name>[^/]+)/scale", self._patch_scale)
        self.route("GET", base + r"/replicasets", self._list_rs)

    # ---- test helpers ---------------------------------------------------------------------------
    def add_deployment(
        self, ns: str, name: str, replicas: int = 2, image: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            dep = {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "generation": 1,
                    "resourceVersion": self._next_rv(),
                    "annotations": {},
                    "labels": {"app": name},
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": name, "image": image or f"{name}:1.0"}]},
                    },
                },
                "status": {"replicas": replicas, "readyReplicas": replicas, "observedGeneration": 1},
            }
            self.deployments[(ns, name)] = dep
            self._reconcile(dep)
            return copy.deepcopy(dep)

    def set_image(self, ns: str, name: str, image: str) -> None:
        """A rollout by someone else (kubectl set image)."""
        with self.lock:
            dep = self.deployments[(ns, name)]
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
            self._changed(dep, spec=True)

    def image(self, ns: str, name: str) -> str:
        return self.deployments[(ns, name)]["spec"]["template"]["spec"]["containers"][0]["image"]

    def hold_after_apply(self, method: str, path: str, delay: float) -> None:
        """Apply the next matching write, then answer only after `delay` s (a reply lost in a crash)."""
        with self.lock:
            self._holds.append((method, re.compile(path), delay))

    def writes(self, name: str | None = None) -> list[Recorded]:
        pattern = rf".*/deployments/{name or '[^/]+'}(/scale)?"
        return self.requests_to("PATCH", pattern)

    # ---- plumbing ---------------------------------------------------------------------------
    def error_body(self, status_code: int) -> Any:
        return status(status_code, "InternalError" if status_code >= 500 else "BadRequest", "injected").json

    def authenticate(self, request: Recorded) -> Reply | None:
        if self.token is None:
            return None
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        return None

    def not_found(self, request: Recorded) -> Reply:
        return status(404, "NotFound", "the server could not find the requested resource")

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _find(self, match: re.Match[str]) -> dict[str, Any] | Reply:
        dep = self.deployments.get((match["ns"], match["name"]))
        if dep is None:
            return status(
                404,
                "NotFound",
                f'deployments.apps "{match["name"]}" not found',
                {"name": match["name"], "group": "apps", "kind": "deployments"},
            )
        return dep

    def _hold(self, request: Recorded) -> None:
        for i, (method, pattern, delay) in enumerate(self._holds):
            if method == request.method and pattern.fullmatch(request.path):
                del self._holds[i]
                self.lock.release()
                try:
                    self._stopping.wait(delay)
                finally:
                    self.lock.acquire()
                return

    def _body(self, request: Recorded) -> dict[str, Any] | Reply:
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            return status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
            )
        try:
            body = request.json()
        except ValueError as exc:
            return status(400, "BadRequest", f"error decoding patch: {exc}")
        if not isinstance(body, dict):
            return status(400, "BadRequest", "a merge patch must be a JSON object")
        return body

    def _conflict(self, dep: dict[str, Any], body: dict[str, Any]) -> Reply | None:
        want = (body.get("metadata") or {}).get("resourceVersion")
        if want is not None and want != dep["metadata"]["resourceVersion"]:
            return status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on deployments.apps "{dep["metadata"]["name"]}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        return None

    def _changed(self, dep: dict[str, Any], spec: bool) -> None:
        dep["metadata"]["resourceVersion"] = self._next_rv()
        if spec:
            dep["metadata"]["generation"] += 1
            self._reconcile(dep)
        dep["status"]["replicas"] = dep["spec"]["replicas"]
        dep["status"]["readyReplicas"] = dep["spec"]["replicas"]
        dep["status"]["observedGeneration"] = dep["metadata"]["generation"]

    def _reconcile(self, dep: dict[str, Any]) -> None:
        """The deployment controller: the current template's ReplicaSet gets the newest revision."""
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        template = dep["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        mine = [rs for (n, _), rs in self.replicasets.items() if n == ns and rs["_owner"] == name]
        top = max((int(rs["metadata"]["annotations"][REVISION]) for rs in mine), default=0)
        rs_name = f"{name}-{digest}"
        rs = self.replicasets.get((ns, rs_name))
        if rs is None or int(rs["metadata"]["annotations"][REVISION]) != top:
            revision = top + 1
            if rs is None:
                labels = {**template.get("metadata", {}).get("labels", {}), "pod-template-hash": digest}
                rs_template = copy.deepcopy(template)
                rs_template.setdefault("metadata", {})["labels"] = labels
                rs = {
                    "kind": "ReplicaSet",
                    "apiVersion": "apps/v1",
                    "_owner": name,
                    "metadata": {
                        "name": rs_name,
                        "namespace": ns,
                        "labels": labels,
                        "annotations": {},
                        "ownerReferences": [
                            {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                             "uid": dep["metadata"]["uid"], "controller": True}
                        ],
                    },
                    "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": rs_template},
                }  # fmt: skip
                self.replicasets[(ns, rs_name)] = rs
            rs["metadata"]["annotations"][REVISION] = str(revision)
            dep["metadata"]["annotations"][REVISION] = str(revision)
        for other in mine:
            other["spec"]["replicas"] = 0
        rs["spec"]["replicas"] = dep["spec"]["replicas"]

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ---- routes -----------------------------------------------------------------------------
    def _get(self, request: Recorded, match: re.Match[str]) -> Reply:
        dep = self._find(match)
        return dep if isinstance(dep, Reply) else Reply(200, json=dep)

    def _patch(self, request: Recorded, match: re.Match[str]) -> Reply:
        dep = self._find(match)
        if isinstance(dep, Reply):
            return dep
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        conflict = self._conflict(dep, body)
        if conflict is not None:
            return conflict
        patch = copy.deepcopy(body)
        (patch.get("metadata") or {}).pop("resourceVersion", None)
        before = copy.deepcopy(dep["spec"])
        merged = apply_merge_patch(dep, patch)
        if merged["metadata"].get("name") != dep["metadata"]["name"]:
            return status(422, "Invalid", "metadata.name: Invalid value: field is immutable")
        dep.clear()
        dep.update(merged)
        dep["metadata"].setdefault("annotations", {})
        self._changed(dep, spec=dep["spec"]["template"] != before["template"] or dep["spec"] != before)
        self._hold(request)
        return Reply(200, json=dep)

    def _scale_of(self, dep: dict[str, Any]) -> dict[str, Any]:
        md = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
                         "resourceVersion": md["resourceVersion"]},
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {"replicas": dep["status"]["replicas"], "selector": f"app={md['name']}"},
        }  # fmt: skip

    def _get_scale(self, request: Recorded, match: re.Match[str]) -> Reply:
        dep = self._find(match)
        return dep if isinstance(dep, Reply) else Reply(200, json=self._scale_of(dep))

    def _patch_scale(self, request: Recorded, match: re.Match[str]) -> Reply:
        dep = self._find(match)
        if isinstance(dep, Reply):
            return dep
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        conflict = self._conflict(dep, body)
        if conflict is not None:
            return conflict
        replicas = (body.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            return status(422, "Invalid", f"Scale.autoscaling \"{match['name']}\" is invalid: spec.replicas: "
                          f"Invalid value: {replicas!r}: must be greater than or equal to 0")  # fmt: skip
        changed = dep["spec"]["replicas"] != replicas
        dep["spec"]["replicas"] = replicas
        if changed:
            self._changed(dep, spec=False)
        self._hold(request)
        return Reply(200, json=self._scale_of(dep))

    def _list_rs(self, request: Recorded, match: re.Match[str]) -> Reply:
        selector = request.param("labelSelector") or ""
        want = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = [
            self._public(rs)
            for (ns, _), rs in sorted(self.replicasets.items())
            if ns == match["ns"] and all(rs["metadata"]["labels"].get(k) == v for k, v in want.items())
        ]
        return Reply(
            200,
            json={"kind": "ReplicaSetList", "apiVersion": "apps/v1",
                  "metadata": {"resourceVersion": str(self._rv)}, "items": items},
        )  # fmt: skip


def start_kubernetes_fake(token: str | None = None) -> FakeKubernetes:
    fake = FakeKubernetes(token=token)
    fake.start()
    return fake


__all__ = ["FakeKubernetes", "start_kubernetes_fake", "status"]
