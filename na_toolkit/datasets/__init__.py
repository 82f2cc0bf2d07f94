"""Datasets for ground-truth evaluation and the dataset descriptor the predictors condition on.

    from na_toolkit.datasets import get_dataset
    ds = get_dataset("digits")            # a registered name, an image folder or an .npz file
    ds.x_train.shape, ds.descriptor.to_vector()
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError, UnknownComponentError
from .base import TEST_FRACTION, VALID_FRACTION, Dataset, DatasetSource, LabeledArrays, check_arrays, split_dataset
from .descriptor import DatasetDescriptor, describe
from .loaders import dataset_from_arrays, dataset_from_image_folder, dataset_from_npz

__all__ = [
    "Dataset",
    "DatasetDescriptor",
    "DatasetSource",
    "LabeledArrays",
    "check_arrays",
    "dataset_from_arrays",
    "dataset_from_image_folder",
    "dataset_from_npz",
    "describe",
    "get_dataset",
    "get_dataset_source",
    "split_dataset",
]

# path-based sources, kept so that their loaded datasets stay cached for the process
_path_sources: dict[tuple[str, object], DatasetSource] = {}


def get_dataset_source(name_or_path: str | os.PathLike | DatasetSource, resize: int | tuple[int, int] | None = None) -> DatasetSource:
    """A registered dataset by name; else an image folder or an `.npz` file at that path."""
    if isinstance(name_or_path, DatasetSource):
        return name_or_path
    from ..plugins import get_toolkit

    registry = get_toolkit().datasets
    key = os.fspath(name_or_path)
    if key in registry:
        return registry.get(key)
    path = Path(key)
    if path.is_dir() or (path.suffix == ".npz" and path.is_file()):
        cache_key = (str(path.resolve()), resize)
        if cache_key not in _path_sources:
            _path_sources[cache_key] = (
                dataset_from_image_folder(path, resize=resize) if path.is_dir() else dataset_from_npz(path)
            )
        return _path_sources[cache_key]
    if os.sep in key or path.suffix:
        what = "is neither a folder of class subfolders nor an .npz file" if path.exists() else "does not exist"
        raise DataError(f"dataset path {key!r} {what} (registered datasets: {', '.join(registry.names())})")
    raise UnknownComponentError("dataset", key, registry.names())


def get_dataset(
    name_or_path: str | os.PathLike | DatasetSource | Dataset,
    seed: int = 0,
    valid_fraction: float = VALID_FRACTION,
    test_fraction: float = TEST_FRACTION,
    resize: int | tuple[int, int] | None = None,
) -> Dataset:
    """Load a dataset (cached per process): a `Dataset` is returned as is; a registered name, a folder of
    class subfolders or an `.npz` file (arrays x, y) is loaded and split with `seed`."""
    if isinstance(name_or_path, Dataset):
        return name_or_path
    return get_dataset_source(name_or_path, resize=resize).load(seed, valid_fraction, test_fraction)
