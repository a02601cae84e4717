"""`python -m argus.sandbox --port 9100 --log-file sandbox.log --seed 1 --tick 1.0`"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import uvicorn
import yaml

from .runtime import SandboxRuntime
from .server import build_runtime, create_app
from .topology import Topology


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m argus.sandbox", description="ARGUS's simulated microservice system"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick", type=float, default=1.0, help="simulated seconds per tick")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument(
        "--warmup", type=float, default=120.0, help="simulated seconds of baseline run before serving"
    )
    p.add_argument("--log-file", help="append JSON-lines logs here")
    p.add_argument(
        "--changes-url", help="POST deploy/rollback events here, e.g. http://127.0.0.1:8080/api/v1/changes"
    )
    p.add_argument("--topology", help="JSON or YAML file: {edges: [[caller, callee], ...], services: {...}}")
    return p


def load_topology(path: str) -> Topology:
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)
    if isinstance(data, list):
        data = {"edges": data}
    return Topology.from_dict(data)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime: SandboxRuntime = build_runtime(
        seed=args.seed,
        tick_s=args.tick,
        speed=args.speed,
        warmup_s=args.warmup,
        log_file=args.log_file,
        changes_url=args.changes_url,
        topology=load_topology(args.topology) if args.topology else None,
    )
    logging.getLogger("argus.sandbox").info(
        "sandbox on http://%s:%d: %d services, seed %d, tick %.2fs x%.1f",
        args.host, args.port, len(runtime.world.services), args.seed, args.tick, args.speed,
    )  # fmt: skip
    try:
        uvicorn.run(
            create_app(runtime), host=args.host, port=args.port, log_level="warning", access_log=False
        )
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
