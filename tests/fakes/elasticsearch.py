"""Elasticsearch 9, as elasticsearch-py 9 sees it (shared/docs/integrations.md §5).

Wire facts it keeps:
* every answer carries `X-Elastic-Product: Elasticsearch` (the client refuses the first 2xx
  without it; `product_header=False` drops it to test that) and the content type
  `application/vnd.elasticsearch+json;compatible-with=9`;
* a request whose `Accept` asks for another major (`compatible-with=8`) gets ES's 400
  media-type error, as a 9.x server does for an 8.x client;
* `Authorization: ApiKey <key>` (or Basic) is checked when `api_key` is set: 401 with ES's
  `security_exception` body otherwise;
* `GET /` answers the cluster info; `POST /<index pattern>/_search` searches the stored
  documents of every index matching the pattern (`logs-*`).

Search supports what ARGUS sends: `query.bool.filter` of `range` (gte/gt/lte/lt, ISO or epoch
millis), `term`, `terms` and `query_string` (`field:value`, `field:(a OR b)`, `field:"x y"`,
`AND`/`OR`/`NOT`, bare words against `message`); `size`, `sort` on a field; `aggs` of `terms`
(size, doc_count order) and `date_histogram` (`fixed_interval`, `min_doc_count`,
`extended_bounds`), nested. Anything else is refused with ES's 400 `parsing_exception`.

Partial results, as ES gives them by default (`allow_partial_search_results: true`): after
`lose_shards(failed, total)` a search answers 200 with `_shards.failed` and `failures`, and
the documents of the lost shards (every `total`-th one, by position) are missing from its hits
and aggregations; `timed_out = True` marks answers `"timed_out": true`.
"""

from __future__ import annotations

import base64
import fnmatch
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from .base import FakeServer, Recorded, Reply

MEDIA = "application/vnd.elasticsearch+json;compatible-with=9"


class QueryError(ValueError):
    pass


