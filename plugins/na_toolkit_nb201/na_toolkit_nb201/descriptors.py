"""Dataset descriptors of NAS-Bench-201's three datasets, written from their published statistics (the images
are not shipped here, so nothing is computed from pixels).

Sources:
- CIFAR-10 / CIFAR-100: Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (tech. report,
  2009): 60,000 32x32 colour images, 10 classes of 6,000 / 100 classes of 600, 50,000 train + 10,000 test.
- ImageNet16-120: Chrabaszcz, Loshchilov & Hutter, "A Downsampled Variant of ImageNet as an Alternative to the
  CIFAR datasets" (arXiv:1707.08819, 2017) gives ImageNet at 16x16; NAS-Bench-201 (Dong & Yang, ICLR 2020,
  Sec. 2.3) keeps its first 120 classes: 151.7K train, 3K valid, 3K test images.
- Splits as NAS-Bench-201 trains the columns the table carries (Dong & Yang 2020, Sec. 2.3): CIFAR-10
  "valid" columns train on 25K and validate on the other 25K of the training set (10K test); CIFAR-100 trains on
  the 50K and splits its 10K test set into 5K valid + 5K test; ImageNet16-120 likewise 151.7K / 3K / 3K.
- Channel mean / std (pixel values in [0, 1]): the normalisation constants of NAS-Bench-201's own data loader
  (`get_datasets` in github.com/D-X-Y/AutoDL-Projects, xautodl/datasets/get_dataset_with_transform.py):
  CIFAR-10 (125.3, 123.0, 113.9) / (63.0, 62.1, 66.7), CIFAR-100 (129.3, 124.1, 112.4) / (68.2, 65.4, 70.4),
  ImageNet16 (122.68, 116.66, 104.01) / (63.22, 61.26, 65.09), each divided by 255.

Statistics that are not published (the pixel entropy, gradients, neighbour correlation, background share,
nearest-centroid accuracy, and ImageNet16-120's per-class counts) are NaN: a predictor leaves a descriptor
entry that is unknown for any of its training datasets out of its features (`FeatureMatrix`). For the
per-class counts of ImageNet16-120 the ImageNet-1k range (732..1,300 images a class, Russakovsky et al.,
IJCV 2015) is given as min/max, but its balance and label entropy stay unknown.
"""

from __future__ import annotations

import math

from na_toolkit.datasets import DatasetDescriptor

NAN = math.nan


def _published(
    name: str,
    train: int,
    valid: int,
    test: int,
    classes: int,
    size: int,
    per_class: tuple[int, int],
    balanced: bool,
    mean_255: tuple[float, ...],
    std_255: tuple[float, ...],
) -> DatasetDescriptor:
    return DatasetDescriptor(
        name=name,
        samples=train + valid + test,
        train_samples=train,
        valid_samples=valid,
        test_samples=test,
        classes=classes,
        input_shape=(3, size, size),
        samples_per_class_min=per_class[0],
        samples_per_class_max=per_class[1],
        class_entropy=1.0 if balanced else NAN,
        class_balance_ratio=1.0 if balanced else NAN,
        channel_mean=tuple(round(v / 255, 6) for v in mean_255),
        channel_std=tuple(round(v / 255, 6) for v in std_255),
        pixel_entropy_bits=NAN,
        mean_gradient=NAN,
        neighbour_correlation=NAN,
        background_fraction=NAN,
        centroid_accuracy=NAN,
    )


CIFAR10 = _published(
    "cifar10", 25_000, 25_000, 10_000, 10, 32, (6_000, 6_000), True, (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
)
CIFAR100 = _published(
    "cifar100", 50_000, 5_000, 5_000, 100, 32, (600, 600), True, (129.3, 124.1, 112.4), (68.2, 65.4, 70.4)
)
IMAGENET16_120 = _published(
    "ImageNet16-120",
    151_700,
    3_000,
    3_000,
    120,
    16,
    (732, 1_300),
    False,
    (122.68, 116.66, 104.01),
    (63.22, 61.26, 65.09),
)

#: the table's column prefix -> the descriptor of that dataset
DESCRIPTORS: dict[str, DatasetDescriptor] = {"c10": CIFAR10, "c100": CIFAR100, "in16": IMAGENET16_120}
