"""Source code of a standalone ``model.py`` for one architecture: it imports only torch.

The generated module writes out the architecture's plan (:mod:`invnas.space.plan`) layer by
layer, so it mirrors :class:`invnas.nn.ArchNet` attribute for attribute (``stem``,
``stages.<i>.<j>.conv1.conv``, ``...op.reduce``, ``fc``) and creates its modules in the same
order: the state dict of an invnas model loads into it unchanged and vice versa, and the same
seed gives the same initial weights. Involution is a small pure-PyTorch shift-and-add function
that TorchScript, ``torch.export`` and ``torch.compile`` all accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from invnas.space.arch import Arch
from invnas.space.plan import (
    BatchNormPlan,
    BlockPlan,
    ConvBNPlan,
    LayerPlan,
    LinearPlan,
    MaxPoolPlan,
    NetworkPlan,
    OpPlan,
    ReluPlan,
    StagePlan,
    plan_network,
)
from invnas.space.spec import SearchSpace

WEIGHTS_FILE = "weights.pt"


# What preprocess() accepts, as the training data loader (invnas.data.images) read it.
VALUE_RANGE = "uint8 in 0..255, or floating point in [0, 1]"


@dataclass(frozen=True)
class InputContract:
    """How raw images become the network's input, exactly as training prepared them: scaled to
    [0, 1] (uint8 divided by 255), resized to ``size`` (bilinear, antialiased when shrinking),
    grey replicated to ``channels``, normalised with ``mean``/``std`` (None: not recorded, e.g.
    an untrained export; then no normalisation)."""

    channels: int
    size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    class_names: tuple[str, ...]
    value_range: str = VALUE_RANGE

    @classmethod
    def unrecorded(cls, space: SearchSpace) -> InputContract:
        """The contract of an untrained export: no normalisation, classes named by index."""
        names = tuple(str(i) for i in range(space.num_classes))
        return cls(space.input.channels, space.input.size, None, None, names)

    def as_dict(self) -> dict[str, object]:
        """The contract as metrics.json records it."""
        return {
            "channels": self.channels,
            "size": self.size,
            "value_range": self.value_range,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "class_names": list(self.class_names),
            "preprocess": "model.preprocess(images): /255 for uint8, resize, replicate grey, "
            "(x - mean) / std",
        }


@dataclass(frozen=True)
class SourceInfo:
    """What the docstring of the generated file says about where the model came from."""

    title: str
    origin: str
    version: str


def _quote(text: str) -> str:
    return json.dumps(text)


def _docstring_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _layer_source(layer: LayerPlan | None) -> str:
    """The expression creating one planned layer in the generated module."""
    if layer is None:
        return "nn.Identity()"
    if isinstance(layer, ConvBNPlan):
        act = "" if layer.act else ", act=False"
        sizes = f"{layer.in_channels}, {layer.out_channels}, {layer.kernel_size}, {layer.stride}"
        return f"ConvBNAct({sizes}{act})"
    if isinstance(layer, OpPlan):
        c, k, s, g = layer.channels, layer.kernel_size, layer.stride, layer.groups
        if layer.op.kind == "conv":
            return f"nn.Conv2d({c}, {c}, {k}, {s}, {k // 2}, groups={g}, bias=False)"
        return f"Involution2d({c}, {k}, {s}, groups={g}, reduction={layer.reduction})"
    if isinstance(layer, BatchNormPlan):
        return f"nn.BatchNorm2d({layer.channels})"
    if isinstance(layer, ReluPlan):
        return "nn.ReLU(inplace=True)"
    if isinstance(layer, MaxPoolPlan):
        return "nn.MaxPool2d(3, 2, 1)"
    if isinstance(layer, LinearPlan):
        return f"nn.Linear({layer.in_features}, {layer.out_features})"
    raise TypeError(f"layer {layer!r}: not a planned layer")


def _block_source(block: BlockPlan, indent: str) -> list[str]:
    lines = [f"{indent}{'Bottleneck' if block.kind == 'bottleneck' else 'BasicBlock'}("]
    lines += [f"{indent}    {name}={_layer_source(layer)}," for name, layer in block.layers()]
    return [*lines, f"{indent}),"]


def _stage_comment(stage: StagePlan) -> str:
    first, count = stage.blocks[0], len(stage.blocks)
    return (
        f"# stage {_quote(stage.name)}: {count} {first.kind} block{'s' if count > 1 else ''}, "
        f"{first.in_channels} -> {stage.out_channels} channels, "
        f"{first.in_size}x{first.in_size} -> {stage.out_size}x{stage.out_size}"
    )


def _network_functions(plan: NetworkPlan) -> str:
    stem = "".join(f"        {_layer_source(layer)},\n" for layer in plan.stem.layers)
    stages = []
    for stage in plan.stages:
        stages += [f"        {_stage_comment(stage)}", "        nn.Sequential("]
        for block in stage.blocks:
            stages += _block_source(block, " " * 12)
        stages.append("        ),")
    body = "\n".join(stages)
    return (
        "\n\ndef make_stem() -> nn.Sequential:\n"
        '    """The layers before the first stage."""\n'
        f"    return nn.Sequential(\n{stem}    )\n"
        "\n\ndef make_stages() -> nn.ModuleList:\n"
        '    """The stages of residual blocks; each block lists its layers in creation order."""\n'
        f"    return nn.ModuleList([\n{body}\n    ])\n"
    )


_HEADER = '''\
"""{title}

