"""Confluence Cloud pages (REST v2) as a `Publisher`, with httpx.

Publishing is "find the page by title in the space, then create or update": Confluence keeps titles
unique per space, so republishing a document updates its page instead of duplicating it. Updates
send `version.number = current + 1`; a 409 (someone edited in between) re-reads and retries once.
The version message carries a hash of what ARGUS rendered, so an unchanged document makes no new
version (Confluence normalises stored XHTML, so comparing bodies alone would not tell).

Markdown becomes storage-format XHTML via `markdown_to_xhtml` (raw HTML escaped; fenced code as
the `code` macro). Secrets: `email` + `api_token` (Basic), as for Jira Cloud.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.templating import markdown_to_xhtml
from argus.integrations.vendor_http import DEFAULT_TIMEOUT, new_client, send
from argus.models import Document, PublishResult

HASH_MARK = "argus-sha256:"


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(" ".join(str(e.get(k)) for k in ("title", "detail") if e.get(k)) for e in errors)
    return str(body.get("message") or body)[:500] if isinstance(body, dict) else str(body)[:500]


class ConfluencePublisher:
    """`Publisher` into one Confluence space (`space_key`), optionally under `parent_id`."""

    name = "confluence"

    def __init__(
        self,
        base_url: str,
        space_key: str,
        *,
        email: str | None = None,
        api_token: str | None = None,
        token: str | None = None,
        parent_id: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        base = base_url.rstrip("/")
        self.wiki = base if base.endswith("/wiki") else base + "/wiki"  # `/wiki` is mandatory on Cloud
        self.space_key = space_key
        self.parent_id = parent_id
        if token:
            auth: Any = None
            headers = {"Authorization": f"Bearer {token}"}
        elif email and api_token:
            auth, headers = httpx.BasicAuth(email, api_token), {}
        else:
            raise ValueError("confluence: give email + api_token, or token")
        self.http = new_client(
            base_url=self.wiki, auth=auth, timeout=timeout, headers={"Accept": "application/json", **headers}
        )
        self._space_id: str | None = None

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        return send(self.http, method, path, "confluence", operation, _error_message, **kwargs)

    def space_id(self) -> str:
        if self._space_id is None:
            found = self._send("GET", "/api/v2/spaces", "find space", params={"keys": self.space_key}).json()
            results = found.get("results") or []
            if not results:
                raise PermanentError(f"confluence: space {self.space_key!r} not found (or no permission)")
            self._space_id = str(results[0]["id"])
        return self._space_id

    def find(self, title: str) -> dict[str, Any] | None:
        params = {"space-id": self.space_id(), "title": title, "status": "current", "limit": "1"}
        results = self._send("GET", "/api/v2/pages", "find page", params=params).json().get("results") or []
        return results[0] if results else None

    def read(self, page_id: str) -> dict[str, Any]:
        return self._send(
            "GET", f"/api/v2/pages/{page_id}", "read page", params={"body-format": "storage"}
        ).json()

    def publish(self, document: Document) -> PublishResult:
        storage = markdown_to_xhtml(document.content, confluence_macros=True)
        digest = HASH_MARK + hashlib.sha256(f"{document.title}\n{storage}".encode()).hexdigest()[:24]
        existing = self.find(document.title)
        if existing is None:
            try:
                page = self._create(document.title, storage, digest)
                return self._result(page, created=True)
            except PermanentError as exc:
                if "already exists" not in str(exc):
                    raise
                existing = self.find(document.title)  # another writer won the race: update theirs
                if existing is None:
                    raise
        return self._result(self._update(str(existing["id"]), document.title, storage, digest), created=False)

    def _create(self, title: str, storage: str, digest: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "spaceId": self.space_id(),
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": storage},
        }
        if self.parent_id:
            body["parentId"] = self.parent_id
        page = self._send("POST", "/api/v2/pages", "create page", json=body).json()
        # v2 create has no version message; stamp the hash with a first update only when needed.
        return page | {"_argus_digest": digest}

    def _update(self, page_id: str, title: str, storage: str, digest: str) -> dict[str, Any]:
        for attempt in (1, 2):
            current = self.read(page_id)
            version = current.get("version") or {}
            current_body = ((current.get("body") or {}).get("storage") or {}).get("value")
            if digest in str(version.get("message") or "") or (
                current_body == storage and current.get("title") == title
            ):
                return current  # unchanged: no new version
            body = {
                "id": page_id,
                "status": "current",
                "title": title,
                "body": {"representation": "storage", "value": storage},
                "version": {"number": int(version.get("number", 0)) + 1, "message": f"ARGUS update {digest}"},
            }
            try:
                return self._send("PUT", f"/api/v2/pages/{page_id}", "update page", json=body).json()
            except IntegrationError as exc:
                if "HTTP 409" not in str(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(self, page: dict[str, Any], *, created: bool) -> PublishResult:
        links = page.get("_links") or {}
        base = links.get("base") or self.wiki
        webui = links.get("webui") or f"/pages/viewpage.action?pageId={page['id']}"
        return PublishResult(
            publisher=self.name,
            location=f"{base}{webui}",
            revision=str((page.get("version") or {}).get("number", "")),
            created=created,
            at=datetime.now(UTC),
        )
