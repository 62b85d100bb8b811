"""Datasets as in-memory uint8 tensors: CIFAR-10/100, SVHN, their reduced splits, image folders,
torchvision dataset classes on disk, Datasets in Python, and splits saved as one `.npz` file."""

from pba.data.datasets import (
    DATASET_NAMES,
    data_root,
    load_dataset,
    save_datasets,
    split_indices,
)
from pba.data.imageset import DatasetSplits, ImageSet, channel_stats, normalize
from pba.data.npz import load_npz, save_npz

__all__ = [
    "DATASET_NAMES",
    "DatasetSplits",
    "ImageSet",
    "channel_stats",
    "data_root",
    "load_dataset",
    "load_npz",
    "normalize",
    "save_datasets",
    "save_npz",
    "split_indices",
]
