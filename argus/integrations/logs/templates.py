"""Log template mining with Drain (the `drain3` package, maintained fork `drain3-improved`).

Drain groups log lines into templates online: `payment 8812 failed after 431 ms` and
`payment 17 failed after 9 ms` become `payment <NUM> failed after <NUM> ms`. Before Drain sees
a line, the masking rules below replace the variable parts that Drain's token similarity does
not catch on its own (UUIDs, IPs, hex ids, quoted strings, durations, paths with ids), so the
same event always gives the same template.

Why the fork: `drain3` 0.9.11 (2022) pins `cachetools==4.2.1` and `jsonpickle==1.5.1` exactly,
which would hold every other package needing either one back forever. `drain3-improved`
(IBM's Drain3 continued by Red Hat, same `drain3` module and API) needs `cachetools>=7` and
`jsonpickle>=4.1`, has releases for Python 3.10-3.13, and nothing else in ARGUS pins either.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

# drain3 logs every cluster it creates at INFO; that is our data, not the worker's log.
logging.getLogger("drain3").setLevel(logging.WARNING)

_MASKS = [
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\w.])", "IP"),
    (r"(?<![\w])0x[0-9a-fA-F]+(?![\w])", "HEX"),
    (r"(?<![\w])[0-9a-fA-F]{12,}(?![\w])", "HEX"),
    (r"\"[^\"]{0,200}\"", "STR"),
    (r"(?<![\w.])\d+(?:\.\d+)?(?:ms|s|us|µs|ns|m|h|MB|KB|GB|B|%)(?![\w])", "NUM"),
    (r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
]


def miner_config(sim_th: float = 0.4, depth: int = 4, max_clusters: int | None = 2000) -> TemplateMinerConfig:
    config = TemplateMinerConfig()
    config.drain_sim_th = sim_th
    config.drain_depth = depth
    config.drain_max_clusters = max_clusters
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in _MASKS]
    config.profiling_enabled = False
    config.parametrize_numeric_tokens = True
    return config


@dataclass(frozen=True)
class TemplateCount:
    template: str
    count: int
    example: str


class LogTemplateMiner:
    """One Drain tree. Feed it lines with `add`; `templates()` lists what it has learned."""

    def __init__(self, sim_th: float = 0.4, depth: int = 4, max_clusters: int | None = 2000) -> None:
        self._miner = TemplateMiner(config=miner_config(sim_th, depth, max_clusters))

    def add(self, line: str) -> tuple[int, str, bool]:
        """Learn from `line`: (template id, template, whether this line created the template)."""
        result = self._miner.add_log_message(line.strip())
        return (
            int(result["cluster_id"]),
            str(result["template_mined"]),
            result["change_type"] == "cluster_created",
        )

    def match(self, line: str) -> str | None:
        """The template `line` belongs to, without learning from it; None if it fits none."""
        cluster = self._miner.match(line.strip(), full_search_strategy="fallback")
        return cluster.get_template() if cluster is not None else None

    def templates(self) -> list[tuple[int, str, int]]:
        return sorted(
            ((c.cluster_id, c.get_template(), c.size) for c in self._miner.drain.clusters),
            key=lambda t: -t[2],
        )


def new_templates(baseline: Iterable[str], window: Iterable[str]) -> list[TemplateCount]:
    """Templates of `window` lines that were not seen in `baseline`, most frequent first.

    The miner learns the baseline first; a window line that fits a learned template (even one
    Drain generalises a little to absorb it) is not new. Lines of one new template are counted
    together, so a surge of one new error is one entry with its count.
    """
    miner = LogTemplateMiner()
    known: set[int] = set()
    for line in baseline:
        known.add(miner.add(line)[0])
    counts: Counter[int] = Counter()
    examples: dict[int, str] = {}
    for line in window:
        cid, _, _ = miner.add(line)
        if cid in known:
            continue
        counts[cid] += 1
        examples.setdefault(cid, line.strip())
    final = {cid: template for cid, template, _ in miner.templates()}
    return [TemplateCount(final[cid], n, examples[cid]) for cid, n in counts.most_common() if cid in final]
