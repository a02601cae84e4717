"""Garbage-collector settings for the long-running ARGUS processes (worker, gateway)."""

from __future__ import annotations

import gc

# CPython's defaults are 700, 10, 10. Routing new alerts allocates a few dozen container objects
# per alert, most of which live on in the scope's state, so the long-lived heap keeps growing and
# the defaults ran a full collection every second or two, each rescanning every module, schema
# and client the process loaded. Young collections stay as they are (raising them kept cyclic
# garbage alive longer: +90 MB RSS at 300,000 alerts in bench/sustained_bench.py); full ones
# wait ten times longer. bench/ingest_bench.py, 6 s burst of new alerts: the worker spent 1.8 of
# its 3.9 CPU seconds collecting and the gateway 0.7 of 3.0; 0.3 and 0.15 with this and the
# start-up heap frozen (freezing alone: 1.1 s in the worker).
THRESHOLDS = (700, 10, 100)


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """For a process that is a worker or a gateway and nothing else. What is alive now (modules,
    schemas, clients) leaves the collector's sight for good (`gc.freeze`), and full collections
    run less often; cyclic garbage still goes. Not for a process hosting other work (a test
    session): freezing keeps whatever is alive at the call forever."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
