"""Datasets as in-memory uint8 tensors: CIFAR-10/100, SVHN, their reduced splits, image folders."""

from pba.data.datasets import DATASET_NAMES, data_root, load_dataset, split_indices
from pba.data.imageset import DatasetSplits, ImageSet, channel_stats, normalize

__all__ = [
    "DATASET_NAMES",
    "DatasetSplits",
    "ImageSet",
    "channel_stats",
    "data_root",
    "load_dataset",
    "normalize",
    "split_indices",
]
