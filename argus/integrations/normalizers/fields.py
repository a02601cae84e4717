"""Field helpers for sources that do not follow Prometheus conventions: label names, tags,
numbers and timestamps.

Every alert label name must match `[a-zA-Z_][a-zA-Z0-9_]*` (Prometheus, and so Alertmanager's
fingerprint). Tags from Datadog (`availability-zone`), Splunk fields (`host.name`) or Nagios
macros are mapped onto that alphabet the same way Prometheus's relabelling does: every other
character becomes `_`, and a leading digit gets a `_` in front. The mapping is deterministic,
so the same tag always gives the same label and therefore the same fingerprint.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .common import parse_time

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(raw: str) -> str:
    name = _INVALID.sub("_", raw.strip())
    if not name:
        return "_"
    if name[0].isdigit():
        name = "_" + name
    return name


def mapped_labels(raw: dict[str, str], where: str, problems: list[str]) -> dict[str, str]:
    """Labels with their names mapped (`label_name`). Two names that map to the same label
    (`team-name` and `team_name`) with different values are refused, naming both: keeping
    either would silently drop the other, and the label is part of the alert's identity.
    Empty values are no labels (see `Alert`) and never collide."""
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in raw.items():
        if value == "":
            continue
        name = label_name(key)
        if name in out and out[name] != value:
            first, second = sorted((origin[name], key))
            problems.append(
                f"{where}: labels {first!r} and {second!r} both map to label {name!r}"
                f" with different values; rename one"
            )
            continue
        out[name] = value
        origin.setdefault(name, key)
    return out


def merge_exported(labels: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """`labels` with `extra` added where it does not clash. A name `labels` already holds with
    another value keeps its value; the clashing one is kept as `exported_<name>` (repeated as
    needed), as Prometheus keeps a scraped label that clashes with a target label: nothing is
    dropped and the winner does not depend on the order the fields came in."""
    out = dict(labels)
    for name, value in sorted(extra.items()):
        if out.get(name, value) == value:
            out[name] = value
            continue
        while name in out and out[name] != value:
            name = "exported_" + name
        out[name] = value
    return out


def tag_labels(tags: Any) -> dict[str, str]:
    """`"env:prod,service:checkout,canary"` or `["env:prod", ...]` → labels (bare tags get "true").

    A key given more than once (Datadog's multi-valued tags, `role:web,role:db`), or keys that
    map to the same name (`a-b:1,a_b:2`), keep all their values: the distinct values, sorted,
    joined with "," (`role` = "db,web"), the same whatever order the tags come in."""
    items: list[str]
    if isinstance(tags, str):
        items = [t for t in (x.strip() for x in tags.split(",")) if t]
    elif isinstance(tags, list):
        items = [str(t).strip() for t in tags if str(t).strip()]
    else:
        return {}
    values: dict[str, set[str]] = {}
    for item in items:
        key, sep, value = item.partition(":")
        values.setdefault(label_name(key), set()).add(value if sep else "true")
    # (an empty value, `env:`, is no value when the key has others)
    return {name: ",".join(sorted(vs - {""} or vs)) for name, vs in values.items()}


def number(value: Any) -> float | None:
    """A number from a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# Unix times above this are in milliseconds (Datadog's $DATE); 1e11 s is the year 5138.
_MILLIS = 1e11


def timestamp(value: Any, where: str, problems: list[str]) -> datetime | None:
    """RFC 3339, or unix seconds/milliseconds as a number or numeric string, to aware UTC."""
    n = number(value) if not isinstance(value, int | float) or isinstance(value, bool) else float(value)
    if isinstance(value, str) and n is None:
        return parse_time(value, where, problems)
    if n is not None:
        return parse_time(n / 1000.0 if abs(n) >= _MILLIS else n, where, problems)
    return parse_time(value, where, problems)
