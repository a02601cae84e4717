"""The one alert model every source is normalised into."""

from __future__ import annotations

import base64
import re
import zlib
from datetime import UTC, datetime
from enum import StrEnum

import orjson
from pydantic import Field, field_validator

from .common import Model, UtcDateTime, construct_unvalidated

# Prometheus's label name syntax: ASCII only (`café`, `x²` are not names, whatever
# str.isalnum says).
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = 0xFFFFFFFFFFFFFFFF


def _hashed_bytes(labels: dict[str, str]) -> bytes:
    """What the fingerprint hashes: names in sorted order, each name and value followed by 0xFF."""
    return b"".join([b"%b\xff%b\xff" % (k.encode(), labels[k].encode()) for k in sorted(labels)])


def labels_fingerprint(labels: dict[str, str]) -> str:
    """Stable fingerprint of a label set, identical to Prometheus/Alertmanager's.

    FNV-1a 64 over the label names in sorted order, each name and value followed by a 0xFF
    separator byte, printed as 16 hex digits. Because it is Alertmanager's own algorithm, an
    alert that reaches ARGUS through Alertmanager's webhook, Prometheus's direct push or any
    normaliser gets the same fingerprint for the same labels.
    """
    h = _FNV_OFFSET
    for byte in _hashed_bytes(labels):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


# Below this many label sets the numpy set-up costs more than the pure-Python loop saves.
_LANES_FROM = 24


def labels_fingerprints(label_sets: list[dict[str, str]]) -> list[str]:
    """`labels_fingerprint` of many label sets, the same values, computed side by side.

    FNV-1a runs byte by byte, and one byte costs Python about 250 ns (three big-int
    operations), so hashing was a third of the gateway's CPU. numpy runs the rounds for all
    label sets at once, one uint64 lane each (the multiply wraps at 2**64, as FNV wants),
    longest sets first so that round `c` touches only the sets that still have a byte `c`.
    """
    n = len(label_sets)
    if n < _LANES_FROM:
        return [labels_fingerprint(labels) for labels in label_sets]
    import numpy as np  # here, not at import time: workflow code imports this module

    raws = [_hashed_bytes(labels) for labels in label_sets]
    lengths = [len(r) for r in raws]
    order = sorted(range(n), key=lengths.__getitem__, reverse=True)
    width = lengths[order[0]]
    # Shorter rows are padded; their lanes stop before the padding (see `live`).
    rows = np.frombuffer(b"".join([raws[i].ljust(width, b"\0") for i in order]), dtype=np.uint8)
    columns = rows.reshape(n, width).T.astype(np.uint64)
    prime = np.uint64(_FNV_PRIME)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    live = n
    for c in range(width):
        while lengths[order[live - 1]] <= c:
            live -= 1
        lanes = h[:live]
        np.bitwise_xor(lanes, columns[c, :live], out=lanes)
        np.multiply(lanes, prime, out=lanes)
    out = [""] * n
    for lane, value in zip(order, h.tolist(), strict=True):
        out[lane] = f"{value:016x}"
    return out


def fill_fingerprints(records: list[dict]) -> None:
    """Give every compact record without an "f" the fingerprint of its labels ("l")."""
    missing = [rec for rec in records if "f" not in rec]
    if missing:
        for rec, fp in zip(missing, labels_fingerprints([r["l"] for r in missing]), strict=True):
            rec["f"] = fp


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: str | None) -> Severity:
        """Map the many spellings sources use onto four levels."""
        v = (value or "").strip().lower()
        return _SEVERITY_ALIASES.get(v, cls.WARNING)


_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3}
_SEVERITY_ALIASES = {
    "critical": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "sev1": Severity.CRITICAL,
    "p1": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "high": Severity.ERROR,
    "error": Severity.ERROR,
    "err": Severity.ERROR,
    "major": Severity.ERROR,
    "sev2": Severity.ERROR,
    "p2": Severity.ERROR,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "minor": Severity.WARNING,
    "sev3": Severity.WARNING,
    "p3": Severity.WARNING,
    "info": Severity.INFO,
    "low": Severity.INFO,
    "none": Severity.INFO,
    "ok": Severity.INFO,
    "sev4": Severity.INFO,
    "p4": Severity.INFO,
    "p5": Severity.INFO,
}


