"""Memory of a Ray search on the full CIFAR-10 (50,000 images): the driver's and a member's
peak resident set.

    python benchmarks/ray_memory.py [--population 2] [--cpus 1]

Loads CIFAR-10 from $PBA_DATA_DIR (45,000 training and 5,000 validation images, never
downloaded) and runs a one-epoch search of --population WRN-10-1 members with `--engine ray`
on a local Ray instance of --cpus CPUs. The images go into Ray's object store once (`ray.put`)
and each member reads them from there. Prints the size of the members' images, the driver's
peak RSS (getrusage) and each member process's peak RSS (VmHWM, read every 0.2 s while it runs).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
from pathlib import Path

from pba.search import preset
from pba.search.ray_backend import run_ray_search

MIB = 2**20


def member_peaks() -> dict[int, int]:
    """Peak RSS in bytes of every live Ray worker process running a member (Tune's function
    trainable actor), by pid."""
    peaks = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"ImplicitFunc" not in (proc / "cmdline").read_bytes():
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(proc.name)] = int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    import ray

    config = preset("smoke").replace(dataset="cifar10", train_size=45_000, val_size=5_000,
                                     population=args.population, epochs=1, interval=1,
                                     batch_size=128)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            for pid, peak in member_peaks().items():
                peaks[pid] = max(peaks.get(pid, 0), peak)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_ray_search(config, Path(tmp) / "run", preset="smoke")
    finally:
        stop.set()
        thread.join()
        ray.shutdown()
    images = (config.train_size + config.val_size) * 3 * 32 * 32
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"members' images (uint8): {images / MIB:.0f} MiB, in the object store once")
    print(f"driver peak RSS: {driver / MIB:.0f} MiB")
    for pid, peak in sorted(peaks.items()):
        print(f"member process {pid} peak RSS: {peak / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
