"""Fake Confluence Cloud REST v2 (docs/integrations.md §10): spaces by key, pages find/create/read/update.

- `GET /wiki/api/v2/spaces?keys=OPS` → `{"results": [{"id", "key", ...}]}`.
- `GET /wiki/api/v2/pages?space-id=&title=&status=` → `{"results": [page without body]}`.
- `POST /wiki/api/v2/pages` → 200 page (version 1); a duplicate title in the space → 400; storage XHTML
  that is not well-formed → 400.
- `GET /wiki/api/v2/pages/{id}?body-format=storage` → page with `body.storage`
  (no body without `body-format`).
- `PUT /wiki/api/v2/pages/{id}` needs `version.number == current + 1`, else 409.
Errors are `{"errors": [{"status", "code", "title", "detail"}]}`. `edit_by_someone_else(id)` simulates a
concurrent human edit now; `edit_after_next_read.add(id)` does it right after the next read of the page,
so the PUT that follows meets a 409.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from typing import Any

from .base import FakeServer, Recorded, Reply


def _errors(status: int, code: str, title: str) -> Reply:
    return Reply(status, json={"errors": [{"status": status, "code": code, "title": title, "detail": None}]})


def _well_formed(value: str) -> str | None:
    try:
        ET.fromstring(
            f'<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource">{value}</root>'
        )
    except ET.ParseError as exc:
        return str(exc)
    return None


class FakeConfluence(FakeServer):
    vendor = "confluence"

    def __init__(
        self,
        *,
        email: str = "argus@example.com",
        api_token: str = "conf-token",
        spaces: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.email, self.api_token = email, api_token
        self.spaces = spaces or {"OPS": "98306"}
        self.pages: dict[str, dict[str, Any]] = {}
        self.edit_after_next_read: set[str] = set()  # page ids a "human" saves right after ARGUS reads them
        self._next = 200000
        self.route("GET", r"/wiki/api/v2/spaces", self._spaces)
        self.route("GET", r"/wiki/api/v2/pages", self._find)
        self.route("POST", r"/wiki/api/v2/pages", self._create)
        self.route("GET", r"/wiki/api/v2/pages/(?P<id>\d+)", self._read)
        self.route("PUT", r"/wiki/api/v2/pages/(?P<id>\d+)", self._update)

    def error_body(self, status: int) -> Any:
        return {
            "errors": [
                {"status": status, "code": "INJECTED", "title": f"Injected failure {status}", "detail": None}
            ]
        }

    def authenticate(self, request: Recorded) -> Reply | None:
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        if request.headers.get("authorization") == expected:
            return None
        return _errors(401, "UNAUTHORIZED", "Current user not permitted to use Confluence")

    def edit_by_someone_else(self, page_id: str) -> None:
        with self.lock:
            page = self.pages[page_id]
            page["version"] = {
                "number": page["version"]["number"] + 1,
                "message": "human edit",
                "minorEdit": False,
            }

    def _view(self, page: dict[str, Any], with_body: bool) -> dict[str, Any]:
        view = {k: v for k, v in page.items() if k != "storage"}
        if with_body:
            view["body"] = {"storage": {"representation": "storage", "value": page["storage"]}}
        title = page["title"].replace(" ", "+")
        view["_links"] = {
            "webui": f"/spaces/{page['spaceKey']}/pages/{page['id']}/{title}",
            "editui": f"/pages/resumedraft.action?draftId={page['id']}",
            "tinyui": f"/x/{page['id']}",
            "base": self.url + "/wiki",
        }
        return view

    def _spaces(self, request: Recorded, match: re.Match[str]) -> Reply:
        keys = [k for v in request.query.get("keys", []) for k in v.split(",")]
        results = [
            {"id": sid, "key": key, "name": key, "type": "global", "status": "current"}
            for key, sid in self.spaces.items()
            if key in keys
        ]
        return Reply(json={"results": results, "_links": {}})

    def _find(self, request: Recorded, match: re.Match[str]) -> Reply:
        space, title = request.param("space-id"), request.param("title")
        found = [
            p
            for p in self.pages.values()
            if (space is None or p["spaceId"] == space)
            and (title is None or p["title"] == title)
            and p["status"] == (request.param("status") or "current")
        ]
        return Reply(
            json={
                "results": [self._view(p, False) for p in found[: int(request.param("limit") or 25)]],
                "_links": {},
            }
        )

    def _create(self, request: Recorded, match: re.Match[str]) -> Reply:
        body = request.json() or {}
        space_key = next((k for k, v in self.spaces.items() if v == str(body.get("spaceId"))), None)
        if space_key is None:
            return _errors(400, "INVALID_REQUEST_PARAMETER", "Provided value for 'spaceId' is not valid")
        if any(
            p["title"] == body.get("title") and p["spaceId"] == body["spaceId"] for p in self.pages.values()
        ):
            return _errors(
                400,
                "BAD_REQUEST",
                "A page with this title already exists: "
                "A page already exists with the same TITLE in this space",
            )
        storage = ((body.get("body") or {}).get("value")) or ""
        if (body.get("body") or {}).get("representation") != "storage" or (problem := _well_formed(storage)):
            return _errors(
                400,
                "INVALID_REQUEST_PARAMETER",
                f"Error parsing xhtml: {problem if storage else 'missing body'}",
            )
        self._next += 1
        page_id = str(self._next)
        self.pages[page_id] = {
            "id": page_id,
            "status": "current",
            "title": body["title"],
            "spaceId": body["spaceId"],
            "spaceKey": space_key,
            "parentId": body.get("parentId"),
            "authorId": "argus",
            "version": {"number": 1, "message": "", "minorEdit": False},
            "storage": storage,
        }
        return Reply(json=self._view(self.pages[page_id], True))

    def _read(self, request: Recorded, match: re.Match[str]) -> Reply:
        page = self.pages.get(match["id"])
        if page is None:
            return _errors(404, "NOT_FOUND", "Not Found")
        reply = Reply(json=self._view(page, request.param("body-format") == "storage"))
        if match["id"] in self.edit_after_next_read:
            self.edit_after_next_read.discard(match["id"])
            self.edit_by_someone_else(match["id"])
        return reply

    def _update(self, request: Recorded, match: re.Match[str]) -> Reply:
        page = self.pages.get(match["id"])
        if page is None:
            return _errors(404, "NOT_FOUND", "Not Found")
        body = request.json() or {}
        number = (body.get("version") or {}).get("number")
        if number != page["version"]["number"] + 1:
            return _errors(
                409,
                "CONFLICT",
                f"Version must be incremented on update. Current version is: {page['version']['number']}",
            )
        storage = ((body.get("body") or {}).get("value")) or ""
        if problem := _well_formed(storage):
            return _errors(400, "INVALID_REQUEST_PARAMETER", f"Error parsing xhtml: {problem}")
        page.update(
            title=body.get("title", page["title"]),
            storage=storage,
            version={
                "number": number,
                "message": (body.get("version") or {}).get("message", ""),
                "minorEdit": False,
            },
        )
        return Reply(json=self._view(page, True))


def start_confluence_fake(**kwargs: Any) -> FakeConfluence:
    fake = FakeConfluence(**kwargs)
    fake.start()
    return fake
