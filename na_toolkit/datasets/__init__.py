"""Datasets for ground-truth evaluation and the dataset descriptor the predictors condition on.

    from na_toolkit.datasets import get_dataset
    ds = get_dataset("digits", toolkit.datasets)   # a registered name, an image folder or an .npz file
    ds.x_train.shape, ds.descriptor.to_vector()

The registered datasets come in explicitly (`toolkit.datasets`, or None for paths only): nothing here
reaches a process-wide plugin manager.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..caches import lru_dict
from ..errors import DataError, UnknownComponentError
from ..files import looks_like_path, nearby_paths, warn_shadowed
from ..registry import Registry, require_registry
from .base import (
    TEST_FRACTION,
    VALID_FRACTION,
    Dataset,
    DatasetSource,
    LabeledArrays,
    RawInput,
    check_arrays,
    check_ready,
    split_dataset,
)
from .descriptor import DatasetDescriptor, describe
from .loaders import dataset_from_arrays, dataset_from_image_folder, dataset_from_npz, image_size

__all__ = [
    "Dataset",
    "DatasetDescriptor",
    "DatasetSource",
    "LabeledArrays",
    "RawInput",
    "check_arrays",
    "check_ready",
    "dataset_from_arrays",
    "dataset_from_image_folder",
    "dataset_from_npz",
    "describe",
    "get_dataset",
    "get_dataset_source",
    "get_descriptor",
    "looks_like_path",
    "split_dataset",
]

#: path-based sources kept (with the datasets they loaded) for the process, least recently used dropped
PATH_SOURCES_KEPT = 8
_path_sources = lru_dict("datasets.path_sources", PATH_SOURCES_KEPT)


def _edited(path: Path) -> tuple[int, ...]:
    """When and how a dataset file (mtime, size) or image folder (its and its class folders' mtimes: adding or
    removing an image changes its class folder's) was last changed."""
    if path.is_file():
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    return tuple(sorted(p.stat().st_mtime_ns for p in (path, *path.iterdir()) if p.is_dir()))


def get_dataset_source(
    name_or_path: str | os.PathLike[str] | DatasetSource,
    datasets: Registry[DatasetSource] | None,
    resize: int | tuple[int, int] | None = None,
) -> DatasetSource:
    """A dataset registered in `datasets` (the toolkit's registry) by name; else an image folder or an
    `.npz` file at that path (`datasets=None`: paths only), its images resized to `resize` (PX or (H, W)).
    A registered name is that dataset even where a file or folder of the name exists (a warning says how to
    read that instead: `./NAME`); without a registry, a bare name (`looks_like_path`: no) is refused rather
    than read from the working directory, where it would stand in for the registered dataset of that name."""
    if isinstance(name_or_path, DatasetSource):
        return name_or_path
    datasets = require_registry(datasets, "datasets")
    key = os.fspath(name_or_path)
    known = datasets.names() if datasets is not None else []
    path = Path(key).expanduser()  # '~/data/imgs' as a shell would read it
    registered = datasets is not None and key in datasets
    if resize is not None and (registered or not path.is_dir()):
        folder = f" (the registered dataset; the folder of that name is './{key}')" if path.is_dir() else ""
        raise DataError(f"resize ({resize}) applies to image-folder datasets; {key!r} is not one: leave it out{folder}")
    resize = image_size(resize)  # (H, W): an int, a tuple and a list of one size are one cache entry
    if registered and datasets is not None:
        warn_shadowed("dataset", key, path)
        return datasets.get(key)
    if datasets is None and not looks_like_path(key) and path.exists():
        raise DataError(
            f"dataset {key!r} is a bare name, which means a registered dataset, but no dataset registry was given "
            f"to look it up in: to read the {'folder' if path.is_dir() else 'file'} of that name, write './{key}'; "
            "for a registered dataset, pass the toolkit's (toolkit.datasets)"
        )
    if path.is_dir() or (path.suffix == ".npz" and path.is_file()):
        cache_key = (str(path.resolve()), resize, _edited(path))  # a file saved again is read again
        source: DatasetSource | None = _path_sources.get(cache_key)
        if source is None:
            source = dataset_from_image_folder(path, resize=resize) if path.is_dir() else dataset_from_npz(path)
            _path_sources[cache_key] = source
        return source
    nearby = nearby_paths(path)
    meant = f"did you mean the path {' or '.join(map(repr, nearby))}?" if nearby else ""
    if os.sep in key or path.suffix or path.exists():
        what = "is neither a folder of class subfolders nor an .npz file" if path.exists() else "does not exist"
        if path.suffix == ".npy" and path.is_file():
            what = (
                "is an .npy file, which holds one array; a dataset holds images and labels: save them together as "
                f"an .npz, np.savez({str(path.with_suffix('.npz'))!r}, x=images, y=labels), and give that"
            )
        raise DataError(
            f"dataset path {key!r} {what} (registered datasets: {', '.join(known) or 'none given'})"
            + (f"; {meant}" if meant else "")
        )
    if datasets is None:
        raise DataError(
            f"dataset {key!r} is a name, but no dataset registry was given to look it up in: pass the "
            "toolkit's (toolkit.datasets), or a folder or .npz path" + (f"; {meant}" if meant else "")
        )
    raise unknown_dataset(key, known, path.parent)


def unknown_dataset(name: str, known: list[str], folder: Path) -> UnknownComponentError:
    """The error of a dataset `name` that is no registered dataset (`known`) nor a file or folder in `folder`
    (where its relative paths are read from: the working directory, a search config's folder), with the
    folders and `.npz` files there it may have meant."""
    nearby = nearby_paths(folder / name)
    meant = f": did you mean the path {' or '.join(map(repr, nearby))}?" if nearby else ""
    return UnknownComponentError(
        "dataset", name, known, f"Nor is it a file or folder in {str(folder.resolve())!r}{meant}"
    )


def get_dataset(
    name_or_path: str | os.PathLike[str] | DatasetSource | Dataset,
    datasets: Registry[DatasetSource] | None,
    seed: int = 0,
    valid_fraction: float = VALID_FRACTION,
    test_fraction: float = TEST_FRACTION,
    resize: int | tuple[int, int] | None = None,
) -> Dataset:
    """Load a dataset (cached per process): a `Dataset` is returned as is (`check_ready`: unless it looks
    channels-last without saying its layout); a name registered in `datasets`
    (the toolkit's registry), a folder of class subfolders or an `.npz` file (arrays x, y) is loaded and
    split with `seed`."""
    if isinstance(name_or_path, Dataset):
        return check_ready(name_or_path)
    return get_dataset_source(name_or_path, datasets, resize=resize).load(seed, valid_fraction, test_fraction)


def get_descriptor(
    name_or_path: str | os.PathLike[str] | DatasetDescriptor, datasets: Registry[DatasetSource] | None
) -> DatasetDescriptor:
    """A dataset's descriptor: a `DatasetDescriptor` as is; a `.json` file holding one (a descriptor object,
    or the output of `na-toolkit datasets --json` naming one dataset) without loading any data; else the
    descriptor of `get_dataset(name_or_path, datasets)`."""
    if isinstance(name_or_path, DatasetDescriptor):
        return name_or_path
    key = os.fspath(name_or_path)
    if key.lower().endswith(".json"):
        from ..files import parse_json, read_text

        doc = parse_json(read_text(key, "dataset descriptor", DataError), f"dataset descriptor {key!r}", DataError)
        if isinstance(doc, dict) and isinstance(doc.get("datasets"), list):  # `na-toolkit datasets --json`
            if len(doc["datasets"]) != 1:
                raise DataError(
                    f"{key!r} describes {len(doc['datasets'])} datasets; keep the one to use "
                    "(`na-toolkit datasets NAME --json`)"
                )
            doc = doc["datasets"][0].get("descriptor") if isinstance(doc["datasets"][0], dict) else None
        try:
            return DatasetDescriptor.from_json(doc)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"dataset descriptor {key!r} is malformed: {exc}") from None
    return get_dataset(name_or_path, datasets).descriptor
