"""ImageNet-sized seed networks (224x224x3 input, 1000 classes; structures only, no weights): ResNet-18,
ResNet-50, MobileNetV2, MobileNetV3-Small and EfficientNet-B0, each built from the table of its paper.

Conventions shared by all of them: every convolution but the classifier is bias-free and followed by batch
norm (the papers' conv-BN-activation unit); "same" padding (the IR's default) for odd kernels, which is what
the reference implementations use for these strides; the classifier is global average pooling, flatten and
a linear layer (the papers' final 1x1 convolution on a 1x1 map is that linear layer).
"""

from __future__ import annotations

from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.layers import LayerTypeRegistry

IMAGENET_INPUT = (3, 224, 224)
IMAGENET_CLASSES = 1000


def _conv_bn(
    b: ArchitectureBuilder, x: str, filters: int, kernel: int, stride: int = 1, groups: int = 1, eps: float = 1e-5
) -> str:
    x = b.layer("conv2d", x, filters=filters, kernel=kernel, stride=stride, groups=groups)
    return b.layer("batchnorm2d", x) if eps == 1e-5 else b.layer("batchnorm2d", x, eps=eps)


def _classifier(b: ArchitectureBuilder, x: str, classes: int, dropout: float = 0.0) -> str:
    x = b.layer("flatten", b.layer("global_avg_pool", x))
    if dropout:
        x = b.layer("dropout", x, rate=dropout)
    return b.layer("linear", x, units=classes)


