"""The embedded document publisher: a local git repository (commit, and push when a remote is set)."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import yaml

from argus.models import Document, PublishResult

from .base import IntegrationError, PermanentError


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
        except subprocess.TimeoutExpired as exc:
            raise IntegrationError(f"git {' '.join(args)} timed out after {exc.timeout}s") from exc
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
        """Write the document (and its attachments beside it), commit if anything changed, and push
        when a remote is configured. Same slug, same file: republishing updates, never duplicates."""
        rel = self.relpath(document)
        files = {rel: render_markdown(document).encode()}
        folder = rel.rsplit("/", 1)[0]
        for att in document.attachments:
            if "/" in att.name or att.name.startswith("."):
                raise PermanentError(f"git: attachment name {att.name!r} must be a plain file name")
            files[f"{folder}/{att.name}"] = att.data
        with self._lock:
            created = not (self.path / rel).exists()
            changed = [name for name, data in files.items() if self._read(name) != data]
            if changed:
                for name in changed:
                    target = self.path / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(files[name])
                self._git("add", *changed)
                verb = "Add" if created else "Update"
                self._git("commit", "-q", "-m", f"{verb} {document.kind.value}: {document.title}")
            revision = self._git("rev-parse", "HEAD")
            if self.remote:
                # Also after "unchanged": an earlier attempt may have committed and then failed to push.
                self._git("push", "-q", self.remote, f"HEAD:{self.branch}")
        return PublishResult(
            publisher=self.name,
            location=rel,
            revision=revision,
            created=created,
            changed=bool(changed),
            at=datetime.now(UTC),
        )

    def _read(self, rel: str) -> bytes | None:
        p = self.path / rel
        return p.read_bytes() if p.exists() else None

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
