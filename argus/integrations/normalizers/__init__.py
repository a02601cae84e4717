"""Push normalisers: each turns one source's payload into ARGUS alerts, or raises
`PayloadError` listing every field that is wrong (so the gateway can answer 4xx)."""

from .common import PayloadError

__all__ = ["PayloadError"]
