"""The long-running processes freeze their start-up heap and collect less often, yet still
collect cyclic garbage. Run in a child interpreter: freezing is for the whole process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from argus.workers.gc_tuning import THRESHOLDS

CHILD = textwrap.dedent(
    """
    import gc, weakref
    from argus.workers.gc_tuning import tune_gc

    class Node:
        pass

    kept = [Node() for _ in range(20_000)]  # alive at start-up: frozen, never rescanned
    tune_gc()
    print(gc.get_threshold(), gc.get_freeze_count() >= len(kept))

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after start-up is still garbage the collector frees
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    print(gone() is None)
    """
)


def test_tuned_process_freezes_its_start_up_heap_and_still_frees_cycles() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    settings, freed = run.stdout.splitlines()
    assert settings == f"{THRESHOLDS} True"
    assert freed == "True"
