"""Arguments that several subcommands share, so that they read the same everywhere."""

from __future__ import annotations

import argparse


def add_baseline_arguments(p: argparse.ArgumentParser) -> None:
    """--baseline and --cutout-size, their help naming every dataset's default."""
    from pba.augmentation.baseline import AUTO, NONE, PARTS
    from pba.data.datasets import DATASETS

    groups: dict[str, list[str]] = {}
    for name, spec in DATASETS.items():
        size = f" ({spec.baseline.cutout_size} px)" if "cutout" in spec.baseline.parts else ""
        groups.setdefault(f"{spec.baseline}{size}", []).append(name)
    defaults = "; ".join(f"{', '.join(names)}: {base}" for base, names in groups.items())
    p.add_argument("--baseline", metavar="PARTS",
                   help=f"the augmentation after the policy: a comma-separated subset of "
                   f"{','.join(PARTS)} (pad-4 crop, horizontal flip, Cutout), {NONE}, or "
                   f"{AUTO}: decided on the data by a short run per part scored on the "
                   f"validation split, never worse than {NONE} there "
                   "(pba.training.baseline_check). "
                   f"Default: the dataset's ({defaults}; folder:PATH: {AUTO} over "
                   "crop,flip,cutout at half the image side); recorded in config.json")
    p.add_argument("--cutout-size", metavar="PX", type=int,
                   help="side of the Cutout square (default: the dataset's, above)")


# Every source a run reads, for the --dataset help of every command.
SOURCES = ("reduced_cifar10, cifar10, reduced_cifar100, cifar100, reduced_svhn, svhn; "
           "folder:PATH (one subfolder of images per class, or train/ and test/ (and val/) "
           "subfolders of those; without them 20%% of the images are held out as the test "
           "split); torchvision:CLASS:ROOT (a torchvision.datasets class whose files are "
           "under ROOT, e.g. torchvision:STL10:~/data; its own train/test split where it has "
           "one); npz:PATH (pba.data.save_npz or save_datasets)")


def add_device_argument(p: argparse.ArgumentParser, *, default: str | None = "auto",
                        more: str = "") -> None:
    """--device in pba.core.device's grammar, the same for every command; `more` ends the help."""
    from pba.core.device import FORMS, parse_device
    from pba.core.errors import PBAError

    def device(text: str) -> str:
        try:
            return parse_device(text)
        except PBAError as err:  # argparse prints it beside the usage, with no traceback
            raise argparse.ArgumentTypeError(str(err)) from None

    p.add_argument("--device", type=device, default=default, metavar="DEVICE",
                   help=f"where to train: {FORMS}. auto (default): the GPU when there is one, "
                   f"else the CPU; cuda:N: the GPU numbered N{more}")


def add_image_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", metavar="N", type=int,
                   help="make every image N x N: the shorter side resized to N, then the "
                   "centre crop (no squashing). Default: 32 for images read from files "
                   "(folder:, torchvision:), the stored size for the named datasets and npz:. "
                   "Geometric magnitudes (translations, Cutout, crop padding) scale with the "
                   "side, so a schedule searched at 32 applies at any size; --cutout-size is "
                   "pixels at this size. Recorded in config.json; a resumed run keeps it")


def add_schedule_arguments(p: argparse.ArgumentParser, *, log_length: str) -> None:
    """--ops and --schedule-epochs, for the commands that read a schedule file; `log_length`
    says what length a PBT policy log gets without --schedule-epochs."""
    p.add_argument("--ops", metavar="MODULE:NAME",
                   help="the OpSet the schedule's policies are made of, when it has ops of "
                   "your own: an importable module or path/to/file.py, and the name in it")
    p.add_argument("--schedule-epochs", metavar="S", type=int,
                   help=f"length of the search that wrote a PBT policy log ({log_length}); "
                   "pba JSON schedules know their length")


def run_options(args: argparse.Namespace, *, defaults=None):
    """The `pba.core.options.RunOptions` of a command's flags (--device, --precision, --workers,
    --data-dir, --download, --no-progress); a device or precision not given is `defaults`'
    (default: `pba.core.options.DEFAULTS`; `AS_STARTED` for a resume: the run's own)."""
    from pba.core.options import DEFAULTS, RunOptions

    defaults = defaults or DEFAULTS
    return RunOptions(device=getattr(args, "device", None) or defaults.device,
                      precision=getattr(args, "precision", None) or defaults.precision,
                      workers=getattr(args, "workers", None),
                      data_dir=getattr(args, "data_dir", None),
                      download=bool(getattr(args, "download", False)),
                      progress=not getattr(args, "no_progress", False))
