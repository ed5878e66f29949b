"""Residual networks for 32x32 inputs (He et al. 2015, section 4.2), their plain twins, and a
bottleneck variant.

CIFAR ResNet of depth 6n+2: a 3x3 convolution (16 filters), three stages of n basic blocks with
16, 32 and 64 filters (the first block of stages 2 and 3 halves H and W with stride 2), global
average pooling, one Linear layer. ResNet-20 has 0.27M parameters, ResNet-110 1.7M.

Every skip connection goes through `nn.Residual(f, shortcut)`; the ReLU after the addition is
outside it. A block keeps its layers as its own attributes too (conv1, bn1, conv2, bn2,
shortcut), so that state_dict keys read as PyTorch's: `layer1.0.conv1.weight`.
When a block changes shape, the shortcut is
  option 'A': subsample by the stride and zero-pad the new channels (no parameters), or
  option 'B': a 1x1 convolution with that stride and batch norm (a projection).
"""
from __future__ import annotations

from ... import functional as F
from ...errors import TdsError
from ...tensor import Tensor
from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Identity, Linear
from ..module import Module
from ..pooling import AdaptiveAvgPool2d
from ..residual import Residual
from ._util import he_init, norm2d


class ZeroPadShortcut(Module):
    """Option A shortcut: x[:, :, ::stride, ::stride] with (out - in) zero channels added, half
    before and half after. (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if out_channels < in_channels:
            raise TdsError(f"ZeroPadShortcut: cannot pad {in_channels} channels down to "
                           f"{out_channels}; use a projection shortcut (option 'B')")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2)) if extra else x

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


def projection(in_channels: int, out_channels: int, stride: int = 1,
               batch_norm: bool = True) -> Sequential:
    """Option B shortcut: 1x1 convolution with the block's stride, then batch norm."""
    if batch_norm:
        return Sequential(Conv2d(in_channels, out_channels, 1, stride, bias=False),
                          norm2d(out_channels))
    return Sequential(Conv2d(in_channels, out_channels, 1, stride))


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int,
                  batch_norm: bool = True) -> Module:
    """Identity when the shape is kept; otherwise option 'A' (zero padding) or 'B' (projection)."""
    if kind not in ("A", "B"):
        raise TdsError(f"shortcut must be 'A' (zero padding) or 'B' (1x1 projection), got {kind!r}")
    if stride == 1 and in_channels == out_channels:
        return Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return projection(in_channels, out_channels, stride, batch_norm)


class _Block(Module):
    """A block that is `relu(Residual(f, shortcut)(x))`, or `relu(f(x))` when plain. Subclasses
    set their layers as attributes first (the names state_dict uses), then call _wire(f)."""

    def _wire(self, f: Sequential, shortcut: Module | None) -> None:
        if shortcut is None:
            self.body = f  # plain block: no skip connection
        else:
            self.shortcut = shortcut
            self.residual = Residual(f, shortcut)
        self.relu = ReLU()

    @property
    def is_residual(self) -> bool:
        return "residual" in self.__dict__

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) if self.is_residual else self.body(x))

    def __repr__(self) -> str:
        # The layers appear once, under their own names; then how they are wired.
        own = {id(m): k for k, m in self.named_children() if k not in ("residual", "body")}
        f = self.residual.f if self.is_residual else self.body
        path = " -> ".join(own.get(id(m), type(m).__name__) for m in f)
        lines = [f"  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in self.named_children()
                 if k not in ("residual", "body") and not isinstance(m, ReLU)]
        wiring = (f"relu(Residual(f = {path}, shortcut = shortcut))" if self.is_residual
                  else f"relu({path})")
        return f"{type(self).__name__}(\n" + "\n".join(lines) + f"\n  forward: {wiring}\n)"


