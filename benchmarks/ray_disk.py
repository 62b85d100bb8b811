"""Disk held by a Ray search's checkpoints: the peak against the bound.

    python benchmarks/ray_disk.py [--epochs 8] [--cpus 2]

Runs the smoke search (4 x WRN-10-1, reduced CIFAR-10 from $PBA_DATA_DIR) with `--engine ray`
on a local Ray instance of --cpus CPUs, measuring every 50 ms the bytes of the member
checkpoints Tune keeps in DIR/ray, and prints the peak beside the bound (interval + 2) x
population x one checkpoint. Tune keeps interval + 1 checkpoints per member
(`pba.search.ray_backend`), and a member holds one more for a moment while it writes a new one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pba.search import preset
from pba.search.ray_backend import run_ray_search
from pba.search.ray_log import PeakCheckpointBytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    import ray

    config = preset("smoke").replace(epochs=args.epochs)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        try:
            with PeakCheckpointBytes(out / "ray") as disk:
                run_ray_search(config, out, preset="smoke")
        finally:
            ray.shutdown()
        peak = [disk.peak]
        one = max(p.stat().st_size for p in (out / "ray").glob("*/checkpoint_*/member.pt"))
    bound = (config.interval + 2) * config.population * one
    print(f"{config.population} members, interval {config.interval}, {config.epochs} epochs; "
          f"one checkpoint: {one:,} bytes")
    print(f"peak checkpoint bytes: {peak[0]:,} ({peak[0] / one:.1f} checkpoints)")
    print(f"bound (interval + 2) x population x one: {bound:,} "
          f"({(config.interval + 2) * config.population} checkpoints) -> "
          f"{'within' if peak[0] <= bound else 'OVER'}")


if __name__ == "__main__":
    main()
