"""Fake Jira (REST API v2), Server/Data Center or Cloud, as `jira` 3.10.5 speaks to it.

Faithful to docs/integrations.md §1: serverInfo with `versionNumbers` + `deploymentType`; issues with
`self` (the client PUTs and GETs `issue.self`); comment, transitions (matched by the client by name),
field list, `search` (DC; 410 on Cloud) and `search/jql` (Cloud; eventually consistent through
`search_lag`), issueLinkType, issueLink, PUT issue. Errors carry `errorMessages`/`errors` as Jira does.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from .base import FakeServer, Recorded, Reply

STATUSES = {
    "Open": {"id": "1", "name": "Open", "statusCategory": {"id": 2, "key": "new", "name": "To Do"}},
    "In Progress": {
        "id": "3",
        "name": "In Progress",
        "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"},
    },
    "Resolved": {"id": "5", "name": "Resolved", "statusCategory": {"id": 3, "key": "done", "name": "Done"}},
    "Reopened": {"id": "4", "name": "Reopened", "statusCategory": {"id": 2, "key": "new", "name": "To Do"}},
}
# (transition id, name, target status, allowed when status category is not "done" / is "done")
TRANSITIONS = [
    ("11", "Start Progress", "In Progress", False),
    ("31", "Resolve Issue", "Resolved", False),
    ("41", "Reopen Issue", "Reopened", True),
]
LINK_TYPES = [
    {"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
    {"id": "10003", "name": "Relates", "inward": "relates to", "outward": "relates to"},
    {"id": "10002", "name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"},
]
FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "clauseNames": ["summary"]},
    {"id": "labels", "name": "Labels", "custom": False, "clauseNames": ["labels"]},
    {"id": "status", "name": "Status", "custom": False, "clauseNames": ["status"]},
    {"id": "priority", "name": "Priority", "custom": False, "clauseNames": ["priority"]},
    {"id": "issuelinks", "name": "Linked Issues", "custom": False, "clauseNames": ["issuelinks"]},
    {"id": "resolution", "name": "Resolution", "custom": False, "clauseNames": ["resolution"]},
    {
        "id": "customfield_10010",
        "name": "Incident ID",
        "custom": True,
        "clauseNames": ["cf[10010]", "Incident ID"],
    },
]


def _err(status: int, *messages: str, **errors: str) -> Reply:
    return Reply(status, json={"errorMessages": list(messages), "errors": errors})


class FakeJira(FakeServer):
    vendor = "jira"

    def __init__(
        self,
        deployment: str = "Server",
        *,
        projects: tuple[str, ...] = ("OPS",),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest"),
        components: tuple[str, ...] = ("checkout", "payments"),
        resolutions: tuple[str, ...] = ("Done", "Fixed", "Won't Do", "Duplicate"),
        search_lag: float = 0.0,
        credentials: tuple[str, str] | str | None = None,
    ) -> None:
        super().__init__()
        self.deployment = deployment
        self.projects = set(projects)
        self.priorities = set(priorities)
        self.components = set(components)
        self.resolutions = set(resolutions)
        self.search_lag = (
            search_lag  # Cloud search/jql misses issues younger than this (eventual consistency)
        )
        self.credentials = credentials  # (user, secret) for Basic or a PAT for Bearer; None: any auth
        self.issues: dict[str, dict[str, Any]] = {}  # key -> raw issue
        self.created_at: dict[str, float] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 10000
        self._next_num: dict[str, int] = {}
        api = r"/rest/api/2"
        issue = api + r"/issue/(?P<key>[A-Z][A-Z0-9]*-\d+|\d+)"
        self.route("GET", api + r"/serverInfo", self._server_info)
        self.route("GET", api + r"/field", lambda r, m: Reply(json=FIELDS))
        self.route("POST", api + r"/issue", self._create)
        self.route("GET", issue, self._get)
        self.route("PUT", issue, self._put)
        self.route("POST", issue + r"/comment", self._add_comment)
        self.route("GET", issue + r"/comment", self._list_comments)
        self.route("GET", issue + r"/transitions", self._transitions)
        self.route("POST", issue + r"/transitions", self._do_transition)
        self.route("GET", api + r"/search", self._search_dc)
        self.route("GET", api + r"/search/jql", self._search_cloud)
        self.route("GET", api + r"/issueLinkType", lambda r, m: Reply(json={"issueLinkTypes": LINK_TYPES}))
        self.route("POST", api + r"/issueLink", self._link)

    # ---- helpers -----------------------------------------------------------------------------

    def error_body(self, status: int) -> Any:
        return {"errorMessages": [f"Injected failure {status}"], "errors": {}}

    def not_found(self, request: Recorded) -> Reply:
        return _err(404, f"No route {request.method} {request.path}")

    def authenticate(self, request: Recorded) -> Reply | None:
        header = request.headers.get("authorization")
        if not header:
            return _err(401, "You are not authenticated. Authentication required to perform this operation.")
        if self.credentials is None:
            return None
        if isinstance(self.credentials, str):
            ok = header == f"Bearer {self.credentials}"
        else:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            ok = header == f"Basic {token}"
        return None if ok else _err(401, "Client must be authenticated to access this resource.")

    def _find(self, key_or_id: str) -> dict[str, Any] | None:
        if key_or_id in self.issues:
            return self.issues[key_or_id]
        return next((i for i in self.issues.values() if i["id"] == key_or_id), None)

    def issue_by_label(self, label: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if label in i["fields"]["labels"]]

    # ---- routes ------------------------------------------------------------------------------

    def _server_info(self, request: Recorded, match: re.Match[str]) -> Reply:
        cloud = self.deployment == "Cloud"
        return Reply(
            json={
                "baseUrl": self.url,
                "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
                "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2],
                "deploymentType": self.deployment,
                "buildNumber": 100280 if cloud else 9120002,
                "serverTitle": "Jira",
            }
        )

    def _create(self, request: Recorded, match: re.Match[str]) -> Reply:
        fields = (request.json() or {}).get("fields", {})
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            return _err(400, project="valid project is required")
        if not fields.get("summary"):
            return _err(400, summary="You must specify a summary of the issue.")
        if len(fields["summary"]) > 255:
            return _err(400, summary="Summary must be less than 255 characters.")
        if not (fields.get("issuetype") or {}).get("name"):
            return _err(400, issuetype="issue type is required")
        labels = fields.get("labels", [])
        for label in labels:
            if " " in label:
                return _err(400, labels=f"The label '{label}' contains spaces which is invalid.")
        priority = fields.get("priority")
        if priority is not None and priority.get("name") not in self.priorities:
            return _err(400, priority="The priority selected is invalid.")
        for component in fields.get("components", []):
            if component.get("name") not in self.components:
                return _err(400, components=f"Component name '{component.get('name')}' is not valid")
        self._next_id += 1
        number = self._next_num.get(project, 0) + 1
        self._next_num[project] = number
        key, issue_id = f"{project}-{number}", str(self._next_id)
        self.issues[key] = {
            "id": issue_id,
            "key": key,
            "self": f"{self.url}/rest/api/2/issue/{issue_id}",
            "fields": {
                "project": {"key": project},
                "issuetype": fields["issuetype"],
                "summary": fields["summary"],
                "description": fields.get("description"),
                "labels": list(labels),
                "priority": priority,
                "components": fields.get("components", []),
                "status": STATUSES["Open"],
                "resolution": None,
                "issuelinks": [],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
            },
        }
        self.created_at[key] = time.time()
        self.comments[key] = []
        return Reply(201, json={"id": issue_id, "key": key, "self": self.issues[key]["self"]})

    def _get(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        return Reply(json=issue)

    def _put(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        body = request.json() or {}
        for name, value in (body.get("fields") or {}).items():
            issue["fields"][name] = value
        for name, operations in (body.get("update") or {}).items():
            for op in operations:
                if "add" in op and isinstance(issue["fields"].get(name), list):
                    issue["fields"][name].append(op["add"])
                elif "set" in op:
                    issue["fields"][name] = op["set"]
        return Reply(204)

    def _add_comment(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        body = request.json() or {}
        if not body.get("body"):
            return _err(400, comment="Comment body can not be empty!")
        comments = self.comments[issue["key"]]
        comment_id = str(20000 + sum(len(c) for c in self.comments.values()))
        comment = {
            "id": comment_id,
            "self": f"{self.url}/rest/api/2/issue/{issue['id']}/comment/{comment_id}",
            "body": body["body"],
            "author": {"name": "argus", "displayName": "ARGUS"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
        }
        comments.append(comment)
        return Reply(201, json=comment)

    def _list_comments(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        comments = self.comments[issue["key"]]
        return Reply(
            json={"startAt": 0, "maxResults": len(comments), "total": len(comments), "comments": comments}
        )

    def _available(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        done = issue["fields"]["status"]["statusCategory"]["key"] == "done"
        return [
            {"id": tid, "name": name, "to": STATUSES[target]}
            for tid, name, target, when_done in TRANSITIONS
            if when_done == done and issue["fields"]["status"]["name"] != target
        ]

    def _transitions(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        return Reply(json={"expand": "transitions", "transitions": self._available(issue)})

    def _do_transition(self, request: Recorded, match: re.Match[str]) -> Reply:
        issue = self._find(match["key"])
        if issue is None:
            return _err(404, "Issue does not exist or you do not have permission to see it.")
        body = request.json() or {}
        wanted = str((body.get("transition") or {}).get("id"))
        chosen = next((t for t in self._available(issue) if t["id"] == wanted), None)
        if chosen is None:
            return _err(400, f"Transition id '{wanted}' is not valid for this issue.")
        resolution = (body.get("fields") or {}).get("resolution")
        if resolution is not None and resolution.get("name") not in self.resolutions:
            return _err(400, resolution=f"Resolution '{resolution.get('name')}' is not valid.")
        issue["fields"]["status"] = chosen["to"]
        if chosen["to"]["statusCategory"]["key"] == "done":
            issue["fields"]["resolution"] = resolution or {"name": "Done"}
        else:
            issue["fields"]["resolution"] = None
        for op in (body.get("update") or {}).get("comment", []):
            if "add" in op:
                self.comments[issue["key"]].append({"id": "t", "body": op["add"]["body"]})
        return Reply(204)

    # ---- search: a tiny JQL subset (clauses joined by AND, optional ORDER BY) ----------------

    _CLAUSE = re.compile(r'^\s*(\w+)\s*(=|!=|in)\s*(?:"([^"]*)"|\(([^)]*)\)|([\w\-.]+))\s*$', re.I)

    def _matches(self, issue: dict[str, Any], jql: str) -> bool:
        where = re.split(r"\s+ORDER\s+BY\s+", jql, flags=re.I)[0]
        for clause in re.split(r"\s+AND\s+", where, flags=re.I):
            if not clause.strip():
                continue
            m = self._CLAUSE.match(clause)
            if m is None:
                raise ValueError(f"Error in the JQL Query: unsupported clause '{clause.strip()}'")
            name, op, quoted, listed, bare = m.groups()
            value = quoted if quoted is not None else bare
            fields = issue["fields"]
            name = name.lower()
            if name == "project":
                actual: list[str] = [fields["project"]["key"]]
            elif name == "labels":
                actual = fields["labels"]
            elif name == "key":
                actual = [issue["key"]]
            elif name == "statuscategory":
                actual = [fields["status"]["statusCategory"]["name"]]
            elif name == "status":
                actual = [fields["status"]["name"]]
            else:
                raise ValueError(f"Error in the JQL Query: field '{name}' does not exist")
            op = op.lower()
            if op == "in":
                wanted = [v.strip().strip('"') for v in (listed or "").split(",")]
                ok = any(a in wanted for a in actual)
            elif op == "=":
                ok = value in actual
            else:
                ok = value not in actual
            if not ok:
                return False
        return True

    def _search(self, request: Recorded, *, hide_young: bool) -> list[dict[str, Any]] | Reply:
        jql = request.param("jql", "") or ""
        now = time.time()
        try:
            found = [
                i
                for k, i in sorted(self.issues.items(), key=lambda kv: int(kv[1]["id"]))
                if self._matches(i, jql) and not (hide_young and now - self.created_at[k] < self.search_lag)
            ]
        except ValueError as exc:
            return _err(400, str(exc))
        max_results = int(request.param("maxResults", "50") or 50)
        return found[:max_results]

    def _search_dc(self, request: Recorded, match: re.Match[str]) -> Reply:
        if self.deployment == "Cloud":
            return _err(
                410, "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
            )
        found = self._search(request, hide_young=False)
        if isinstance(found, Reply):
            return found
        start = int(request.param("startAt", "0") or 0)
        return Reply(json={"startAt": start, "maxResults": len(found), "total": len(found), "issues": found})

    def _search_cloud(self, request: Recorded, match: re.Match[str]) -> Reply:
        if self.deployment != "Cloud":
            return _err(404, "null for uri: /rest/api/2/search/jql")
        found = self._search(request, hide_young=True)
        if isinstance(found, Reply):
            return found
        return Reply(json={"issues": found, "isLast": True})

    def _link(self, request: Recorded, match: re.Match[str]) -> Reply:
        body = request.json() or {}
        type_name = (body.get("type") or {}).get("name")
        link_type = next((t for t in LINK_TYPES if t["name"] == type_name), None)
        if link_type is None:
            return _err(404, f"No issue link type with name '{type_name}' found.")
        inward = self._find((body.get("inwardIssue") or {}).get("key", ""))
        outward = self._find((body.get("outwardIssue") or {}).get("key", ""))
        if inward is None or outward is None:
            return _err(404, "Issue Does Not Exist")
        ref = lambda i: {"id": i["id"], "key": i["key"], "self": i["self"]}  # noqa: E731
        inward["fields"]["issuelinks"].append({"id": "1", "type": link_type, "outwardIssue": ref(outward)})
        outward["fields"]["issuelinks"].append({"id": "1", "type": link_type, "inwardIssue": ref(inward)})
        return Reply(201)


def start_jira_fake(deployment: str = "Server", **kwargs: Any) -> FakeJira:
    """A started fake Jira; `deployment` is "Server" (Data Center) or "Cloud"."""
    fake = FakeJira(deployment, **kwargs)
    fake.start()
    return fake