{origin}
Architecture: {arch_code}
Exported by invnas {version}. Needs only PyTorch: no import of invnas.

    import model
    net = model.load()             # exported weights ({weights_file} beside this file), eval mode
    net = model.build()            # same network, random initialisation
    logits = net(torch.randn(1, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE))
    labels = model.predict(images)  # raw images -> class indices (see preprocess)
    names = [CLASS_NAMES[i] for i in labels]

Input contract: preprocess(images) takes raw images, (N, C, H, W) or (C, H, W), as
VALUE_RANGE says, to the network's input: scaled to [0, 1], resized to INPUT_SIZE x INPUT_SIZE
(bilinear, antialiased when shrinking), grey replicated to IN_CHANNELS, normalised with MEAN
and STD as in training. Feeding the network anything else costs accuracy.

The network works with torch.jit.script, torch.export.export and torch.compile.
"""

import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = {in_channels}
INPUT_SIZE = {input_size}
NUM_CLASSES = {num_classes}
WEIGHTS_FILE = "{weights_file}"
# Per-channel normalisation of the training data (None: not recorded, no normalisation).
MEAN = {mean}
STD = {std}
CLASS_NAMES = {class_names}
VALUE_RANGE = {value_range}
'''

_PREPROCESS = '''

def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Raw images, (N, C, H, W) or (C, H, W), uint8 in 0..255 or float in [0, 1], as the
    network's float32 input (N, IN_CHANNELS, INPUT_SIZE, INPUT_SIZE), prepared as in training."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dtype == torch.uint8:
        x = images.float().div_(255.0)
    else:
        x = images.float()
    if x.shape[-2] != INPUT_SIZE or x.shape[-1] != INPUT_SIZE:
        shrinking = x.shape[-1] > INPUT_SIZE or x.shape[-2] > INPUT_SIZE
        x = F.interpolate(
            x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
            antialias=shrinking,
        )
    if x.shape[1] != IN_CHANNELS:
        if x.shape[1] != 1:
            raise ValueError(f"images have {x.shape[1]} channels; expected {IN_CHANNELS} or 1")
        x = x.expand(-1, IN_CHANNELS, -1, -1)
    if MEAN is None or STD is None:
        return x.contiguous()
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def predict(images: torch.Tensor, net: Optional[nn.Module] = None) -> torch.Tensor:
    """Class indices (N,) of raw images (see preprocess); net defaults to load()."""
    if net is None:
        net = load()
    with torch.no_grad():
        return net(preprocess(images).to(next(net.parameters()).device)).argmax(1)
'''

_INVOLUTION = '''

def involution(
    x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, stride: int, padding: int
) -> torch.Tensor:
    """Involution (Li et al., CVPR 2021), computed by shift-and-add over the kernel taps.

    x is (B, C, H, W); kernel is (B, G, K*K, Ho, Wo) and holds one K x K kernel per output
    position and group; channel c uses group c // (C // G). Returns (B, C, Ho, Wo).
    """
    b, c, h, w = x.shape
    groups = kernel.shape[1]
    ho = kernel.shape[3]
    wo = kernel.shape[4]
    padded = F.pad(x, [padding, padding, padding, padding])
    padded = padded.reshape(b, groups, c // groups, h + 2 * padding, w + 2 * padding)
    out = torch.zeros([b, groups, c // groups, ho, wo], dtype=x.dtype, device=x.device)
    for u in range(kernel_size):
        for v in range(kernel_size):
            rows = padded[:, :, :, u : u + (ho - 1) * stride + 1 : stride]
            window = rows[:, :, :, :, v : v + (wo - 1) * stride + 1 : stride]
            tap = kernel[:, :, u * kernel_size + v].unsqueeze(2)
            out = out + window * tap
    return out.reshape(b, c, ho, wo)


class Involution2d(nn.Module):
    """Involution with its kernel generator: (average-pool by the stride,) 1x1 reduce, BN, ReLU,
    1x1 span to K*K*groups kernel taps per position."""

    def __init__(
        self, channels: int, kernel_size: int, stride: int, groups: int, reduction: int
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups
        reduced = max(1, channels // reduction)
        if stride > 1:
            self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
        else:
            self.pool = nn.Identity()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=False)
        self.bn = nn.BatchNorm2d(reduced)
        self.act = nn.ReLU(inplace=True)
        self.span = nn.Conv2d(reduced, kernel_size * kernel_size * groups, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.span(self.act(self.bn(self.reduce(self.pool(x)))))
        k = self.kernel_size
        b, _, ho, wo = kernel.shape
        kernel = kernel.reshape(b, self.groups, k * k, ho, wo)
        return involution(x, kernel, k, self.stride, (k - 1) // 2)
'''

_CONV_BN_ACT = '''

class ConvBNAct(nn.Module):
    """k x k convolution (no bias, "same" padding), BatchNorm, then ReLU if act."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Block(nn.Module):
    """A residual block holding the given layers as attributes, created in the order given."""

    def __init__(self, **layers: nn.Module) -> None:
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
'''

_BOTTLENECK = '''

