"""Local, wire-faithful fakes of the outside systems ARGUS talks to. See README.md."""

from .base import FakeServer, Headers, Recorded, Reply

__all__ = ["FakeServer", "Headers", "Recorded", "Reply"]
