"""Evaluation and training-step speed on the CPU: the allocator, the evaluation batch, the layout
and torch.compile, each configuration in a fresh process, configurations taking turns.

    python benchmarks/cpu_speed.py                          # evaluation, then training steps
    python benchmarks/cpu_speed.py --part eval --models wrn_10_1 --repeats 3
    taskset -c 0 python benchmarks/cpu_speed.py --threads 1  # one core

Evaluation: `pba.training.loop.evaluate` on --images random 32x32 images, per 10,000 images:
images/s,
user and sys CPU seconds and minor page faults of the scoring alone (getrusage around it).
"1024" is the batch every device used before; "rule" is `pba.training.loop.evaluation_batch`. "kept"
is `pba.core.allocator.keep_freed_memory` (what pba's commands set), "default" glibc as it starts.

Training: steps of SGD on one batch of 64 (forward, loss, backward, clipping, step), fp32 and,
where the CPU has it natively, bf16 autocast; contiguous or channels_last; eager or
torch.compile (its compile time printed beside, as a budgeted run would pay it). Medians of
--repeats runs of each configuration, the configurations interleaved run by run, so that a
change in the machine's load hits them alike; ratios are to the first configuration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def child(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(spec["threads"])
    if spec["allocator"] == "kept":
        from pba.core.allocator import keep_freed_memory

        keep_freed_memory()
    from pba import models
    from pba.core.precision import autocast
    from pba.data import ImageSet
    from pba.training.loop import evaluate

    layout = torch.channels_last if spec["layout"] == "channels_last" else torch.contiguous_format
    model = models.build(spec["model"], 10, (32, 32)).to(memory_format=layout)
    generator = torch.Generator().manual_seed(0)
    if spec["part"] == "eval":
        n = spec["images"]
        data = ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8,
                                      generator=generator),
                        torch.randint(0, 10, (n,), generator=generator))
        norm = {"mean": (0.5,) * 3, "std": (0.25,) * 3}
        batch = None if spec["batch"] == "rule" else int(spec["batch"])
        # evaluate() takes the run's layout from pba.core.precision; this measures both layouts.
        import pba.training.loop

        pba.training.loop.memory_format = lambda precision, device: layout
        warm = ImageSet(data.images[:256], data.labels[:256])
        evaluate(model, warm, **norm, precision=spec["precision"], batch_size=batch)
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        evaluate(model, data, **norm, precision=spec["precision"], batch_size=batch)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        per = 10_000 / n
        return {"images_per_s": n / seconds, "user_s": (after.ru_utime - before.ru_utime) * per,
                "sys_s": (after.ru_stime - before.ru_stime) * per,
                "minor_faults": (after.ru_minflt - before.ru_minflt) * per}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    forward = torch.compile(model) if spec["compile"] else model
    x = torch.randn(64, 3, 32, 32, generator=generator).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (64,), generator=generator)
    device = torch.device("cpu")

    def step() -> None:
        with autocast(device, spec["precision"]):
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    start = time.perf_counter()
    step()
    step()
    warm_s = time.perf_counter() - start
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"images_per_s": 64 / statistics.median(times), "warm_up_s": warm_s,
            "sys_share": (after.ru_stime - before.ru_stime) / cpu if cpu else 0.0}


def run(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(specs: list[dict], repeats: int) -> list[list[dict]]:
    """Every spec `repeats` times, the specs taking turns."""
    results: list[list[dict]] = [[] for _ in specs]
    for _ in range(repeats):
        for i, spec in enumerate(specs):
            results[i].append(run(spec))
    return results


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=("eval", "train", "both"), default="both")
    parser.add_argument("--models", nargs="+", default=["wrn_10_1", "wrn_10_2"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--images", type=int, default=10_000, help="scored per evaluation")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import torch

    from pba.core.precision import cpu_has_native_bf16

    precisions = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    print(f"# CPU speed: torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {cpu_has_native_bf16()}, threads {args.threads}")
    if args.part in ("eval", "both"):
        print("\n## Evaluation, per 10,000 images (median of "
              f"{args.repeats} runs, {args.images:,} images a run)\n")
        table(args, precisions, {"part": "eval", "images": args.images},
              {"batch": ("1024", "rule"), "allocator": ("default", "kept"),
               "layout": ("contiguous", "channels_last")},
              {"user s": lambda runs: f"{median(runs, 'user_s'):.1f}",
               "sys s": lambda runs: f"{median(runs, 'sys_s'):.1f}",
               "minor faults": lambda runs: f"{median(runs, 'minor_faults'):,.0f}"})
    if args.part in ("train", "both"):
        print(f"\n## Training steps, batch 64 (median step of {args.steps}, median of "
              f"{args.repeats} runs; allocator kept)\n")
        table(args, precisions, {"part": "train", "steps": args.steps, "allocator": "kept"},
              {"compile": (False,) if args.no_compile else (False, True),
               "layout": ("contiguous", "channels_last")},
              {"warm-up s": lambda runs: f"{median(runs, 'warm_up_s'):.1f}",
               "sys share": lambda runs: f"{median(runs, 'sys_share'):.0%}"},
              order=("layout", "compile"))


def table(
    args: argparse.Namespace, precisions: list[str], fixed: dict, varied: dict[str, tuple],
    measured: dict[str, Callable[[list[dict]], str]], order: tuple[str, ...] | None = None,
) -> None:
    """One markdown table: for every model, precision and thread count a group of rows, one
    per combination of the `varied` settings (taking turns, `measure`), each with its images/s,
    its ratio to the group's first row and the `measured` columns. `order` is the varied
    settings' column order (default: as given)."""
    order = order or tuple(varied)
    header = ["model", "precision", "threads", *order, "images/s", "ratio", *measured]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for model, precision, threads in itertools.product(args.models, precisions, args.threads):
        specs = [{"model": model, "precision": precision, "threads": threads, **fixed,
                  **dict(zip(varied, values, strict=True))}
                 for values in itertools.product(*varied.values())]
        results = measure(specs, args.repeats)
        first = median(results[0], "images_per_s")
        for spec, runs in zip(specs, results, strict=True):
            rate = median(runs, "images_per_s")
            cells = [model, precision, str(threads), *(_cell(spec[k]) for k in order),
                     f"{rate:.0f}", f"{rate / first:.2f}", *(f(runs) for f in measured.values())]
            print("| " + " | ".join(cells) + " |", flush=True)


def _cell(value: object) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)

if __name__ == "__main__":
    main()
