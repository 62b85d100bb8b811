"""Datasets as in-memory uint8 tensors: CIFAR-10/100, SVHN, their reduced splits, image folders,
and splits saved as one `.npz` file."""

from pba.data.datasets import DATASET_NAMES, data_root, load_dataset, split_indices
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
    "save_npz",
    "split_indices",
]
