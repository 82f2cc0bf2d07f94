"""Built-in seed networks: simple-cnn (8x8 digits), resnet-cifar (ResNet-20), mobilenetv2-cifar, and the
ImageNet-sized resnet18, resnet50, mobilenetv2, mobilenetv3-small, efficientnet-b0 (`seeds_imagenet`)."""

from __future__ import annotations

import na_toolkit
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.layers import LayerTypeRegistry
from na_toolkit.ir.seeds import Seed

from . import seeds_imagenet as imagenet


def simple_cnn(
    layer_types: LayerTypeRegistry, input_shape: tuple[int, ...] = (1, 8, 8), classes: int = 10
) -> Architecture:
    b = ArchitectureBuilder(input_shape, name="simple-cnn", layer_types=layer_types)
    x = b.layer("conv2d", b.input, filters=16, kernel=3)
    x = b.layer("batchnorm2d", x)
    x = b.layer("relu", x)
    x = b.layer("conv2d", x, filters=32, kernel=3)
    x = b.layer("batchnorm2d", x)
    x = b.layer("relu", x)
    x = b.layer("maxpool2d", x, kernel=2, stride=2)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    x = b.layer("dropout", x, rate=0.1)
    x = b.layer("linear", x, units=classes)
    return b.build()


def resnet_cifar(
    layer_types: LayerTypeRegistry,
    input_shape: tuple[int, ...] = (3, 32, 32),
    classes: int = 10,
    blocks_per_stage: int = 3,
) -> Architecture:
    """ResNet-20 (He et al. 2016, CIFAR variant): 3 stages x 3 basic blocks, 16/32/64 channels; the
    downsampling shortcut is a strided 1x1 conv + BN (option B)."""
    b = ArchitectureBuilder(input_shape, name="resnet-cifar", layer_types=layer_types)
    x = b.layer("conv2d", b.input, filters=16, kernel=3)
    x = b.layer("batchnorm2d", x)
    x = b.layer("relu", x)
    channels = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            y = b.layer("conv2d", x, filters=width, kernel=3, stride=stride)
            y = b.layer("batchnorm2d", y)
            y = b.layer("relu", y)
            y = b.layer("conv2d", y, filters=width, kernel=3)
            y = b.layer("batchnorm2d", y)
            shortcut = x
            if stride != 1 or channels != width:
                shortcut = b.layer("conv2d", x, filters=width, kernel=1, stride=stride)
                shortcut = b.layer("batchnorm2d", shortcut)
            x = b.layer("add", y, shortcut)
            x = b.layer("relu", x)
            channels = width
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    x = b.layer("linear", x, units=classes)
    return b.build()


def mobilenetv2_cifar(
    layer_types: LayerTypeRegistry, input_shape: tuple[int, ...] = (3, 32, 32), classes: int = 10
) -> Architecture:
    """A MobileNetV2 (Sandler et al. 2018) for 32x32 inputs: inverted residual blocks (1x1 expand,
    3x3 depthwise, 1x1 linear projection), residual add where shapes allow; width reduced for CIFAR."""
    b = ArchitectureBuilder(input_shape, name="mobilenetv2-cifar", layer_types=layer_types)
    x = b.layer("conv2d", b.input, filters=32, kernel=3)
    x = b.layer("batchnorm2d", x)
    x = b.layer("relu6", x)
    channels = 32
    # (expansion, out channels, repeats, first stride)
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = channels * t
            y = x
            if t != 1:
                y = b.layer("conv2d", y, filters=hidden, kernel=1)
                y = b.layer("batchnorm2d", y)
                y = b.layer("relu6", y)
            y = b.layer("conv2d", y, filters=hidden, kernel=3, stride=stride, groups=hidden)
            y = b.layer("batchnorm2d", y)
            y = b.layer("relu6", y)
            y = b.layer("conv2d", y, filters=c, kernel=1)
            y = b.layer("batchnorm2d", y)
            if stride == 1 and channels == c:
                y = b.layer("add", y, x)
            x = y
            channels = c
    x = b.layer("conv2d", x, filters=320, kernel=1)
    x = b.layer("batchnorm2d", x)
    x = b.layer("relu6", x)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    x = b.layer("dropout", x, rate=0.2)
    x = b.layer("linear", x, units=classes)
    return b.build()


SEEDS = (
    Seed(
        "simple-cnn",
        "small CNN for 8x8 digits (scikit-learn digits): 2 conv-bn-relu, pool, linear",
        simple_cnn,
        "digits",
    ),
    Seed(
        "resnet-cifar",
        "ResNet-20 for 32x32 CIFAR: 9 residual blocks with adds, 16/32/64 channels",
        resnet_cifar,
        "cifar10",
    ),
    Seed(
        "mobilenetv2-cifar", "MobileNetV2 for 32x32: depthwise convs, inverted residuals", mobilenetv2_cifar, "cifar10"
    ),
    Seed("resnet18", "ResNet-18 for 224x224 ImageNet (He et al. 2016): 8 basic blocks", imagenet.resnet18, "imagenet"),
    Seed("resnet50", "ResNet-50 for 224x224 ImageNet (He et al. 2016): 16 bottlenecks", imagenet.resnet50, "imagenet"),
    Seed(
        "mobilenetv2",
        "MobileNetV2 for 224x224 ImageNet (Sandler et al. 2018): 17 inverted residual blocks",
        imagenet.mobilenetv2,
        "imagenet",
    ),
    Seed(
        "mobilenetv3-small",
        "MobileNetV3-Small for 224x224 ImageNet (Howard et al. 2019): hardswish, squeeze-excitation",
        imagenet.mobilenetv3_small,
        "imagenet",
    ),
    Seed(
        "efficientnet-b0",
        "EfficientNet-B0 for 224x224 ImageNet (Tan & Le 2019): 16 MBConv blocks, silu, squeeze-excitation",
        imagenet.efficientnet_b0,
        "imagenet",
    ),
)


@na_toolkit.hookimpl
def na_register_seeds(registry):
    for seed in SEEDS:
        registry.add(seed)
