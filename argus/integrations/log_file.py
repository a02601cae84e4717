"""A LogSource over a JSON-lines log file (one object per line with `@timestamp`, `service`, `level`,
`message`), such as the sandbox's `--log-file` or what a log shipper would tail.

Lines are in time order (within a second or so), so a window is found by binary search on file
offsets and read forward: the cost follows the window, not the file size.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argus.models import SourceHealth

from .base import IntegrationError

ERROR_LEVELS = {"ERROR", "FATAL", "CRITICAL"}
SLACK_S = 5.0  # lines may be out of order by up to this much


def _ts(record: dict[str, Any]) -> float | None:
    raw = record.get("@timestamp")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class JsonLinesLogSource:
    def __init__(self, path: Path, name: str = "log-file") -> None:
        self.path = Path(path)
        self.name = name

    def _line_at(self, fh: Any, offset: int) -> tuple[float | None, int]:
        """Timestamp of the first whole line at or after `offset`, and that line's offset."""
        fh.seek(offset)
        if offset:
            fh.readline()  # finish the partial line
        while True:
            pos = fh.tell()
            line = fh.readline()
            if not line:
                return None, pos
            try:
                ts = _ts(json.loads(line))
            except ValueError:
                continue
            if ts is not None:
                return ts, pos

    def _read(self, start: float, end: float) -> list[dict[str, Any]]:
        if not self.path.exists():
            raise IntegrationError(f"log file {self.path} does not exist")
        size = self.path.stat().st_size
        out: list[dict[str, Any]] = []
        with open(self.path, "rb") as fh:
            lo, hi = 0, size
            while hi - lo > 4096:
                mid = (lo + hi) // 2
                ts, _ = self._line_at(fh, mid)
                if ts is None or ts >= start - SLACK_S:
                    hi = mid
                else:
                    lo = mid
            _, pos = self._line_at(fh, lo)
            fh.seek(pos)
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # a torn last line while the writer appends
                ts = _ts(rec)
                if ts is None:
                    continue
                if ts > end + SLACK_S:
                    break
                if start <= ts <= end:
                    out.append(rec)
        return out

    async def messages(self, start: datetime, end: datetime, limit: int) -> list[dict[str, str]]:
        """Records in [start, end], oldest first, at most `limit` (the newest ones when cut)."""
        recs = await asyncio.to_thread(self._read, start.timestamp(), end.timestamp())
        keys = ("@timestamp", "service", "level", "message")
        return [{k: str(r.get(k, "")) for k in keys} for r in recs[-limit:]]

    async def error_counts(
        self, start: datetime, end: datetime, interval_seconds: int
    ) -> dict[str, list[tuple[float, int]]]:
        recs = await asyncio.to_thread(self._read, start.timestamp(), end.timestamp())
        t0 = start.timestamp()
        buckets: dict[str, dict[float, int]] = {}
        for r in recs:
            if str(r.get("level", "")).upper() not in ERROR_LEVELS:
                continue
            ts = _ts(r) or t0
            b = t0 + ((ts - t0) // interval_seconds) * interval_seconds
            per = buckets.setdefault(str(r.get("service", "unknown")), {})
            per[b] = per.get(b, 0) + 1
        return {svc: sorted(per.items()) for svc, per in buckets.items()}

    async def health(self) -> SourceHealth:
        started = time.monotonic()
        try:
            mtime = (await asyncio.to_thread(self.path.stat)).st_mtime
        except OSError:
            return SourceHealth(source=self.name, ok=False, detail=f"{self.path} does not exist")
        age = time.time() - mtime
        return SourceHealth(
            source=self.name,
            ok=True,
            detail=f"{self.path}, last written {age:.0f} s ago",
            latency_ms=(time.monotonic() - started) * 1000,
            last_success=datetime.now(UTC).timestamp(),
        )