def _get(doc: dict[str, Any], dotted: str) -> Any:
    if dotted in doc:
        return doc[dotted]
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _millis(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp() * 1000


def _interval_ms(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if not m:
        raise QueryError(f"failed to parse setting [fixed_interval] with value [{text}]")
    return int(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]


# --- query_string subset ----------------------------------------------------------------------------
def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, quoted, buf, i = [], 0, False, "", 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(buf)
            buf, i = "", i + len(sep)
            continue
        buf += ch
        i += 1
    parts.append(buf)
    return [p.strip() for p in parts]


def _value_matches(actual: Any, wanted: str) -> bool:
    if actual is None:
        return False
    values = actual if isinstance(actual, list) else [actual]
    wanted = wanted.strip().strip('"')
    for v in values:
        text = str(v)
        if "*" in wanted or "?" in wanted:
            if fnmatch.fnmatch(text.lower(), wanted.lower()):
                return True
        elif text.lower() == wanted.lower() or wanted.lower() in text.lower().split():
            return True
    return False


def query_string(doc: dict[str, Any], query: str) -> bool:
    query = query.strip()
    if not query or query == "*":
        return True
    ors = _split_top(query, " OR ")
    if len(ors) > 1:
        return any(query_string(doc, q) for q in ors)
    ands = _split_top(query, " AND ")
    if len(ands) > 1:
        return all(query_string(doc, q) for q in ands)
    if query.startswith("NOT "):
        return not query_string(doc, query[4:])
    if query.startswith("(") and query.endswith(")"):
        return query_string(doc, query[1:-1])
    if re.search(r"[{}\[\]]", query):  # Lucene range syntax, which ARGUS never sends
        raise QueryError(f"Failed to parse query [{query}]")
    m = re.fullmatch(r"([\w.@]+):(.+)", query, re.S)
    if m:
        field, value = m.group(1), m.group(2).strip()
        if value.startswith("(") and value.endswith(")"):
            return any(_value_matches(_get(doc, field), v) for v in _split_top(value[1:-1], " OR "))
        return _value_matches(_get(doc, field), value)
    return _value_matches(doc.get("message"), query)


class FakeElasticsearch(FakeServer):
    vendor = "elasticsearch"

    def __init__(
        self, api_key: str | None = None, product_header: bool = True, version: str = "9.1.0"
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.product_header = product_header
        self.version = version
        self.indices: dict[str, list[dict[str, Any]]] = {}
        self.shards = {"total": 1, "failed": 0, "reason": ""}
        self.timed_out = False
        self.route("GET", r"/", self._info)
        self.route("HEAD", r"/", self._info)
        self.route("POST", r"/([^/_][^/]*)/_search", self._search)
        self.route("GET", r"/([^/_][^/]*)/_search", self._search)

    # --- data ------------------------------------------------------------------------------------
    def index(self, name: str, docs: list[dict[str, Any]]) -> None:
        with self.lock:
            self.indices.setdefault(name, []).extend(docs)

    def lose_shards(self, failed: int, total: int = 5, reason: str = "node_disconnected_exception") -> None:
        """Searches answer with `failed` of `total` shards failed (0: all answer again)."""
        with self.lock:
            self.shards = {"total": total, "failed": failed, "reason": reason}

    def error_body(self, status: int) -> Any:
        kind = {400: "parsing_exception", 401: "security_exception", 404: "index_not_found_exception"}.get(
            status, "exception"
        )
        return {
            "error": {
                "root_cause": [{"type": kind, "reason": f"injected {status}"}],
                "type": kind,
                "reason": f"injected {status}",
            },
            "status": status,
        }

    # --- wire ------------------------------------------------------------------------------------
    def _write(self, handler, request: Recorded, reply: Reply) -> None:  # type: ignore[no-untyped-def]
        if self.product_header:
            reply.headers.setdefault("X-Elastic-Product", "Elasticsearch")
        if reply.json is not None and reply.content_type is None:
            reply.content_type = MEDIA
        super()._write(handler, request, reply)

    def authenticate(self, request: Recorded) -> Reply | None:
        accept = request.headers.get("accept", "")
        if "compatible-with=" in accept and "compatible-with=9" not in accept:
            return Reply(
                400,
                json={
                    "error": {
                        "type": "media_type_header_exception",
                        "reason": f"Invalid media-type value on headers [Accept]: {accept}",
                    },
                    "status": 400,
                },
            )
        if self.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        if header == f"ApiKey {self.api_key}":
            return None
        reason = (
            "missing authentication credentials for REST request [/]"
            if not header
            else ("unable to authenticate with provided credentials and anonymous access is not allowed")
        )
        return Reply(
            401,
            json={
                "error": {
                    "root_cause": [{"type": "security_exception", "reason": reason}],
                    "type": "security_exception",
                    "reason": reason,
                },
                "status": 401,
            },
            headers={"WWW-Authenticate": 'ApiKey, Basic realm="security" charset="UTF-8"'},
        )

    def not_found(self, request: Recorded) -> Reply:
        return Reply(
            405 if request.path in ("/",) else 404,
            json={"error": f"Incorrect HTTP method for uri [{request.path}]", "status": 405},
        )

    def _info(self, request: Recorded, _: re.Match[str]) -> Reply:
        return Reply(
            json={
                "name": "fake-node",
                "cluster_name": "argus-test",
                "cluster_uuid": "fake-uuid",
                "version": {
                    "number": self.version,
                    "build_flavor": "default",
                    "lucene_version": "10.2.2",
                    "minimum_wire_compatibility_version": "8.19.0",
                    "minimum_index_compatibility_version": "8.0.0",
                },
                "tagline": "You Know, for Search",
            }
        )

    def _docs(self, pattern: str) -> list[dict[str, Any]] | None:
        names = [n for n in self.indices if any(fnmatch.fnmatch(n, p) for p in pattern.split(","))]
        if not names and "*" not in pattern:
            return None
        return [d for n in names for d in self.indices[n]]

    def _search(self, request: Recorded, m: re.Match[str]) -> Reply:
        docs = self._docs(m.group(1))
        if docs is None:
            return Reply(
                404,
                json={
                    "error": {"type": "index_not_found_exception", "reason": f"no such index [{m.group(1)}]"},
                    "status": 404,
                },
            )
        body = request.json() or {}
        total, failed = int(self.shards["total"]), int(self.shards["failed"])
        if failed:  # the documents of the lost shards are missing
            docs = [d for i, d in enumerate(docs) if i % total >= failed]
        try:
            hits = [d for d in docs if self._matches(d, body.get("query") or {"match_all": {}})]
            aggs = {name: self._agg(spec, hits) for name, spec in (body.get("aggs") or {}).items()}
            ordered = self._sort(hits, body.get("sort"))
        except (QueryError, ValueError, KeyError, TypeError) as exc:
            return Reply(
                400,
                json={
                    "error": {
                        "root_cause": [{"type": "parsing_exception", "reason": str(exc)}],
                        "type": "parsing_exception",
                        "reason": str(exc),
                    },
                    "status": 400,
                },
            )
        size = int(body.get("size", 10))
        out: dict[str, Any] = {
            "took": 1,
            "timed_out": self.timed_out,
            "_shards": {"total": total, "successful": total - failed, "skipped": 0, "failed": failed},
            "hits": {
                "max_score": None,
                "hits": [
                    {"_index": "logs", "_id": str(i), "_score": None, "_source": d}
                    for i, d in enumerate(ordered[:size])
                ],
            },
        }
        if failed:
            out["_shards"]["failures"] = [
                {
                    "shard": k,
                    "index": "logs",
                    "node": f"node-{k}",
                    "reason": {"type": str(self.shards["reason"]), "reason": f"shard [{k}] lost"},
                }
                for k in range(failed)
            ]
        if body.get("track_total_hits", True) is not False:
            out["hits"]["total"] = {"value": len(hits), "relation": "eq"}
        if aggs:
            out["aggregations"] = aggs
        return Reply(json=out)

    def _matches(self, doc: dict[str, Any], q: dict[str, Any]) -> bool:
        if len(q) != 1:
            raise QueryError(f"[_na] query malformed, must start with start_object: {q}")
        kind, spec = next(iter(q.items()))
        if kind == "match_all":
            return True
        if kind == "bool":
            for key in spec:
                if key not in ("filter", "must", "should", "must_not", "minimum_should_match"):
                    raise QueryError(f"[bool] query does not support [{key}]")
            as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
            ok = all(
                self._matches(doc, c) for c in as_list(spec.get("filter", [])) + as_list(spec.get("must", []))
            )
            ok = ok and not any(self._matches(doc, c) for c in as_list(spec.get("must_not", [])))
            should = as_list(spec.get("should", []))
            return ok and (not should or any(self._matches(doc, c) for c in should))
        if kind == "range":
            field, bounds = next(iter(spec.items()))
            value = _get(doc, field)
            if value is None:
                return False
            v = _millis(value)
            checks = {
                "gte": lambda b: v >= b,
                "gt": lambda b: v > b,
                "lte": lambda b: v <= b,
                "lt": lambda b: v < b,
            }
            return all(checks[k](_millis(b)) for k, b in bounds.items() if k in checks)
        if kind == "term":
            field, value = next(iter(spec.items()))
            value = value["value"] if isinstance(value, dict) else value
            return _get(doc, field) == value
        if kind == "terms":
            field, values = next(iter(spec.items()))
            return _get(doc, field) in values
        if kind == "query_string":
            return query_string(doc, spec["query"])
        raise QueryError(f"unknown query [{kind}]")

    @staticmethod
    def _sort(hits: list[dict[str, Any]], sort: Any) -> list[dict[str, Any]]:
        for spec in reversed(sort or []):
            field, how = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
            order = how.get("order", "asc") if isinstance(how, dict) else how
            hits = sorted(
                hits,
                key=lambda d: _millis(_get(d, field)) if _get(d, field) is not None else 0,
                reverse=order == "desc",
            )
        return hits

    def _agg(self, spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        sub = spec.get("aggs") or spec.get("aggregations") or {}
        if "terms" in spec:
            t = spec["terms"]
            counts = Counter(str(_get(d, t["field"])) for d in docs if _get(d, t["field"]) is not None)
            top = counts.most_common(int(t.get("size", 10)))
            buckets = []
            for key, n in top:
                b: dict[str, Any] = {"key": key, "doc_count": n}
                members = [d for d in docs if str(_get(d, t["field"])) == key]
                b.update({name: self._agg(s, members) for name, s in sub.items()})
                buckets.append(b)
            rest = sum(counts.values()) - sum(n for _, n in top)
            return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": rest, "buckets": buckets}
        if "date_histogram" in spec:
            h = spec["date_histogram"]
            if "interval" in h:
                raise QueryError("[interval] on [date_histogram] is removed, use [fixed_interval]")
            step = _interval_ms(h["fixed_interval"])
            stamps = [(_millis(_get(d, h["field"])), d) for d in docs if _get(d, h["field"]) is not None]
            keys = [int(ts // step * step) for ts, _ in stamps]
            bounds = h.get("extended_bounds") or {}
            lo = min(
                keys + ([int(_millis(bounds["min"]) // step * step)] if "min" in bounds else []), default=None
            )
            hi = max(
                keys + ([int(_millis(bounds["max"]) // step * step)] if "max" in bounds else []), default=None
            )
            buckets = []
            if lo is not None and hi is not None:
                k = lo
                while k <= hi:
                    members = [d for (ts, d), key in zip(stamps, keys, strict=True) if key == k]
                    if len(members) >= int(h.get("min_doc_count", 1)):
                        b = {
                            "key_as_string": datetime.fromtimestamp(k / 1000, UTC).strftime(
                                "%Y-%m-%dT%H:%M:%S.000Z"
                            ),
                            "key": k,
                            "doc_count": len(members),
                        }
                        b.update({name: self._agg(s, members) for name, s in sub.items()})
                        buckets.append(b)
                    k += int(step)
            return {"buckets": buckets}
        raise QueryError(f"Unknown aggregation type [{next(iter(spec), '')}]")


def start_elasticsearch_fake(api_key: str | None = None, product_header: bool = True) -> FakeElasticsearch:
    fake = FakeElasticsearch(api_key=api_key, product_header=product_header)
    fake.start()
    return fake


def api_key_header(key_id: str, secret: str) -> str:
    """What `Elasticsearch(api_key=(id, secret))` sends after `ApiKey `."""
    return base64.b64encode(f"{key_id}:{secret}".encode()).decode()
