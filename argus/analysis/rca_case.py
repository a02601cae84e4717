"""Load and validate an RCA case folder (format: DESIGN.md, "Data for measuring").

::

    <case>/metrics.csv    timestamp,service,metric,value     (long format, unix seconds; required)
    <case>/case.json      {"anomaly_start": <unix s>, "topology": [[caller, callee], ...], "symptom": {...}}
    <case>/changes.json   [{"service": ..., "time": <unix s>, "kind": "deploy", "description": ...}]
                          (optional)
    <case>/logs.json      [{"service": ..., "template": ..., "count": N, "baseline_count": M,
                            "first_seen": <unix s>}]                                              (optional)

Every problem raises :class:`CaseError` whose message names the file and the problem (and the line for
CSV problems).  Any other file in the folder (``label.json`` from the generator, notes, ...) is ignored:
this module never opens it.  This is the only I/O of the RCA analysis.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.analysis.rca import ChangeEvent, LogEvidence, MetricSeries, RcaResult, rank_root_causes

REQUIRED_COLUMNS = ("timestamp", "service", "metric", "value")
MISSING_VALUES = {"", "nan", "NaN", "NA", "null", "None"}


class CaseError(ValueError):
    """A case folder is missing a file or a file is malformed.  The message names the file."""


@dataclass
class RcaCase:
    path: Path
    metrics: list[MetricSeries]
    anomaly_start: float
    topology: list[tuple[str, str]] | None = None
    symptom: dict[str, str] | None = None
    changes: list[ChangeEvent] = field(default_factory=list)
    log_evidence: list[LogEvidence] = field(default_factory=list)

    def analyze(self, **kwargs: Any) -> RcaResult:
        return rank_root_causes(
            self.metrics,
            self.anomaly_start,
            topology=self.topology,
            symptom=self.symptom,
            changes=self.changes,
            log_evidence=self.log_evidence,
            **kwargs,
        )


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def load_metrics_csv(path: Path) -> list[MetricSeries]:
    if not path.is_file():
        raise CaseError(f"{path}: file not found (every case needs metrics.csv)")
    cols: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise CaseError(
                    f"{path}: file is empty (expected header {','.join(REQUIRED_COLUMNS)})"
                ) from None
            names = [h.strip().lower() for h in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in names]
            if missing:
                raise CaseError(
                    f"{path}: line 1: header {header!r} lacks column(s) {', '.join(missing)} "
                    f"(expected {','.join(REQUIRED_COLUMNS)})"
                )
            it, isv, im, iv = (names.index(c) for c in REQUIRED_COLUMNS)
            width = len(names)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != width:
                    raise CaseError(
                        f"{path}: line {line}: expected {width} fields, found {len(row)}: {row!r}"
                    )
                try:
                    ts = float(row[it])
                except ValueError:
                    raise CaseError(f"{path}: line {line}: timestamp {row[it]!r} is not a number") from None
                if not math.isfinite(ts):
                    raise CaseError(f"{path}: line {line}: timestamp {row[it]!r} is not finite")
                svc, met = row[isv].strip(), row[im].strip()
                if not svc:
                    raise CaseError(f"{path}: line {line}: empty service name")
                if not met:
                    raise CaseError(f"{path}: line {line}: empty metric name")
                raw = row[iv].strip()
                if raw in MISSING_VALUES:
                    continue  # a missing sample is not an error
                try:
                    val = float(raw)
                except ValueError:
                    raise CaseError(f"{path}: line {line}: value {row[iv]!r} is not a number") from None
                if math.isinf(val):
                    raise CaseError(f"{path}: line {line}: value {row[iv]!r} is infinite")
                lists = cols.get((svc, met))
                if lists is None:
                    lists = cols[(svc, met)] = ([], [])
                lists[0].append(ts)
                lists[1].append(val)
    except UnicodeDecodeError as e:
        raise CaseError(f"{path}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise CaseError(f"{path}: CSV error: {e}") from None
    if not cols:
        raise CaseError(f"{path}: no data rows after the header")
    return [
        MetricSeries(svc, met, np.asarray(ts, dtype=float), np.asarray(vs, dtype=float))
        for (svc, met), (ts, vs) in cols.items()
    ]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CaseError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise CaseError(f"{path}: not UTF-8 text ({e})") from None


def _parse_case_json(path: Path) -> tuple[float, list[tuple[str, str]] | None, dict[str, str] | None]:
    if not path.is_file():
        raise CaseError(f"{path}: file not found (every case needs case.json with anomaly_start)")
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise CaseError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    if "anomaly_start" not in doc:
        raise CaseError(f"{path}: missing required key 'anomaly_start' (unix seconds)")
    start = doc["anomaly_start"]
    if not _finite(start):
        raise CaseError(f"{path}: 'anomaly_start' must be a number of unix seconds, found {start!r}")
    topology = None
    if doc.get("topology") is not None:
        topo = doc["topology"]
        if not isinstance(topo, list):
            raise CaseError(f"{path}: 'topology' must be a list of [caller, callee] pairs")
        topology = []
        for k, e in enumerate(topo):
            if not (isinstance(e, list | tuple) and len(e) == 2 and all(isinstance(x, str) and x for x in e)):
                raise CaseError(f"{path}: topology[{k}] must be a pair of service names, found {e!r}")
            topology.append((e[0], e[1]))
    symptom = None
    if doc.get("symptom") is not None:
        sym = doc["symptom"]
        if not isinstance(sym, dict) or not isinstance(sym.get("service"), str) or not sym["service"]:
            raise CaseError(f"{path}: 'symptom' must be an object with a 'service' name, found {sym!r}")
        if sym.get("metric") is not None and not isinstance(sym["metric"], str):
            raise CaseError(f"{path}: 'symptom.metric' must be a string, found {sym['metric']!r}")
        symptom = {"service": sym["service"]}
        if sym.get("metric"):
            symptom["metric"] = sym["metric"]
    return float(start), topology, symptom


def _parse_changes(path: Path) -> list[ChangeEvent]:
    if not path.is_file():
        return []
    doc = _load_json(path)
    if isinstance(doc, dict):
        doc = doc.get("changes", doc.get("events"))
    if not isinstance(doc, list):
        raise CaseError(f"{path}: expected a list of change events")
    out = []
    for k, e in enumerate(doc):
        if not isinstance(e, dict) or not isinstance(e.get("service"), str) or not _finite(e.get("time")):
            raise CaseError(
                f"{path}: item {k} needs 'service' (string) and 'time' (unix seconds), found {e!r}"
            )
        out.append(
            ChangeEvent(
                service=e["service"],
                time=float(e["time"]),
                kind=str(e.get("kind", "change")),
                description=str(e.get("description", "")),
            )
        )
    return out


def _parse_logs(path: Path) -> list[LogEvidence]:
    if not path.is_file():
        return []
    doc = _load_json(path)
    if isinstance(doc, dict):
        doc = doc.get("templates", doc.get("logs"))
    if not isinstance(doc, list):
        raise CaseError(f"{path}: expected a list of log-template records")
    out = []
    for k, e in enumerate(doc):
        if not isinstance(e, dict) or not isinstance(e.get("service"), str) or not _finite(e.get("count", 0)):
            raise CaseError(f"{path}: item {k} needs 'service' (string) and numeric 'count', found {e!r}")
        first = e.get("first_seen")
        if first is not None and not _finite(first):
            raise CaseError(f"{path}: item {k}: 'first_seen' must be unix seconds, found {first!r}")
        base = e.get("baseline_count", 0)
        if not _finite(base):
            raise CaseError(f"{path}: item {k}: 'baseline_count' must be a number, found {base!r}")
        out.append(
            LogEvidence(
                service=e["service"],
                template=str(e.get("template", "")),
                count=float(e.get("count", 0)),
                baseline_count=float(base),
                first_seen=None if first is None else float(first),
            )
        )
    return out


def load_case(path: str | Path) -> RcaCase:
    """Read a case folder.  Raises :class:`CaseError` naming the file on any problem."""
    p = Path(path)
    if not p.is_dir():
        raise CaseError(f"{p}: not a directory (a case is a folder with metrics.csv and case.json)")
    start, topology, symptom = _parse_case_json(p / "case.json")
    metrics = load_metrics_csv(p / "metrics.csv")
    t_min = min(float(m.timestamps.min()) for m in metrics)
    t_max = max(float(m.timestamps.max()) for m in metrics)
    if not (t_min < start <= t_max):
        raise CaseError(
            f"{p / 'case.json'}: anomaly_start {start:.0f} is outside the metrics time range "
            f"[{t_min:.0f}, {t_max:.0f}] of metrics.csv (need data before and after it)"
        )
    return RcaCase(
        path=p,
        metrics=metrics,
        anomaly_start=start,
        topology=topology,
        symptom=symptom,
        changes=_parse_changes(p / "changes.json"),
        log_evidence=_parse_logs(p / "logs.json"),
    )


def analyze_case(path: str | Path, **kwargs: Any) -> RcaResult:
    """Load a case folder and rank its root causes (what ``argus rca analyze <case>`` runs)."""
    return load_case(path).analyze(**kwargs)
