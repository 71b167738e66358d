"""Data: labelled image collections, their doors, transforms, splits and episodes."""
from .dataset import ImageDataset, check_image_files, collate
from .episodes import Episode, EpisodeLoader, EpisodeSampler, sample_episodes
from .images import IMAGE_EXTENSIONS, open_image
from .loaders import (BUILTIN_DATASETS, FASHION_CLASSES, from_arrays, from_csv, from_folder, load_dataset, load_unlabelled,
                      load_digits, load_fashion_mnist)
from . import real  # noqa: F401  (registers the real datasets)
from .registry import DatasetInfo, data_roots, list_datasets, register_dataset
from .splits import class_split, k_per_class, restrict_classes, stratified_split, task_sequence
from .domains import align_classes, split_domains
from .pairs import paired_domains
from .transforms import AUGMENT_CHOICES, ImageTransform, resolve_augment

__all__ = [
    "ImageDataset", "ImageTransform", "resolve_augment", "AUGMENT_CHOICES", "Episode", "EpisodeLoader", "EpisodeSampler", "sample_episodes", "collate", "check_image_files", "open_image",
    "from_arrays", "from_csv", "from_folder", "load_dataset", "load_unlabelled", "load_digits", "load_fashion_mnist",
    "paired_domains", "align_classes", "split_domains", "class_split", "k_per_class", "restrict_classes", "stratified_split", "task_sequence", "BUILTIN_DATASETS", "FASHION_CLASSES",
    "IMAGE_EXTENSIONS", "DatasetInfo", "data_roots", "list_datasets", "register_dataset",
]