class BasicBlock(_Block):
    """Two 3x3 convolutions: conv1 (stride) - bn1 - relu1 - conv2 - bn2, plus the shortcut, then
    relu. (N, in_planes, H, W) -> (N, planes, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A",
                 batch_norm: bool = True, residual: bool = True):
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 3, stride, 1, bias=not batch_norm)
        self.bn1 = norm2d(planes, batch_norm)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=not batch_norm)
        self.bn2 = norm2d(planes, batch_norm)
        f = Sequential(self.conv1, self.bn1, self.relu1, self.conv2, self.bn2)
        sc = make_shortcut(shortcut, in_planes, planes, stride, batch_norm) if residual else None
        self._wire(f, sc)


class Bottleneck(_Block):
    """1x1 (reduce to `width`) - 3x3 (stride, `groups`) - 1x1 (expand to out_planes), each
    followed by batch norm, ReLU between; plus the shortcut, then ReLU. groups > 1 is the
    ResNeXt block (`groups` = cardinality). (N, in_planes, H, W) -> (N, out_planes, H/s, W/s).
    A shape change uses a projection shortcut (option B)."""

    def __init__(self, in_planes: int, width: int, out_planes: int, stride: int = 1,
                 groups: int = 1, batch_norm: bool = True, residual: bool = True,
                 shortcut: str = "B"):
        super().__init__()
        self.conv1 = Conv2d(in_planes, width, 1, bias=not batch_norm)
        self.bn1 = norm2d(width, batch_norm)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(width, width, 3, stride, 1, groups=groups, bias=not batch_norm)
        self.bn2 = norm2d(width, batch_norm)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(width, out_planes, 1, bias=not batch_norm)
        self.bn3 = norm2d(out_planes, batch_norm)
        f = Sequential(self.conv1, self.bn1, self.relu1, self.conv2, self.bn2, self.relu2,
                       self.conv3, self.bn3)
        sc = make_shortcut(shortcut, in_planes, out_planes, stride, batch_norm) \
            if residual else None
        self._wire(f, sc)


class ResNet(Module):
    """conv1 - bn1 - relu - layer1 .. layerK (Sequentials of blocks) - avgpool - flatten - fc.
    x: (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, stem_channels: int, layers: list[Sequential], out_channels: int,
                 num_classes: int = 10, in_channels: int = 3, batch_norm: bool = True):
        super().__init__()
        self.conv1 = Conv2d(in_channels, stem_channels, 3, 1, 1, bias=not batch_norm)
        self.bn1 = norm2d(stem_channels, batch_norm)
        self.relu = ReLU()
        for i, layer in enumerate(layers):
            setattr(self, f"layer{i + 1}", layer)
        self.num_stages = len(layers)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(out_channels, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


def stages(n: int, c: int, out_channels, make_block) -> tuple[list[Sequential], int]:
    """The three stages of a CIFAR ResNet, n blocks each; the first block of stages 2 and 3 halves
    H and W (stride 2). make_block(c_in, stage, stride) -> Module; out_channels(stage) -> its
    output channels. Returns the stages and the last stage's channels."""
    layers = []
    for stage in range(3):
        blocks = []
        for i in range(n):
            blocks.append(make_block(c, stage, 2 if stage > 0 and i == 0 else 1))
            c = out_channels(stage)
        layers.append(Sequential(*blocks))
    return layers, c


def resnet_cifar(depth: int = 20, num_classes: int = 10, shortcut: str = "A",
                 batch_norm: bool = True, residual: bool = True, width: int = 16,
                 in_channels: int = 3) -> ResNet:
    """The CIFAR ResNet of He et al. (2015): depth = 6n + 2 (20, 32, 44, 56, 110, ...), n basic
    blocks per stage with width, 2 width and 4 width filters. residual=False gives the plain
    network of the same depth (no skip connections); batch_norm=False drops every BatchNorm2d
    (the convolutions then get biases). shortcut 'A' (zero padding) or 'B' (projection)."""
    if depth < 8 or (depth - 2) % 6:
        raise TdsError(f"resnet_cifar: depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
    layers, c = stages((depth - 2) // 6, width, lambda s: width * 2 ** s,
                       lambda c_in, s, stride: BasicBlock(c_in, width * 2 ** s, stride, shortcut,
                                                          batch_norm, residual))
    return ResNet(width, layers, c, num_classes, in_channels, batch_norm)


def plain_cifar(depth: int = 20, num_classes: int = 10, batch_norm: bool = True,
                width: int = 16, in_channels: int = 3) -> ResNet:
    """The plain CIFAR network of depth 6n + 2: resnet_cifar without skip connections."""
    return resnet_cifar(depth, num_classes, "A", batch_norm, False, width, in_channels)


def resnet20(num_classes: int = 10, shortcut: str = "A", batch_norm: bool = True) -> ResNet:
    """ResNet-20: 3 blocks per stage, 0.27M parameters."""
    return resnet_cifar(20, num_classes, shortcut, batch_norm)


def resnet32(num_classes: int = 10, shortcut: str = "A", batch_norm: bool = True) -> ResNet:
    """ResNet-32: 5 blocks per stage, 0.46M parameters."""
    return resnet_cifar(32, num_classes, shortcut, batch_norm)


def resnet44(num_classes: int = 10, shortcut: str = "A", batch_norm: bool = True) -> ResNet:
    """ResNet-44: 7 blocks per stage, 0.66M parameters."""
    return resnet_cifar(44, num_classes, shortcut, batch_norm)


def resnet56(num_classes: int = 10, shortcut: str = "A", batch_norm: bool = True) -> ResNet:
    """ResNet-56: 9 blocks per stage, 0.85M parameters."""
    return resnet_cifar(56, num_classes, shortcut, batch_norm)


def resnet110(num_classes: int = 10, shortcut: str = "A", batch_norm: bool = True) -> ResNet:
    """ResNet-110: 18 blocks per stage, 1.7M parameters."""
    return resnet_cifar(110, num_classes, shortcut, batch_norm)


def resnet_bottleneck_cifar(depth: int = 29, num_classes: int = 10, width: int = 16,
                            expansion: int = 4, batch_norm: bool = True, residual: bool = True,
                            in_channels: int = 3) -> ResNet:
    """A bottleneck ResNet for 32x32 (as He et al. 2016's CIFAR ResNet-164): depth = 9n + 2,
    n bottleneck blocks per stage reducing to width, 2 width, 4 width channels and expanding
    by `expansion` (outputs 64, 128, 256 by default), projection shortcuts where the shape
    changes. depth=164 gives 1.7M parameters."""
    if depth < 11 or (depth - 2) % 9:
        raise TdsError(f"resnet_bottleneck_cifar: depth must be 9n + 2 (29, 47, 164, ...), "
                       f"got {depth}")
    layers, c = stages((depth - 2) // 9, width, lambda s: width * 2 ** s * expansion,
                       lambda c_in, s, stride: Bottleneck(c_in, width * 2 ** s,
                                                          width * 2 ** s * expansion, stride, 1,
                                                          batch_norm, residual))
    return ResNet(width, layers, c, num_classes, in_channels, batch_norm)
