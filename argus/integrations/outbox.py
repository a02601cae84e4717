"""The embedded notification channel: a JSON-lines outbox, echoed to the console.

One line per notification key, whatever the retries: the keys already written are loaded
at start and checked before every append.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from argus.models import Delivery, Notification


class Outbox:
    name = "outbox"

    def __init__(self, path: Path, echo: bool = True) -> None:
        self.path = path
        self.echo = echo
        self._lock = threading.Lock()
        self._sent: dict[str, Delivery] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a crash; the key will be re-sent once
                self._sent[rec["key"]] = Delivery(
                    channel=self.name, key=rec["key"], ok=True, at=rec.get("at")
                )

    def send(self, notification: Notification) -> Delivery:
        with self._lock:
            if notification.key in self._sent:
                return self._sent[notification.key].model_copy(update={"duplicate": True})
            now = datetime.now(UTC)
            rec = json.loads(notification.model_dump_json())
            rec["at"] = now.isoformat()
            with self.path.open("a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
            delivery = Delivery(channel=self.name, key=notification.key, ok=True, at=now)
            self._sent[notification.key] = delivery
        if self.echo:
            print(f"[notify:{notification.kind}] {notification.subject}", file=sys.stderr, flush=True)
        return delivery

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