class Alert(Model):
    """A normalised alert.

    `labels` identify the alert (they define the fingerprint); `annotations` describe it.
    Label names follow Prometheus conventions: `alertname`, `service`, `severity`,
    `environment`, `instance`.
    """

    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING
    starts_at: UtcDateTime
    ends_at: UtcDateTime | None = None
    source: str = "generic"
    generator_url: str | None = None
    fingerprint: str = ""
    value: float | None = None

    @field_validator("labels")
    @classmethod
    def _labels_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        # An empty value is no label (Prometheus's rule; Alertmanager drops such labels before
        # it stores an alert, so its webhook never carries them): dropped here, so the alert
        # gets the same fingerprint whichever way it arrives.
        if any(v == "" for v in labels.values()):
            labels = {k: v for k, v in labels.items() if v != ""}
        if "alertname" not in labels:
            if not labels:
                raise ValueError("an alert needs at least one label: 'alertname' is required (non-empty)")
            raise ValueError("label 'alertname' is required (a non-empty string)")
        for name in labels:
            if not LABEL_NAME.fullmatch(name):
                raise ValueError(f"invalid label name {name!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
        return labels

    def model_post_init(self, __context: object) -> None:
        if not self.fingerprint:
            self.fingerprint = labels_fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def service(self) -> str:
        return self.labels.get("service") or self.labels.get("job") or "unknown"

    @property
    def severity(self) -> Severity:
        return Severity.parse(self.labels.get("severity"))

    @property
    def environment(self) -> str:
        return self.labels.get("environment") or self.labels.get("env") or "production"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or self.name


class AlertBatch(Model):
    """Alerts that arrive together: one gateway flush, one collector pull, one backfill window.

    `batch_id` makes a redelivered batch harmless: the Monitoring workflow remembers
    recent ids and skips a batch it has already applied.
    """

    batch_id: str
    alerts: list[Alert]
    received_at: UtcDateTime | None = None
    backfill: bool = False


# --- the compact wire form of the ingest hot path --------------------------------------------
# The gateway validates every alert once, then sends batches to the Monitoring workflow as
# one JSON string of short-keyed records, so the workflow neither re-validates nor pays for
# thousands of model objects per signal. Keys: f fingerprint (a normaliser may leave it to
# `CompactBatch.of`, which computes a whole batch's at once), l labels, a annotations,
# s status ("f"/"r"), t startsAt and e endsAt (unix seconds), o source, g generatorURL,
# v value. Optional keys are left out when empty.


class CompactBatch(Model):
    batch_id: str
    # A JSON array of compact records; with `compressed`, zlib-compressed and base64-encoded.
    # Compressed, a batch takes about 31 bytes of workflow history per alert instead of 238
    # (labels repeat from alert to alert), so a scope's run reaches Temporal's history-size
    # suggestion and continues as new about seven times less often.
    data: str
    count: int = 0
    backfill: bool = False
    compressed: bool = False
    # Which gateway sent it, and how many alerts that gateway had sent to the scope with this
    # batch: the workflow remembers the highest it received, so the gateway can tell how many
    # of its acknowledged alerts still wait in Temporal (gateway backpressure).
    sender: str = ""
    seq: int = 0

    @classmethod
    def of(
        cls, batch_id: str, records: list[dict], backfill: bool = False, sender: str = "", seq: int = 0
    ) -> CompactBatch:
        """The wire form of `records`; those without a fingerprint get one here, all at once."""
        fill_fingerprints(records)
        data = base64.b64encode(zlib.compress(orjson.dumps(records), 1)).decode()
        return cls(
            batch_id=batch_id,
            data=data,
            count=len(records),
            backfill=backfill,
            compressed=True,
            sender=sender,
            seq=seq,
        )

    def records(self) -> list[dict]:
        if self.compressed:
            return orjson.loads(zlib.decompress(base64.b64decode(self.data)))
        return orjson.loads(self.data)


def alert_to_compact(a: Alert) -> dict:
    rec: dict = {"f": a.fingerprint, "l": a.labels, "s": "f" if a.status == AlertStatus.FIRING else "r"}
    rec["t"] = a.starts_at.timestamp()
    if a.annotations:
        rec["a"] = a.annotations
    if a.ends_at is not None:
        rec["e"] = a.ends_at.timestamp()
    if a.source != "generic":
        rec["o"] = a.source
    if a.generator_url:
        rec["g"] = a.generator_url
    if a.value is not None:
        rec["v"] = a.value
    return rec


def alert_from_compact(rec: dict) -> Alert:
    """Rebuild an Alert from a record the gateway already validated (no re-validation)."""
    ends = rec.get("e")
    return construct_unvalidated(
        Alert,
        {
            "labels": rec["l"],
            "annotations": rec.get("a") or {},
            "status": AlertStatus.FIRING if rec["s"] == "f" else AlertStatus.RESOLVED,
            "starts_at": datetime.fromtimestamp(rec["t"], UTC),
            "ends_at": datetime.fromtimestamp(ends, UTC) if ends is not None else None,
            "source": rec.get("o", "generic"),
            "generator_url": rec.get("g"),
            "fingerprint": rec["f"],
            "value": rec.get("v"),
        },
    )
