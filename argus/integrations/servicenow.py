"""ServiceNow incidents and knowledge articles over the Table API, with httpx (not pysnow).

Exactly-once: an incident carries `correlation_id = argus:<key>` and create is "query by
correlation_id, then POST"; a knowledge article carries a stable marker (see
`ServiceNowKnowledge`) and publish is "query by marker, then POST or PATCH". Journal updates
(work notes) are applied once per `TicketUpdate.key` through the local sent-keys store.

Writes use PATCH with the changed fields only (pysnow's GET+PUT was racy), reads pass
`sysparm_exclude_reference_link=true` so references are plain sys_ids, and ServiceNow's error JSON
(`error.message` + `error.detail`) is what a PermanentError says.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from argus.integrations.base import PermanentError
from argus.integrations.dedupe import SentKeys
from argus.integrations.templating import markdown_to_xhtml
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, new_client, send
from argus.models import Document, PublishResult, RemediationOutcome, TicketRef, TicketRequest, TicketUpdate

STATE_NAMES = {
    "1": "open",
    "2": "in_progress",
    "3": "on_hold",
    "6": "resolved",
    "7": "closed",
    "8": "canceled",
}
# severity → (impact, urgency); priority is derived by ServiceNow, never set (integrations.md §2)
IMPACT_URGENCY = {"critical": ("1", "1"), "error": ("2", "1"), "warning": ("2", "2"), "info": ("3", "3")}
_CORRELATION_MAX = 100


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return response.text.strip()[:500]
    parts = [error.get("message"), error.get("detail")]
    return ": ".join(str(p).strip() for p in parts if p) or response.text.strip()[:500]


def correlation_id(key: str) -> str:
    """`argus:<key>`, hashed when the key would not fit ServiceNow's 100-character field."""
    value = f"argus:{key}"
    if len(value) <= _CORRELATION_MAX:
        return value
    return "argus:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _query_value(value: str) -> str:
    # `^` separates encoded-query terms; a key containing it would split the query.
    return value.replace("^", "_")


def _vendor_value(resolution: str | None, mapping: dict[str, str], default: str) -> str:
    """An ARGUS outcome (fixed, rejected, …) maps through `mapping` to the default close code;
    any other value is already a close code of the instance and passes."""
    if not resolution:
        return default
    if resolution in mapping:
        return mapping[resolution]
    return default if resolution in {o.value for o in RemediationOutcome} else resolution


