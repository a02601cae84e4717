"""Fake ServiceNow Table API (`incident`, `kb_knowledge`), per docs/integrations.md §2.

Create → 201 `{"result": {...}}` + `Location`; query → 200 `{"result": [...]}` + `X-Total-Count`; PATCH/PUT →
200; missing record → 404 `{"error":{"message":"No Record found","detail":...},"status":"failure"}`.
Values are strings; references read as `{"link","value"}` unless `sysparm_exclude_reference_link=true`;
`work_notes` is a journal (a write appends, a read is empty); resolving (state 6) needs close_code and
close_notes (a data-policy 400 otherwise); kb_knowledge needs kb_knowledge_base. Encoded queries support
`a=b`, `a!=b`, `aLIKEb`, `^` (AND) and `ORDERBY…`.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from typing import Any

from .base import FakeServer, Recorded, Reply

REFERENCES = {
    "assignment_group": "sys_user_group",
    "cmdb_ci": "cmdb_ci",
    "caller_id": "sys_user",
    "kb_knowledge_base": "kb_knowledge_base",
    "kb_category": "kb_category",
}
PREFIX = {"incident": "INC", "kb_knowledge": "KB"}


def _error(status: int, message: str, detail: str = "") -> Reply:
    return Reply(status, json={"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(FakeServer):
    vendor = "servicenow"

    def __init__(
        self, *, username: str = "argus", password: str = "secret", token: str | None = None
    ) -> None:
        super().__init__()
        self.username, self.password, self.token = username, password, token
        self.tables: dict[str, dict[str, dict[str, Any]]] = {"incident": {}, "kb_knowledge": {}}
        self.journal: dict[str, list[tuple[str, str]]] = {}  # sys_id -> [(element, text)]
        self._numbers = {"incident": 10000, "kb_knowledge": 10000}
        table = r"/api/now/(?:v2/)?table/(?P<table>\w+)"
        self.route("POST", table, self._create)
        self.route("GET", table, self._query)
        self.route("GET", table + r"/(?P<sys_id>\w+)", self._read)
        self.route("PATCH", table + r"/(?P<sys_id>\w+)", self._update)
        self.route("PUT", table + r"/(?P<sys_id>\w+)", self._update)

    def error_body(self, status: int) -> Any:
        return {"error": {"message": f"Injected failure {status}", "detail": ""}, "status": "failure"}

    def not_found(self, request: Recorded) -> Reply:
        return _error(400, "Requested URI does not represent any resource", request.path)

    def authenticate(self, request: Recorded) -> Reply | None:
        header = request.headers.get("authorization") or ""
        if self.token and header == f"Bearer {self.token}":
            return None
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if header == f"Basic {basic}":
            return None
        return _error(401, "User Not Authenticated", "Required to provide Auth information")

    # ---- records -----------------------------------------------------------------------------

    def _table(self, name: str) -> dict[str, dict[str, Any]] | None:
        return self.tables.get(name)

    def _render(self, table: str, record: dict[str, Any], request: Recorded) -> dict[str, Any]:
        exclude = (request.param("sysparm_exclude_reference_link") or "").lower() == "true"
        out: dict[str, Any] = {}
        for name, value in record.items():
            if name in REFERENCES and value and not exclude:
                out[name] = {"link": f"{self.url}/api/now/table/{REFERENCES[name]}/{value}", "value": value}
            else:
                out[name] = value
        fields = request.param("sysparm_fields")
        if fields:
            wanted = [f.strip() for f in fields.split(",") if f.strip()]
            out = {f: out.get(f, "") for f in wanted}
        return out

    def _apply(self, table: str, record: dict[str, Any], changes: dict[str, Any]) -> Reply | None:
        merged = {**record, **{k: v for k, v in changes.items() if k not in ("work_notes", "comments")}}
        if table == "incident" and str(merged.get("state")) == "6" and str(record.get("state")) != "6":
            missing = [
                label
                for field, label in (("close_code", "Resolution code"), ("close_notes", "Resolution notes"))
                if not merged.get(field)
            ]
            if missing:
                return _error(
                    400,
                    "Operation Failed",
                    "Data Policy Exception: \n The following fields are mandatory: " + ", ".join(missing),
                )
        if table == "kb_knowledge" and not merged.get("kb_knowledge_base"):
            return _error(
                400,
                "Operation Failed",
                "Data Policy Exception: \n The following fields are mandatory: Knowledge base",
            )
        for element in ("work_notes", "comments"):
            if changes.get(element):
                self.journal.setdefault(record["sys_id"], []).append((element, str(changes[element])))
        for name, value in changes.items():
            if name in ("work_notes", "comments"):
                continue
            record[name] = (
                value
                if isinstance(value, str)
                else ("true" if value is True else "false" if value is False else str(value))
            )
        if table == "incident":
            record["active"] = "false" if record.get("state") in ("6", "7", "8") else "true"
        record["sys_updated_on"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        record["sys_mod_count"] = str(int(record.get("sys_mod_count", "0")) + 1)
        return None

    def _create(self, request: Recorded, match: re.Match[str]) -> Reply:
        name = match["table"]
        table = self._table(name)
        if table is None:
            return _error(400, "Invalid table " + name)
        body = request.json() or {}
        sys_id = uuid.uuid4().hex
        self._numbers[name] += 1
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        record: dict[str, Any] = {
            "sys_id": sys_id,
            "number": f"{PREFIX.get(name, 'REC')}{self._numbers[name]:07d}",
            "sys_created_on": now,
            "sys_updated_on": now,
            "sys_mod_count": "-1",
            "work_notes": "",
            "comments": "",
        }
        if name == "incident":
            record.update(
                {"state": "1", "active": "true", "correlation_id": "", "close_code": "", "close_notes": ""}
            )
        problem = self._apply(name, record, body)
        if problem is not None:
            self._numbers[name] -= 1
            return problem
        table[sys_id] = record
        return Reply(
            201,
            json={"result": self._render(name, record, request)},
            headers={"Location": f"{self.url}/api/now/table/{name}/{sys_id}"},
        )

    def _read(self, request: Recorded, match: re.Match[str]) -> Reply:
        table = self._table(match["table"])
        record = None if table is None else table.get(match["sys_id"])
        if record is None:
            return _error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return Reply(json={"result": self._render(match["table"], record, request)})

    def _update(self, request: Recorded, match: re.Match[str]) -> Reply:
        table = self._table(match["table"])
        record = None if table is None else table.get(match["sys_id"])
        if record is None:
            return _error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        problem = self._apply(match["table"], record, request.json() or {})
        if problem is not None:
            return problem
        return Reply(json={"result": self._render(match["table"], record, request)})

    def _matches(self, record: dict[str, Any], query: str) -> bool:
        for term in query.split("^"):
            if not term or term.startswith("ORDERBY"):
                continue
            if "LIKE" in term:
                field, value = term.split("LIKE", 1)
                if value not in str(record.get(field, "")):
                    return False
            elif "!=" in term:
                field, value = term.split("!=", 1)
                if str(record.get(field, "")) == value:
                    return False
            elif "=" in term:
                field, value = term.split("=", 1)
                if str(record.get(field, "")) != value:
                    return False
            else:
                raise ValueError(term)
        return True

    def _query(self, request: Recorded, match: re.Match[str]) -> Reply:
        name = match["table"]
        table = self._table(name)
        if table is None:
            return _error(400, "Invalid table " + name)
        query = request.param("sysparm_query", "") or ""
        try:
            found = [r for r in table.values() if self._matches(r, query)]
        except ValueError as exc:
            return _error(400, "Invalid query", str(exc))
        offset = int(request.param("sysparm_offset", "0") or 0)
        limit = int(request.param("sysparm_limit", "10000") or 10000)
        page = found[offset : offset + limit]
        return Reply(
            json={"result": [self._render(name, r, request) for r in page]},
            headers={"X-Total-Count": str(len(found))},
        )

    def by_correlation(self, correlation_id: str) -> list[dict[str, Any]]:
        return [r for r in self.tables["incident"].values() if r.get("correlation_id") == correlation_id]


def start_servicenow_fake(**kwargs: Any) -> FakeServiceNow:
    """A started fake ServiceNow; Basic `argus`/`secret` by default, or `token=` for Bearer."""
    fake = FakeServiceNow(**kwargs)
    fake.start()
    return fake
