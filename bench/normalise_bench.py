"""The gateway's CPU per alert before Temporal: normalising Alertmanager v2 alerts and building the
batch the coalescer sends (fingerprints included), in this process, one core.

    .venv/bin/python bench/normalise_bench.py [--batches 400] [--requests 9] [--size 50]

Each batch is `--requests` requests of `--size` new alerts (the ingest benchmark's shape: every
alert new, so nothing is cached), normalised by `compact_from_v2` and packed by
`CompactBatch.of`. Also prints the fingerprints alone: side by side in numpy lanes
(`labels_fingerprints`) against one by one (`labels_fingerprint`).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import make_batch  # noqa: E402

from argus.integrations.normalizers.fast_v2 import compact_from_v2  # noqa: E402
from argus.models.alert import CompactBatch, labels_fingerprint, labels_fingerprints  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--requests", type=int, default=9)
    ap.add_argument("--size", type=int, default=50)
    args = ap.parse_args()
    now = datetime.now(UTC)
    payloads = [
        [make_batch("bench", c, b, args.size, 50) for c in range(args.requests)] for b in range(args.batches)
    ]
    per_batch = args.requests * args.size
    alerts = args.batches * per_batch

    started = time.process_time()
    label_sets = []
    for requests in payloads:
        records = [rec for body in requests for rec in compact_from_v2(body, now)]
        CompactBatch.of(uuid.uuid4().hex, records)
        label_sets.append([rec["l"] for rec in records])
    print(f"normalise + batch: {(time.process_time() - started) / alerts * 1e6:.1f} µs per alert")

    started = time.process_time()
    lanes = [labels_fingerprints(sets) for sets in label_sets]
    lanes_us = (time.process_time() - started) / alerts * 1e6
    started = time.process_time()
    single = [[labels_fingerprint(labels) for labels in sets] for sets in label_sets]
    single_us = (time.process_time() - started) / alerts * 1e6
    assert lanes == single, "the lanes must give Alertmanager's fingerprints"
    print(
        f"fingerprints, batches of {per_batch}: {lanes_us:.1f} µs per alert side by side, "
        f"{single_us:.1f} one by one"
    )


if __name__ == "__main__":
    main()
