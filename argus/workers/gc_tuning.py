"""Garbage-collector settings for the gateway process.

The gateway allocates a few hundred short-lived objects per alert (parsed JSON, compact
records, fingerprints) and keeps little. With CPython's default thresholds (a young
collection every 700 allocations) it keeps rescanning the objects it built at start-up;
frozen out of the collector and with young collections every 10,000 allocations, that cost
goes away.

Not used for the worker: measured with `bench/sustained_bench.py --alerts 300000`, these
settings made routing 10-15 % faster but left the worker at about 400 MB instead of 310 MB
(more garbage waits for a collection when a scope continues as new), and the worker's
memory must stay flat under a long alert storm.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython default: 700)
OLDER_THRESHOLDS = (10, 10)  # as CPython


def tune_gc() -> None:
    """Call once the process has imported and built what it keeps for its lifetime."""
    # What start-up built (modules, classes, configuration) lives as long as the process:
    # keep it out of every future collection.
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
