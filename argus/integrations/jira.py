"""Jira Cloud and Data Center tickets through the `jira` library (REST API v2, sync).

Exactly-once: every ARGUS ticket carries the label `argus-<hash of the idempotency key>`. Create is
"local key map, then JQL by that label, then create". The local map (a SQLite file passed in) is
what survives Cloud's eventually consistent `search/jql`, which may not show an issue created a
second ago; the JQL lookup is what survives losing the map (a new worker host).

The client never retries (`max_retries=0`, explicit timeout): the activity retry policy does.
`JIRAError.__str__` prints the request headers, Authorization included, so errors are rebuilt
from its status and message only and never chained.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError
from pydantic import Field

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys
from argus.integrations.vendor_http import parse_retry_after
from argus.models import RemediationOutcome, TicketRef, TicketRequest, TicketUpdate
from argus.models.common import Model

DEFAULT_PRIORITIES = {"critical": "Highest", "error": "High", "warning": "Medium", "info": "Low"}
RESOLVE_STATES = {"resolved", "resolve", "closed", "close", "done"}
REOPEN_STATES = {"reopened", "reopen", "open"}
_SUMMARY_MAX = 255
T = TypeVar("T")
_ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]+-\d+")


class JiraTransitionNames(Model):
    """Candidate transition names, first available wins: workflows name them differently."""

    resolve: list[str] = Field(default_factory=lambda: ["Resolve Issue", "Resolve", "Done", "Close Issue"])
    reopen: list[str] = Field(default_factory=lambda: ["Reopen Issue", "Reopen", "To Do", "Back to To Do"])


def key_label(key: str) -> str:
    """The label that marks the ticket of one idempotency key (labels cannot contain spaces)."""
    return "argus-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _clean_label(label: str) -> str:
    return re.sub(r"\s+", "-", label.strip())


class JiraTickets:
    """`TicketSystem` over Jira. Auth: Cloud `email` + `api_token`; DC `pat`, or `username` + `password`."""

    name = "jira"

    def __init__(
        self,
        server: str,
        project: str,
        *,
        email: str | None = None,
        api_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        pat: str | None = None,
        key_map: str | Path | SentKeys = ":memory:",
        issue_type: str = "Incident",
        priorities: dict[str, str] | None = None,
        components: list[str] | None = None,
        components_by_service: dict[str, list[str]] | None = None,
        link_type: str = "Relates",
        transitions: JiraTransitionNames | None = None,
        default_resolution: str = "Done",
        resolutions: dict[str, str] | None = None,
        resolution_on_resolve: bool = True,
        timeout: float = 10.0,
        client_factory: Callable[[], JIRA] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.project = project
        self.issue_type = issue_type
        self.priorities = DEFAULT_PRIORITIES if priorities is None else priorities
        self.components = components or []
        self.components_by_service = components_by_service or {}
        self.link_type = link_type
        self.transition_names = transitions or JiraTransitionNames()
        self.default_resolution = default_resolution
        # ARGUS outcome (fixed, rejected, …) -> this instance's resolution name; others get the default
        self.resolutions = resolutions or {}
        self.resolution_on_resolve = resolution_on_resolve
        self.timeout = timeout
        self.keys = key_map if isinstance(key_map, SentKeys) else SentKeys(key_map)
        if pat:
            auth: dict[str, Any] = {"token_auth": pat}
        elif email and api_token:
            auth = {"basic_auth": (email, api_token)}
        elif username and password:
            auth = {"basic_auth": (username, password)}
        else:
            raise ValueError("jira: give pat, or email + api_token, or username + password")
        self._auth = auth
        self._factory = client_factory
        self._jira: JIRA | None = None
        self._lock = threading.Lock()

    # ---- the client --------------------------------------------------------------------------

    def client(self) -> JIRA:
        """The library client, made on first use: its constructor already calls serverInfo."""
        with self._lock:
            if self._jira is None:
                self._jira = self._call("connect", self._factory or self._new_client)
            return self._jira

    def _new_client(self) -> JIRA:
        return JIRA(
            self.server,
            max_retries=0,
            timeout=self.timeout,
            get_server_info=True,
            options={"rest_api_version": "2"},
            **self._auth,
        )

    @property
    def is_cloud(self) -> bool:
        return bool(self.client()._is_cloud)

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run one library call, mapping its failures. The mapped error is raised outside the
        `except`, so the JIRAError (whose str() holds the Authorization header) is neither the
        cause nor the context of what reaches logs and Temporal history."""
        error: IntegrationError | None = None
        try:
            return fn()
        except JIRAError as exc:
            error = _map_jira_error(exc, operation)
        except requests.Timeout as exc:
            error = IntegrationError(f"jira {operation}: timed out ({type(exc).__name__})")
        except requests.ConnectionError as exc:
            error = IntegrationError(f"jira {operation}: connection failed ({type(exc).__name__})")
        raise error

    # ---- TicketSystem ------------------------------------------------------------------------

    def create(self, request: TicketRequest) -> TicketRef:
        ref = self._lookup(request.key)
        if ref is None:
            issue = self._create_issue(request)
            ref = self._ref(issue["key"], "open")
            self._remember(request.key, ref)
        if request.related:
            self.ensure_links(ref.key, request.related)
        return ref

    def get(self, key: str) -> TicketRef | None:
        """By idempotency key, or by issue key (OPS-12), with its current state; None if none."""
        ref = self._lookup(key)
        if ref is None and _ISSUE_KEY.fullmatch(key):
            ref = self._ref(key, "open")
        if ref is None:
            return None
        try:
            issue = self._call("get issue", lambda: self.client().issue(ref.key, fields="status"))
        except PermanentError as exc:
            if "HTTP 404" in str(exc):  # asked by issue key: a missing issue is None, not an error
                return None
            raise
        return ref.model_copy(update={"state": _state_of(issue.raw)})

    def update(self, update: TicketUpdate) -> TicketRef:
        done = self.keys.get("jira:update", update.key)
        if done is not None:
            return TicketRef.model_validate(done)
        issue_key = update.ticket.key
        state = (update.state or "").strip().lower()
        if not state and update.resolution:
            state = "resolved"  # a resolution only exists on resolved issues
        if state in RESOLVE_STATES:
            fields = None
            if self.resolution_on_resolve:
                name = _vendor_value(update.resolution, self.resolutions, self.default_resolution)
                fields = {"resolution": {"name": name}}
            new_state = self._transition(
                issue_key, self.transition_names.resolve, "done", fields, update.comment
            )
        elif state in REOPEN_STATES:
            new_state = self._transition(
                issue_key, self.transition_names.reopen, "not-done", None, update.comment
            )
        elif state:
            new_state = self._transition(issue_key, [update.state or ""], None, None, update.comment)
        else:
            if update.comment:
                self.comment(issue_key, update.comment)
            new_state = update.ticket.state
        ref = update.ticket.model_copy(update={"state": new_state, "system": self.name})
        self.keys.put("jira:update", update.key, ref.model_dump(mode="json"))
        return ref

    # ---- Jira operations ARGUS uses beyond the Protocol ----------------------------------------

    def comment(self, issue_key: str, body: str, *, internal: bool = False) -> str:
        comment = self._call(
            "add comment", lambda: self.client().add_comment(issue_key, body, is_internal=internal)
        )
        return str(comment.id)

    def link(self, issue_key: str, other_key: str, link_type: str | None = None) -> None:
        self._call(
            "link issues",
            lambda: self.client().create_issue_link(link_type or self.link_type, issue_key, other_key),
        )

    def ensure_links(self, issue_key: str, others: list[str], link_type: str | None = None) -> list[str]:
        """Link `issue_key` to each of `others` not linked yet (a retried create must not double them)."""
        link_type = link_type or self.link_type
        issue = self._call("read links", lambda: self.client().issue(issue_key, fields="issuelinks"))
        linked = set()
        for link in issue.raw.get("fields", {}).get("issuelinks", []) or []:
            if (link.get("type") or {}).get("name") != link_type:
                continue
            for side in ("inwardIssue", "outwardIssue"):
                if side in link:
                    linked.add(link[side]["key"])
        added = [o for o in others if o not in linked and o != issue_key]
        for other in added:
            self.link(issue_key, other, link_type)
        return added

    def find_by_key(self, key: str) -> dict[str, Any] | None:
        """The issue labelled for `key`, by JQL (may miss a brand-new issue on Cloud)."""
        jql = f'project = "{self.project}" AND labels = "{key_label(key)}" ORDER BY created ASC'
        found = self._call(
            "search", lambda: self.client().search_issues(jql, maxResults=1, fields="summary,labels,status")
        )
        return found[0].raw if found else None

    # ---- internals ---------------------------------------------------------------------------

    def _lookup(self, key: str) -> TicketRef | None:
        known = self.keys.get("jira:ticket", key)
        if known is not None:
            return TicketRef.model_validate(known)
        issue = self.find_by_key(key)
        if issue is None:
            return None
        ref = self._ref(issue["key"], _state_of(issue))
        self._remember(key, ref)
        return ref

    def _remember(self, key: str, ref: TicketRef) -> None:
        self.keys.put("jira:ticket", key, ref.model_dump(mode="json"))

    def _ref(self, issue_key: str, state: str) -> TicketRef:
        return TicketRef(
            system=self.name, key=issue_key, url=f"{self.server}/browse/{issue_key}", state=state
        )

    def _create_issue(self, request: TicketRequest) -> dict[str, Any]:
        labels = ["argus", key_label(request.key)]
        for label in request.labels:
            cleaned = _clean_label(label)
            if cleaned and cleaned not in labels:
                labels.append(cleaned)
        summary = (
            request.title if len(request.title) <= _SUMMARY_MAX else request.title[: _SUMMARY_MAX - 1] + "…"
        )
        # Dicts for project and issuetype: strings cost extra GETs (integrations.md §1).
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": summary,
            "description": _wiki_description(request),
            "labels": labels,
        }
        priority = request.priority or self.priorities.get(request.severity.lower())
        if priority:
            fields["priority"] = {"name": priority}
        components = [
            *self.components,
            *self.components_by_service.get(request.service, []),
            *request.components,
        ]
        if components:
            fields["components"] = [{"name": c} for c in dict.fromkeys(components)]
        issue = self._call("create issue", lambda: self.client().create_issue(fields=fields, prefetch=False))
        return issue.raw

    def _transition(
        self,
        issue_key: str,
        candidates: list[str],
        target: str | None,
        fields: dict[str, Any] | None,
        comment: str,
    ) -> str:
        jira = self.client()
        available = self._call("list transitions", lambda: jira.transitions(issue_key))
        by_name = {t["name"].lower(): t for t in available}
        chosen = next((by_name[c.lower()] for c in candidates if c.lower() in by_name), None)
        if chosen is None:
            issue = self._call("get issue", lambda: jira.issue(issue_key, fields="status"))
            state = _state_of(issue.raw)
            already = (target == "done" and state == "resolved") or (
                target == "not-done" and state != "resolved"
            )
            if already:  # a retried update, or someone got there first: nothing left to do
                if comment:
                    self.comment(issue_key, comment)
                return state
            names = ", ".join(t["name"] for t in available) or "none"
            raise PermanentError(
                f"jira: no transition {candidates} on {issue_key} in status "
                f"{issue.raw['fields']['status']['name']!r}; available: {names}"
            )
        # By id: a name would make the library fetch the transitions a second time.
        self._call(
            "transition issue",
            lambda: jira.transition_issue(
                issue_key, str(chosen["id"]), fields=fields, comment=comment or None
            ),
        )
        category = ((chosen.get("to") or {}).get("statusCategory") or {}).get("key")
        return {"done": "resolved", "indeterminate": "in_progress"}.get(category or "", "open")