class TableApi:
    """The few Table API calls ARGUS makes, with auth, timeouts and error mapping."""

    def __init__(
        self,
        instance_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = instance_url.rstrip("/")
        if token:
            auth: Any = None
            headers = {"Authorization": f"Bearer {token}"}
        elif username and password:
            auth, headers = httpx.BasicAuth(username, password), {}
        else:
            raise ValueError("servicenow: give token, or username + password")
        self.http = new_client(
            base_url=self.base,
            auth=auth,
            headers={"Accept": "application/json", "Content-Type": "application/json", **headers},
            timeout=timeout,
            transport=transport,
        )

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        return send(self.http, method, path, "servicenow", operation, _error_message, **kwargs)

    def query(
        self, table: str, query: str, *, fields: list[str] | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        params = {
            "sysparm_query": query,
            "sysparm_limit": str(limit),
            "sysparm_exclude_reference_link": "true",
        }
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        return self._send("GET", f"/api/now/table/{table}", f"query {table}", params=params).json()["result"]

    def create(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true"}
        return self._send(
            "POST", f"/api/now/table/{table}", f"create {table}", json=record, params=params
        ).json()["result"]

    def patch(self, table: str, sys_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true"}
        path = f"/api/now/table/{table}/{quote(sys_id)}"
        return self._send("PATCH", path, f"update {table}", json=changes, params=params).json()["result"]

    def close(self) -> None:
        self.http.close()


class ServiceNowTickets:
    """`TicketSystem` over the `incident` table.

    Secrets: `username` + `password` (integration user with `itil`) or an OAuth `token`.
    References (`assignment_group`, `cmdb_ci`, `caller_id`) are sys_ids.
    """

    name = "servicenow"

    def __init__(
        self,
        instance_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        assignment_group: str | None = None,
        assignment_group_by_service: dict[str, str] | None = None,
        cmdb_ci_by_service: dict[str, str] | None = None,
        caller_id: str | None = None,
        category: str | None = None,
        close_code: str = "Solution provided",
        close_codes: dict[str, str] | None = None,
        reopen_state: str = "2",
        sent: SentKeys | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.api = TableApi(instance_url, username=username, password=password, token=token, timeout=timeout)
        self.assignment_group = assignment_group
        self.assignment_group_by_service = assignment_group_by_service or {}
        self.cmdb_ci_by_service = cmdb_ci_by_service or {}
        self.caller_id = caller_id
        self.category = category
        self.close_code = close_code
        # ARGUS outcome (fixed, rejected, …) -> a close code of this instance; others get close_code
        self.close_codes = close_codes or {}
        self.reopen_state = reopen_state
        self.sent = sent or SentKeys()
        self._sys_ids: dict[str, str] = {}  # number -> sys_id

    # ---- TicketSystem ------------------------------------------------------------------------

    def create(self, request: TicketRequest) -> TicketRef:
        existing = self._by_correlation(request.key)
        if existing is not None:
            return self._ref(existing)
        impact, urgency = IMPACT_URGENCY.get(request.severity.lower(), ("2", "2"))
        record: dict[str, Any] = {
            "short_description": request.title[:160],
            "description": (
                f"{request.description}\n\nARGUS incident {request.incident_id} · service {request.service}"
                f" · severity {request.severity}"
            ),
            "correlation_id": correlation_id(request.key),
            "correlation_display": "ARGUS",
            "impact": impact,
            "urgency": urgency,
        }
        group = self.assignment_group_by_service.get(request.service, self.assignment_group)
        optional = {
            "assignment_group": group,
            "cmdb_ci": self.cmdb_ci_by_service.get(request.service),
            "caller_id": self.caller_id,
            "category": self.category,
        }
        record.update({k: v for k, v in optional.items() if v})
        return self._ref(self.api.create("incident", record))

    def get(self, key: str) -> TicketRef | None:
        """By idempotency key, or by incident number (INC…)."""
        record = self._by_correlation(key)
        if record is None:
            found = self.api.query("incident", f"number={_query_value(key)}", fields=_FIELDS, limit=1)
            record = found[0] if found else None
        return None if record is None else self._ref(record)

    def update(self, update: TicketUpdate) -> TicketRef:
        done = self.sent.get("servicenow:update", update.key)
        if done is not None:
            return TicketRef.model_validate(done)
        sys_id = self._sys_id(update.ticket.key)
        state = (update.state or "").strip().lower()
        if not state and update.resolution:
            state = "resolved"
        changes: dict[str, Any] = {}
        if state in ("resolved", "resolve", "closed"):
            changes = {
                "state": "6",
                "close_code": _vendor_value(update.resolution, self.close_codes, self.close_code),
                "close_notes": update.comment or "Resolved by ARGUS.",
            }
        elif state in ("reopened", "reopen", "open", "in_progress"):
            changes = {"state": self.reopen_state}
        elif state:
            raise PermanentError(f"servicenow: ARGUS cannot move an incident to state {update.state!r}")
        if update.comment:
            changes["work_notes"] = update.comment  # a journal field: the PATCH appends
        record = self.api.patch("incident", sys_id, changes) if changes else None
        ref = self._ref(record) if record else update.ticket
        self.sent.put("servicenow:update", update.key, ref.model_dump(mode="json"))
        return ref

    # ---- internals ---------------------------------------------------------------------------

    def _by_correlation(self, key: str) -> dict[str, Any] | None:
        query = f"correlation_id={_query_value(correlation_id(key))}^ORDERBYsys_created_on"
        found = self.api.query("incident", query, fields=_FIELDS, limit=1)
        return found[0] if found else None

    def _sys_id(self, number: str) -> str:
        if number not in self._sys_ids:
            found = self.api.query(
                "incident", f"number={_query_value(number)}", fields=["sys_id", "number"], limit=1
            )
            if not found:
                raise PermanentError(f"servicenow: incident {number} not found")
            self._sys_ids[number] = found[0]["sys_id"]
        return self._sys_ids[number]

    def _ref(self, record: dict[str, Any]) -> TicketRef:
        self._sys_ids[record["number"]] = record["sys_id"]
        return TicketRef(
            system=self.name,
            key=record["number"],
            url=f"{self.api.base}/nav_to.do?uri=incident.do%3Fsys_id%3D{record['sys_id']}",
            state=STATE_NAMES.get(str(record.get("state", "1")), "open"),
        )


_FIELDS = ["sys_id", "number", "state", "correlation_id"]


class ServiceNowKnowledge:
    """`Publisher` into `kb_knowledge`: create-or-update by a stable marker, never a duplicate.

    The marker is `argus:<kind>/<slug>`. With `key_field="short_description"` (works on every
    instance) it is appended to the title as ` [argus:<kind>/<slug>]` and found with LIKE; with a
    custom string field (e.g. `u_argus_key`, created by the admin) it is stored there alone and
    found with `=`, leaving the title clean. Secrets: as `ServiceNowTickets` (role `knowledge`).
    """

    name = "servicenow-kb"

    def __init__(
        self,
        instance_url: str,
        knowledge_base: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        category: str | None = None,
        key_field: str = "short_description",
        publish: bool = False,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.api = TableApi(instance_url, username=username, password=password, token=token, timeout=timeout)
        self.knowledge_base = knowledge_base
        self.category = category
        self.key_field = key_field
        self.publish_articles = publish

    def marker(self, document: Document) -> str:
        return _query_value(f"argus:{document.kind}/{document.slug}").replace("=", "-")

    def find(self, document: Document) -> dict[str, Any] | None:
        marker = self.marker(document)
        if self.key_field == "short_description":
            term = f"short_descriptionLIKE[{marker}]"
        else:
            term = f"{self.key_field}={marker}"
        query = f"{term}^kb_knowledge_base={self.knowledge_base}^ORDERBYsys_created_on"
        fields = ["sys_id", "number", "short_description", "text", "workflow_state", "sys_mod_count"]
        found = self.api.query("kb_knowledge", query, fields=fields, limit=1)
        return found[0] if found else None

    def publish(self, document: Document) -> PublishResult:
        marker = self.marker(document)
        title = document.title
        record: dict[str, Any] = {"text": markdown_to_xhtml(document.content)}
        if self.key_field == "short_description":
            record["short_description"] = f"{title} [{marker}]"
        else:
            record["short_description"] = title
            record[self.key_field] = marker
        existing = self.find(document)
        if existing is None:
            created = True
            article = self.api.create(
                "kb_knowledge",
                {
                    **record,
                    "kb_knowledge_base": self.knowledge_base,
                    **({"kb_category": self.category} if self.category else {}),
                    "article_type": "text",
                    "workflow_state": "draft",
                },
            )
        else:
            created = False
            changes = {k: v for k, v in record.items() if existing.get(k) != v}
            article = self.api.patch("kb_knowledge", existing["sys_id"], changes) if changes else existing
        if self.publish_articles and article.get("workflow_state") != "published":
            # Instant-publish knowledge bases publish now; with an approval workflow ServiceNow
            # moves the article to review instead (integrations.md §2).
            article = self.api.patch("kb_knowledge", article["sys_id"], {"workflow_state": "published"})
        return PublishResult(
            publisher=self.name,
            location=f"{self.api.base}/kb_view.do?sys_kb_id={article['sys_id']}",
            revision=f"{article.get('number', '')}@{article.get('sys_mod_count', '0')}",
            created=created,
            at=datetime.now(UTC),
        )
