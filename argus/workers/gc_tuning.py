"""Garbage-collector settings for the long-running ARGUS processes (worker, gateway)."""

from __future__ import annotations

import gc

# CPython's defaults are 700, 10, 10. Both hot paths allocate a few dozen container objects per
# alert; with the defaults the collector ran thousands of young collections a second and a full
# one every second or two, each rescanning every module, schema and client the process loaded.
# bench/ingest_bench.py, 6 s burst: the worker spent 1.8 of its 3.9 CPU seconds collecting and
# the gateway 0.7 of 3.0; with these settings and the start-up heap frozen, 0.3 and 0.1.
THRESHOLDS = (50_000, 20, 10)


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """For a process that is a worker or a gateway and nothing else. What is alive now (modules,
    schemas, clients) leaves the collector's sight for good (`gc.freeze`), and collections run
    less often; cyclic garbage still goes, in fewer and larger sweeps. Not for a process hosting
    other work (a test session): freezing keeps whatever is alive at the call forever."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
