"""Documents waiting to be published: kept on disk when a publisher is down, so a later DocGen
run (the retry rounds of the same workflow, or the next scheduled one) publishes them.

One JSON file per document (`<kind>-<slug>.json`), written atomically; a newer version of the
same document replaces the older one, so nothing stale is published after a fresh one.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from argus.models import Document


class PendingDocuments:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._lock = threading.Lock()

    def _path(self, document: Document) -> Path:
        return self.dir / f"{document.kind.value}-{document.slug}.json"

    def keep(self, document: Document, failures: dict[str, str]) -> None:
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self._path(document)
            first = None
            if path.exists():
                try:
                    first = json.loads(path.read_text()).get("first_failed_at")
                except ValueError:
                    first = None
            body = {
                "document": json.loads(document.model_dump_json()),
                "failures": failures,
                "first_failed_at": first or datetime.now(UTC).isoformat(),
                "last_failed_at": datetime.now(UTC).isoformat(),
            }
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(body))
            os.replace(tmp, path)

    def drop(self, document: Document) -> None:
        with self._lock:
            self._path(document).unlink(missing_ok=True)

    def all(self) -> tuple[list[tuple[Document, dict[str, str]]], list[str]]:
        """(documents with their last failures, problems). An unreadable file is moved aside as
        `<name>.unreadable` and reported, never silently dropped and never blocking the others."""
        if not self.dir.exists():
            return [], []
        out, problems = [], []
        for path in sorted(self.dir.glob("*.json")):
            try:
                body = json.loads(path.read_text())
                out.append((Document.model_validate(body["document"]), dict(body.get("failures", {}))))
            except (ValueError, KeyError) as exc:
                path.rename(path.with_name(path.name + ".unreadable"))
                problems.append(f"pending document {path.name} is unreadable ({exc}); moved aside")
        return out, problems