class Bottleneck(Block):
    """1x1 reduce, spatial op (carrying the stride), 1x1 expand, plus the shortcut, then ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.act2(self.bn2(self.op(self.conv1(x)))))
        return self.act(out + self.shortcut(x))
'''

_BASIC_BLOCK = '''

class BasicBlock(Block):
    """Two spatial ops at the output width (the first striding) plus the shortcut, then ReLU.
    A 1x1 entry projection adapts the input width first when it differs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.op1(self.entry(x))))
        out = self.bn2(self.op2(out))
        return self.act(out + self.shortcut(x))
'''

_NETWORK = '''

class Net(nn.Module):
    """Stem, stages of residual blocks, global average pooling and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = make_stem()
        self.stages = make_stages()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = {fc}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def build() -> Net:
    """The network with PyTorch's default random initialisation (training mode)."""
    return Net()


def load(weights: Optional[str] = None, map_location: str = "cpu") -> Net:
    """The network with the exported weights, in eval mode.

    weights: path of a state dict saved by torch.save; default WEIGHTS_FILE beside this file.
    """
    if weights is None:
        weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS_FILE)
    state = torch.load(weights, map_location=map_location, weights_only=True)
    net = build()
    net.load_state_dict(state)
    return net.eval()
'''


def generate_source(
    space: SearchSpace, arch: Arch, info: SourceInfo, contract: InputContract | None = None
) -> str:
    """The text of a standalone ``model.py`` building ``arch`` of ``space`` with plain layers,
    with ``preprocess``/``predict`` for raw images under ``contract`` (default:
    :meth:`InputContract.unrecorded`)."""
    contract = contract or InputContract.unrecorded(space)
    plan = plan_network(space, arch)
    uses_involution = any(
        isinstance(layer, OpPlan) and layer.op.kind == "involution" for layer in plan.layers()
    )
    kinds = {block.kind for stage in plan.stages for block in stage.blocks}
    parts = [
        _HEADER.format(
            title=_docstring_text(info.title),
            origin=_docstring_text(info.origin),
            arch_code=arch.encode(),
            version=info.version,
            in_channels=space.input.channels,
            input_size=space.input.size,
            num_classes=space.num_classes,
            weights_file=WEIGHTS_FILE,
            value_range=_quote(contract.value_range),
            mean=_tuple_source(contract.mean),
            std=_tuple_source(contract.std),
            class_names=_tuple_source(contract.class_names),
        ),
    ]
    if uses_involution:
        parts.append(_INVOLUTION)
    parts.append(_CONV_BN_ACT)
    if "bottleneck" in kinds:
        parts.append(_BOTTLENECK)
    if "basic" in kinds:
        parts.append(_BASIC_BLOCK)
    parts.append(_network_functions(plan))
    parts.append(_NETWORK.replace("{fc}", _layer_source(plan.fc)))
    parts.append(_PREPROCESS)
    return "".join(parts)


def _tuple_source(values: tuple[float, ...] | tuple[str, ...] | None) -> str:
    """A Python literal of ``values`` (repr keeps floats exact; strings are JSON-quoted)."""
    if values is None:
        return "None"
    items = [_quote(v) if isinstance(v, str) else repr(float(v)) for v in values]
    text = f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    if len(text) <= 80:
        return text
    return "(\n" + "".join(f"    {item},\n" for item in items) + ")"
