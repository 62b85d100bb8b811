"""Every GPU figure this project owes, in one run of at most 8 minutes on one H100/H200, as one
markdown table (`bash benchmarks/gpu_check.sh` runs this and keeps the table in $OUT).

    python benchmarks/gpu_check.py [--out FILE]      # on the GPU machine
    python benchmarks/gpu_check.py --dry-run         # the same steps on the CPU at toy sizes

1. augmentation: pba's per-sample batched path at batch 256 and 8,192, sync-free (the GPU's
   default) and grouped (and on one CPU thread beside torchvision's AutoAugment per image and
   per batch of 256);
2. the search: both engines at 16 x WRN-40-2 on reduced CIFAR-10, population images/s and the
   projected wall time of `--preset paper-rcifar10`, with the GPU's utilisation sampled by
   nvidia-smi while they train;
3. `pba train`'s loop: one epoch of WRN-28-10 on 3,968 images (31 batches of 128), fp32 and
   bf16.
The data: CIFAR-10 at $PBA_DATA_DIR (on the GPU machine, carried as the device tool's README
says); the policy: the last epoch of the published reduced CIFAR-10 schedule when it is found,
else a busy fixed policy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

import augment_throughput  # noqa: E402
import search_speed  # noqa: E402
import train_throughput  # noqa: E402
from pba.augmentation.policy import Policy  # noqa: E402
from pba.augmentation.schedule import load_schedule  # noqa: E402
from pba.core.formatting import markdown_table  # noqa: E402
from pba.core.precision import device_has_native_bf16  # noqa: E402
from pba.data import load_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "rcifar10_16_wrn.txt"


@dataclass(frozen=True)
class Sizes:
    augment_images: int
    cuda_batches: tuple[int, ...]
    search: search_speed.Setup
    train_model: str
    train_batch: int
    train_steps: int
    repeats: int


FULL = Sizes(2048, (256, 8192), search_speed.Setup("wrn_40_2", 16, "cuda", 4000, 10_000),
             "wrn_28_10", 128, 31, 2)
DRY = Sizes(512, (), search_speed.Setup("wrn_10_1", 4, "cpu", 256, 256), "wrn_10_1", 64, 2, 1)


class Utilisation:
    """nvidia-smi sampling the GPU's utilisation every 200 ms inside the block."""

    def __enter__(self) -> Utilisation:
        self.file = tempfile.NamedTemporaryFile("w+", suffix=".csv")
        self.process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
             "--format=csv,noheader,nounits", "-lms", "200"], stdout=self.file)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()
        self.file.seek(0)
        rows = [line.split(",") for line in self.file.read().splitlines() if line.strip()]
        self.samples = [(float(u), float(m)) for u, m in rows]

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        use = sorted(u for u, _ in self.samples)
        return (f"median {use[len(use) // 2]:.0f}%, max {use[-1]:.0f}%, peak memory "
                f"{max(m for _, m in self.samples) / 1024:.1f} GiB ({len(use)} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps on the CPU at toy sizes (CI runs this)")
    parser.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR",
                                                             REPO.parent / "shared" / "data"))
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        sys.exit("gpu_check: no CUDA device here; --dry-run runs the steps on the CPU")
    sizes = DRY if args.dry_run else FULL
    started = time.monotonic()
    device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    rows: list[tuple[str, str, str]] = []

    data = load_dataset("cifar10", args.data_dir)
    policy = (load_schedule(REFERENCE, 200).policies[-1] if REFERENCE.is_file()
              else Policy((5, 5) * 30))
    images = data.test.images[: sizes.augment_images]
    rates = augment_throughput.measure(images, policy, data.fill, sizes.repeats,
                                       sizes.cuda_batches if cuda else ())
    for name, value in rates.items():
        rows.append(("augmentation", name, f"{value:,.0f} img/s"))
    ours = rates[augment_throughput.OURS]
    tv = rates[augment_throughput.TV_BATCH]
    rows.append(("augmentation", "pba per sample / torchvision per batch (CPU, 1 thread)",
                 f"{ours / tv:.2f}x"))
    torch.set_num_threads(os.cpu_count() or 1)

    torch.backends.cudnn.benchmark = cuda
    gpu = Utilisation() if cuda else contextlib.nullcontext()
    with gpu:
        timings = search_speed.run_setup(sizes.search, args.data_dir, sizes.repeats, False)
    setup = f"{sizes.search.population} x {sizes.search.model}"
    for name, t in timings.items():
        train, evaluation = t.paper_seconds()
        rows.append(("search", f"{setup}, {name} engine: population training",
                     f"{t.train_rate:,.0f} img/s"))
        rows.append(("search", f"{setup}, {name} engine: paper-rcifar10 projected",
                     f"{search_speed.hours(train + evaluation)} (train {search_speed.hours(train)}"
                     f" + evaluation {search_speed.hours(evaluation)})"))
    rows.append(("search", "GPU utilisation while the engines train",
                 gpu.summary() if cuda else "n/a (no GPU)"))

    where = "cuda" if cuda else "cpu"
    precisions = ["fp32"] + (["bf16"] if device_has_native_bf16(torch.device(where)) else [])
    train_rates = train_throughput.images_per_second(
        sizes.train_model, where, precisions, sizes.train_batch, sizes.train_steps,
        sizes.repeats)
    epoch_images = sizes.train_batch * sizes.train_steps
    for precision, value in train_rates.items():
        rows.append(("pba train", f"{sizes.train_model}, one epoch of {epoch_images} images, "
                     f"{precision}", f"{epoch_images / value:.2f} s ({value:,.0f} img/s)"))

    title = (f"# pba GPU check{' (DRY RUN, CPU toy sizes)' if args.dry_run else ''}: {device}, "
             f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, "
             f"{time.monotonic() - started:.0f} s")
    table = f"{title}\n\n{markdown_table(['check', 'what', 'figure'], rows)}\n"
    print("\n" + table, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(table)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