def _vendor_value(resolution: str | None, mapping: dict[str, str], default: str) -> str:
    """An ARGUS outcome (fixed, rejected, …) maps through `mapping` to the default; any other
    value is already the vendor's own name and passes."""
    if not resolution:
        return default
    if resolution in mapping:
        return mapping[resolution]
    return default if resolution in {o.value for o in RemediationOutcome} else resolution


def _state_of(issue: dict[str, Any]) -> str:
    category = (((issue.get("fields") or {}).get("status") or {}).get("statusCategory") or {}).get("key")
    return {"done": "resolved", "indeterminate": "in_progress"}.get(category or "", "open")


def _wiki_description(request: TicketRequest) -> str:
    # v2 takes wiki markup on Cloud and DC alike; v3 would need ADF (integrations.md §1).
    return (
        f"h3. ARGUS incident {request.incident_id}\n"
        f"*Service:* {request.service} | *Severity:* {request.severity}\n\n"
        f"{request.description}\n\n"
        f"----\n_Opened by ARGUS. Idempotency key: {request.key}_"
    )


def _map_jira_error(exc: JIRAError, operation: str) -> IntegrationError:
    status = exc.status_code
    message = exc.text or "no message"
    if status is None:  # raised by the library itself (e.g. "Invalid transition name")
        return PermanentError(f"jira {operation}: {message}")
    if status == 429 or status >= 500 or status in (408, 409):
        headers = getattr(exc.response, "headers", None) or {}
        return IntegrationError(
            f"jira {operation}: HTTP {status}: {message}",
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    return PermanentError(f"jira {operation}: HTTP {status}: {message}")
