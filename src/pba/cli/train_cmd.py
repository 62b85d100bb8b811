"""`pba train`: train one model with a PBA schedule (or another augmentation), resumably; the
run directory is `pba.runs.training_run`'s."""

from __future__ import annotations

import argparse
from pathlib import Path

from pba.core.timing import TimeBreakdown


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import (
        SOURCES,
        add_baseline_arguments,
        add_device_argument,
        add_image_size_argument,
        add_schedule_arguments,
    )

    p = sub.add_parser(
        "train",
        help="train a model with a PBA schedule or a baseline augmentation",
        description="Train one model with the paper's recipe (SGD, Nesterov momentum 0.9, cosine "
        "learning rate to 0, gradient clipping at norm 5) and report its test error. The "
        "learning rate, weight decay, epochs, batch size and baseline default to the paper's "
        "values for the dataset and model. Writes config.json, metrics.jsonl, checkpoint.pt "
        "(every epoch) and result.json into --out (see pba.runs.training_run).",
        epilog="example: pba train --dataset reduced_cifar10 --model wrn_28_10 --augment pba "
        "--schedule rcifar10_16_wrn.txt --out runs/rc10_wrn",
    )
    p.add_argument("--dataset", metavar="SOURCE", help=SOURCES)
    add_image_size_argument(p)
    p.add_argument("--model", metavar="NAME",
                   help="wrn_10_1, wrn_16_1, wrn_40_2, wrn_28_10, "
                   "shake_shake_26_2x{32,96,112}d, pyramidnet_272_200, or another valid size")
    p.add_argument("--augment", metavar="MODE",
                   help="none, baseline (--baseline's parts), pba (needs --schedule), "
                   "ramp (the search-free schedule: every op equally likely, probability and "
                   "magnitude raised from none to the strongest over --epochs), autoaugment, "
                   "randaugment or trivialaugment (torchvision's, per image, then "
                   "the baseline); default: pba with --schedule, else baseline")
    p.add_argument("--schedule", metavar="FILE", type=Path,
                   help="PBA schedule: pba JSON (from `pba search`) or a Ray Tune PBT policy "
                   "log such as the published rcifar10_16_wrn.txt; stretched to --epochs")
    add_schedule_arguments(p, log_length="default: the paper's search on --dataset, 200 for CIFAR "
                           "and 160 for SVHN")
    p.add_argument("--epochs", metavar="E", type=int,
                   help="epochs of the whole run (default: the paper's)")
    p.add_argument("--lr", metavar="LR", type=float,
                   help="base learning rate (default: the paper's)")
    p.add_argument("--lr-schedule", choices=("cosine", "step"),
                   help="cosine (to 0 over the run) or step (x0.1 at half the epochs, x0.01 at "
                   "three quarters); default: step for WRNs on SVHN, as the reference code "
                   "trained them, else cosine")
    p.add_argument("--wd", metavar="WD", dest="weight_decay", type=float,
                   help="L2 weight decay (default: the paper's)")
    p.add_argument("--batch-size", metavar="N", type=int, help="default 128 (PyramidNet 64)")
    add_baseline_arguments(p)
    p.add_argument("--seed", metavar="N", type=int,
                   help="seed of the weights, data order and augmentation (default 0); the "
                   "dataset's reduced split is always the paper's")
    p.add_argument("--train-size", metavar="N", type=int,
                   help="training images (default: the dataset's, e.g. 4,000 for reduced_cifar10)")
    p.add_argument("--val-size", metavar="N", type=int,
                   help="validation images, evaluated after the last epoch (default: the "
                   "dataset's, e.g. the other 46,000 for reduced_cifar10; 0 for none)")
    p.add_argument("--eval-every", metavar="N", type=int,
                   help="also evaluate the test set every N epochs (default: after the last only)")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same results as an "
                   "uninterrupted run on the CPU); settings come from its config.json")
    add_device_argument(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="bf16: bf16 autocast and channels_last (2-3x faster on GPUs and on CPUs "
                   "with AVX512-BF16 or AMX); fp32: plain float32; auto (default): bf16 where "
                   "the device has native bf16, else fp32. A resumed run keeps its own")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="dataset root (default: $PBA_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset into the root if it is missing")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="folder:PATH: leave unreadable image files out (counted in "
                   "result.json) instead of stopping with the list of them")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no line per epoch (metrics.jsonl has them)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (a minute or more of compilation first; on a "
                   "2-core CPU it gave no speed-up, so it is off by default)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log every epoch's metrics (and the policy strength) to "
                   "DIR/tensorboard (pip install 'pba[tensorboard]')")
    return p


def run(args: argparse.Namespace) -> int:
    from pba.cli.options import run_options
    from pba.runs import training_run

    given = _given(args)
    if args.resume:
        config = training_run.resumed_config(args.out, given)
    else:
        config = training_run.new_config(given, device=args.device, data_dir=args.data_dir,
                                         skip_unreadable=args.skip_unreadable)
    result = training_run.fit(config, args.out, options=run_options(args), resume=args.resume,
                              tensorboard=args.tensorboard, compile=args.compile)
    print(f"test error {result['test_error']:.2f}% ({args.out / training_run.RESULT})")
    print(f"time: {TimeBreakdown.from_dict(result['time']).describe()}")
    return 0


def _given(args: argparse.Namespace) -> dict:
    """The run settings given on the command line, in config form."""
    from pba.runs.training_config import RUN_KEYS

    return {key: getattr(args, key) for key in RUN_KEYS if getattr(args, key) is not None}
