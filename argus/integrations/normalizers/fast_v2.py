"""The ingest hot path: Alertmanager v2 alerts straight to compact records.

Same rules and the same error messages as `alertmanager.from_v2`, without building model
objects: Prometheus posts the same alerts again every minute, so parsed timestamps are cached
by their input, and a batch costs a few microseconds per alert. Fingerprints are left to
`CompactBatch.of`, which computes those of all requests coalesced into one batch together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .common import PayloadError, clean_labels, end_before_start, parse_time

# A record is never more than this many bytes larger than its alert's JSON in the request
# body, so than the body: its labels, annotations and generatorURL are the body's strings
# (orjson never writes a string longer than JSON text can spell it; dropped labels and
# duplicate keys only shorten it), under shorter keys; what it adds is at most the fixed
# part `{"s":"f","t":<time>,"o":"prometheus","e":<time>}` and, later, the fingerprint
# (`"f":"<16 hex>"`), about 120 bytes. The gateway measures records only when the body
# plus this could pass MAX_ALERT_BYTES, so a small body costs nothing per alert.
RECORD_GROWTH = 256
_CACHE_LIMIT = 200_000
_times: dict[str, float | None] = {}


def _time(value: Any, where: str, problems: list[str]) -> float | None:
    if isinstance(value, str):
        cached = _times.get(value, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        before = len(problems)
        dt = parse_time(value, where, problems)
        ts = dt.timestamp() if dt is not None else None
        if len(problems) == before:
            if len(_times) >= _CACHE_LIMIT:
                _times.clear()
            _times[value] = ts
        return ts
    dt = parse_time(value, where, problems)
    return dt.timestamp() if dt is not None else None


def _strings(value: Any, where: str, problems: list[str], required: bool) -> dict[str, str] | None:
    """An object of string values (numbers are refused, as Alertmanager's v2 API refuses them)."""
    if value is None:
        if required:
            problems.append(f"{where}: field required")
        return None if required else {}
    if not isinstance(value, dict):
        problems.append(f"{where}: must be an object of string values, got {type(value).__name__}")
        return None
    for k, v in value.items():
        if type(v) is not str:
            problems.append(f"{where}.{k}: must be a string, got {type(v).__name__}")
            return None
    return value


def _labels(value: Any, where: str, problems: list[str]) -> dict[str, str] | None:
    labels = _strings(value, where, problems, required=True)
    return None if labels is None else clean_labels(labels, where, problems)


def compact_from_v2(payload: Any, now: datetime) -> list[dict]:
    """`POST /api/v2/alerts` body → compact records (see `argus.models.alert`)."""
    if not isinstance(payload, list):
        raise PayloadError(["body: must be a JSON array of alerts (Alertmanager v2 API)"])
    now_ts = now.timestamp()
    problems: list[str] = []
    out: list[dict] = []
    for i, raw in enumerate(payload):
        where = f"[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: each alert must be an object")
            continue
        before = len(problems)
        labels = _labels(raw.get("labels"), f"{where}.labels", problems)
        annotations = _strings(raw.get("annotations"), f"{where}.annotations", problems, required=False)
        starts = _time(raw.get("startsAt"), f"{where}.startsAt", problems)
        ends = _time(raw.get("endsAt"), f"{where}.endsAt", problems)
        generator = raw.get("generatorURL")
        if generator is not None and not isinstance(generator, str):
            problems.append(f"{where}.generatorURL: must be a string")
        if starts is None:
            # No start: now, or the end if that is earlier (a resolution posted without its start,
            # which Alertmanager takes too); see `common.time_range`, the same rule for `Alert`s.
            starts = now_ts if ends is None or ends > now_ts else ends
        elif ends is not None and ends < starts:
            problems.append(
                end_before_start(
                    where, datetime.fromtimestamp(starts, UTC), datetime.fromtimestamp(ends, UTC)
                )
            )
        if len(problems) > before:
            continue
        assert labels is not None
        # No "f": `CompactBatch.of` fingerprints the gateway's whole batch at once.
        rec: dict = {
            "l": labels,
            # An alert whose end time has passed is a resolution (Alertmanager's v2 semantics).
            "s": "r" if ends is not None and ends <= now_ts else "f",
            "t": starts,
            "o": "prometheus",
        }
        if annotations:
            rec["a"] = annotations
        if ends is not None:
            rec["e"] = ends
        if generator:
            rec["g"] = generator
        out.append(rec)
    if problems:
        raise PayloadError(problems)
    return out