def make_divisible(value: float, divisor: int = 8) -> int:
    """The channel rounding of the MobileNet reference code (Sandler et al. 2018; Howard et al. 2019): to the
    nearest multiple of `divisor`, never below 90 % of `value`."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


# ---- ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1) -------------------
#: blocks per stage (conv2_x .. conv5_x): Table 1's 18-layer and 50-layer columns
RESNET_BLOCKS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}


def resnet(layer_types: LayerTypeRegistry, depth: int, classes: int = IMAGENET_CLASSES) -> Architecture:
    """ResNet-18 (basic blocks: two 3x3) or ResNet-50 (bottlenecks: 1x1, 3x3, 1x1 with 4x expansion) of
    Table 1: a 7x7/2 stem conv of 64, 3x3/2 max pool, four stages of 64/128/256/512 (bottleneck inner)
    widths, the first block of conv3_x .. conv5_x downsampling with stride 2. Shortcuts are identities, and
    1x1 projections (conv + BN, option B of Sec. 3.3) where the shape changes. In a bottleneck the stride
    sits on the first 1x1, as in the paper (torchvision's "v1.5" moves it to the 3x3). Table 1: 1.8 and
    3.8 GFLOPs (multiply-adds); 11.7 M and 25.6 M parameters."""
    b = ArchitectureBuilder(IMAGENET_INPUT, name=f"resnet{depth}", layer_types=layer_types)
    x = b.layer("relu", _conv_bn(b, b.input, 64, 7, stride=2))
    x = b.layer("maxpool2d", x, kernel=3, stride=2, padding=1)
    bottleneck = depth >= 50
    channels = 64
    for stage, blocks in enumerate(RESNET_BLOCKS[depth]):
        width = 64 * 2**stage
        out = width * 4 if bottleneck else width
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            if bottleneck:
                y = b.layer("relu", _conv_bn(b, x, width, 1, stride=stride))
                y = b.layer("relu", _conv_bn(b, y, width, 3))
                y = _conv_bn(b, y, out, 1)
            else:
                y = b.layer("relu", _conv_bn(b, x, width, 3, stride=stride))
                y = _conv_bn(b, y, width, 3)
            shortcut = x if stride == 1 and channels == out else _conv_bn(b, x, out, 1, stride=stride)
            x = b.layer("relu", b.layer("add", y, shortcut))
            channels = out
    return b.build(_classifier(b, x, classes))


def resnet18(layer_types: LayerTypeRegistry) -> Architecture:
    return resnet(layer_types, 18)


def resnet50(layer_types: LayerTypeRegistry) -> Architecture:
    return resnet(layer_types, 50)


# ---- inverted residual blocks (MobileNetV2, MobileNetV3, EfficientNet's MBConv) --------------------------
def _inverted_residual(
    b: ArchitectureBuilder,
    x: str,
    channels: int,
    expanded: int,
    out: int,
    kernel: int,
    stride: int,
    activation: str,
    se: dict[str, object] | None = None,
    eps: float = 1e-5,
) -> str:
    """1x1 expansion (left out when `expanded == channels`), kxk depthwise, squeeze-excitation (when `se`
    gives its attributes), linear 1x1 projection; the residual add where the shape is kept."""
    y = x
    if expanded != channels:
        y = b.layer(activation, _conv_bn(b, y, expanded, 1, eps=eps))
    y = b.layer(activation, _conv_bn(b, y, expanded, kernel, stride=stride, groups=expanded, eps=eps))
    if se is not None:
        y = b.layer("squeeze_excitation", y, **se)
    y = _conv_bn(b, y, out, 1, eps=eps)
    return b.layer("add", y, x) if stride == 1 and channels == out else y


# ---- MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Table 2)
#: (expansion t, output channels c, repeats n, first stride s): Table 2's bottleneck rows
MOBILENETV2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2(layer_types: LayerTypeRegistry, classes: int = IMAGENET_CLASSES) -> Architecture:
    """Table 2 at width 1.0: a 3x3/2 conv of 32, 17 inverted residual blocks (relu6, linear bottleneck),
    a 1x1 conv of 1280, average pool, classifier (dropout 0.2 before it, as the reference implementation
    trains it). 300 M multiply-adds, 3.4 M parameters (Table 4)."""
    b = ArchitectureBuilder(IMAGENET_INPUT, name="mobilenetv2", layer_types=layer_types)
    x = b.layer("relu6", _conv_bn(b, b.input, 32, 3, stride=2))
    channels = 32
    for t, c, n, s in MOBILENETV2_BLOCKS:
        for i in range(n):
            x = _inverted_residual(b, x, channels, channels * t, c, 3, s if i == 0 else 1, "relu6")
            channels = c
    x = b.layer("relu6", _conv_bn(b, x, 1280, 1))
    return b.build(_classifier(b, x, classes, dropout=0.2))


# ---- MobileNetV3-Small (Howard et al. 2019, "Searching for MobileNetV3", Table 2) ---------------------
#: (kernel, expanded width, output channels, squeeze-excitation, activation, stride): Table 2's bneck rows
MOBILENETV3_SMALL_BLOCKS = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)


def mobilenetv3_small(layer_types: LayerTypeRegistry, classes: int = IMAGENET_CLASSES) -> Architecture:
    """Table 2: a 3x3/2 conv of 16 (hardswish), 11 bneck blocks, a 1x1 conv of 576 (hardswish), pool, a
    1x1 conv of 1024 without batch norm (hardswish), the classifier (dropout 0.2 before it, as the
    reference implementation). Squeeze-excitation as Sec. 5.3: relu and hardsigmoid, squeezed to
    make_divisible(expanded / 4). Table 2 marks SE on the last 1x1 conv too; the reference implementation
    (and the 2.5 M parameters of Table 3) have none there, and neither has this one. 56 M multiply-adds."""
    b = ArchitectureBuilder(IMAGENET_INPUT, name="mobilenetv3-small", layer_types=layer_types)
    eps = 1e-3  # the reference implementation's batch norm
    x = b.layer("hardswish", _conv_bn(b, b.input, 16, 3, stride=2, eps=eps))
    channels = 16
    for kernel, expanded, out, use_se, activation, stride in MOBILENETV3_SMALL_BLOCKS:
        se = {"squeeze_channels": make_divisible(expanded / 4), "gate": "hardsigmoid"} if use_se else None
        x = _inverted_residual(b, x, channels, expanded, out, kernel, stride, activation, se, eps=eps)
        channels = out
    x = b.layer("hardswish", _conv_bn(b, x, 576, 1, eps=eps))
    x = b.layer("flatten", b.layer("global_avg_pool", x))
    x = b.layer("hardswish", b.layer("linear", x, units=1024))
    x = b.layer("dropout", x, rate=0.2)
    return b.build(b.layer("linear", x, units=classes))


# ---- EfficientNet-B0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs", Table 1) --------
#: (expansion, kernel, output channels, layers, first stride): Table 1's MBConv stages 2..8 (the strides
#: from its resolutions 112, 112, 56, 28, 14, 14, 7, 7)
EFFICIENTNET_B0_STAGES = (
    (1, 3, 16, 1, 1),
    (6, 3, 24, 2, 2),
    (6, 5, 40, 2, 2),
    (6, 3, 80, 3, 2),
    (6, 5, 112, 3, 1),
    (6, 5, 192, 4, 2),
    (6, 3, 320, 1, 1),
)


def efficientnet_b0(layer_types: LayerTypeRegistry, classes: int = IMAGENET_CLASSES) -> Architecture:
    """Table 1: a 3x3/2 conv of 32, 16 MBConv blocks (silu, squeeze-excitation with silu and sigmoid,
    squeezed to a quarter of the block's input width, as MnasNet), a 1x1 conv of 1280, pool, dropout 0.2,
    the classifier. Stochastic depth is a training-time regulariser, not part of the network. 0.39 B FLOPs
    (multiply-adds), 5.3 M parameters (Table 2)."""
    b = ArchitectureBuilder(IMAGENET_INPUT, name="efficientnet-b0", layer_types=layer_types)
    eps = 1e-3  # the reference implementation's batch norm
    x = b.layer("silu", _conv_bn(b, b.input, 32, 3, stride=2, eps=eps))
    channels = 32
    for expansion, kernel, out, layers, first_stride in EFFICIENTNET_B0_STAGES:
        for i in range(layers):
            se = {"squeeze_channels": max(1, channels // 4), "activation": "silu"}
            stride = first_stride if i == 0 else 1
            x = _inverted_residual(b, x, channels, channels * expansion, out, kernel, stride, "silu", se, eps=eps)
            channels = out
    x = b.layer("silu", _conv_bn(b, x, 1280, 1, eps=eps))
    return b.build(_classifier(b, x, classes, dropout=0.2))
