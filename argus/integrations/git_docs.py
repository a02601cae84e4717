"""The embedded document publisher: a local git repository (commit, and push when a remote is set)."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import yaml

from argus.models import Document, PublishResult

from .base import IntegrationError


def render_markdown(document: Document) -> str:
    front = dict(document.front_matter)
    front.setdefault("title", document.title)
    front.setdefault("kind", document.kind.value)
    if document.service:
        front.setdefault("service", document.service)
    if document.incident_id:
        front.setdefault("incident", document.incident_id)
    if document.owners:
        front.setdefault("owners", document.owners)
    return "---\n" + yaml.safe_dump(front, sort_keys=True) + "---\n\n" + document.content.rstrip() + "\n"


def split_front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return yaml.safe_load(text[4:end]) or {}, text[end + 5 :]
    return {}, text


class GitDocsRepo:
    name = "git"

    def __init__(self, path: Path, remote: str | None = None, branch: str = "main") -> None:
        self.path = path
        self.remote = remote
        self.branch = branch
        self._lock = threading.Lock()
        self._ensure_repo()

    def _git(self, *args: str) -> str:
        try:
            out = subprocess.run(
                ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True, timeout=60
            )
        except subprocess.CalledProcessError as exc:
            raise IntegrationError(f"git {' '.join(args)} failed: {exc.stderr.strip()}") from exc
        return out.stdout.strip()

    def _ensure_repo(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / ".git").exists():
            self._git("init", "-q", "-b", self.branch)
            self._git("config", "user.name", "ARGUS")
            self._git("config", "user.email", "argus@localhost")
            (self.path / "README.md").write_text("# Operations documents\n\nWritten and kept by ARGUS.\n")
            self._git("add", "README.md")
            self._git("commit", "-q", "-m", "Start the ARGUS documents repository")

    @staticmethod
    def relpath(document: Document) -> str:
        return f"{document.kind.value}s/{document.slug}.md"

    def publish(self, document: Document) -> PublishResult:
        rel = self.relpath(document)
        target = self.path / rel
        text = render_markdown(document)
        with self._lock:
            created = not target.exists()
            if not created and target.read_text() == text:
                return PublishResult(
                    publisher=self.name, location=rel, revision=self._git("rev-parse", "HEAD"), created=False
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self._git("add", rel)
            verb = "Add" if created else "Update"
            self._git("commit", "-q", "-m", f"{verb} {document.kind.value}: {document.title}")
            revision = self._git("rev-parse", "HEAD")
            if self.remote:
                self._git("push", "-q", self.remote, f"HEAD:{self.branch}")
        return PublishResult(
            publisher=self.name, location=rel, revision=revision, created=created, at=datetime.now(UTC)
        )

    def documents(self, kind: str | None = None) -> list[tuple[str, dict, str]]:
        """(relative path, front matter, body) of every published document."""
        out = []
        for path in sorted(self.path.glob("*/*.md")):
            rel = str(path.relative_to(self.path))
            if kind and not rel.startswith(f"{kind}s/"):
                continue
            front, body = split_front_matter(path.read_text())
            out.append((rel, front, body))
        return out

    def log(self) -> list[str]:
        return self._git("log", "--format=%H %s").splitlines()
