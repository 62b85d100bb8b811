"""Write a third kind of image folder for the search study: fine-grained grey animals at 40 x 40.

    python benchmarks/make_grey_animals_folder.py runs/grey-animals     # 2,400 PNGs
    pba demo --dataset folder:runs/grey-animals --image-size 40 --budget 10m

Unlike CIFAR-10's ten coarse classes in colour at 32 x 32, and unlike the shapes folder's
synthetic objects: the six animal classes of CIFAR-10's training set (bird, cat, deer, dog,
frog, horse: the pairs cat/dog and deer/horse are the hard ones), turned grey (ITU-R 601
luma, stored as one channel, so pba reads them as RGB of three equal channels) and enlarged to
40 x 40 with bicubic resampling. One subfolder per class, `--per-class` images each, the first
of each class in the training set's order (deterministic; no test/ subfolder, so pba holds
out a fifth of them as the test split). Built from the CIFAR-10 files under $PBA_DATA_DIR: it
downloads nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image

from pba.data import load_dataset

ANIMALS = {2: "bird", 3: "cat", 4: "deer", 5: "dog", 6: "frog", 7: "horse"}  # CIFAR-10 labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-class", type=int, default=400)
    p.add_argument("--size", type=int, default=40)
    p.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR"))
    args = p.parse_args()
    data = load_dataset("cifar10", args.data_dir, val_size=0)
    counts = dict.fromkeys(ANIMALS, 0)
    for image, label in zip(data.train.images, data.train.labels.tolist(), strict=True):
        if label not in ANIMALS or counts[label] >= args.per_class:
            continue
        folder = args.out / ANIMALS[label]
        folder.mkdir(parents=True, exist_ok=True)
        grey = Image.fromarray(image.permute(1, 2, 0).numpy()).convert("L")
        grey.resize((args.size, args.size), Image.BICUBIC).save(
            folder / f"{counts[label]:04d}.png")
        counts[label] += 1
        if all(c >= args.per_class for c in counts.values()):
            break
    print(f"{sum(counts.values())} images of {len(ANIMALS)} classes, {args.size} x {args.size} "
          f"grey, in {args.out}")


if __name__ == "__main__":
    main()
