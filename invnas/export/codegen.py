"""Source code of a standalone ``model.py`` for one architecture: it imports only torch.

The generated module mirrors :class:`invnas.nn.ArchNet` attribute for attribute (``stem``,
``stages.<i>.<j>.conv1.conv``, ``...op.reduce``, ``fc``), so the state dict of an invnas model
loads into it unchanged and vice versa. Involution is a small pure-PyTorch shift-and-add
function that TorchScript, ``torch.export`` and ``torch.compile`` all accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from invnas.space.arch import Arch
from invnas.space.spec import OpChoice, SearchSpace, StemSpec

WEIGHTS_FILE = "weights.pt"


@dataclass(frozen=True)
class SourceInfo:
    """What the docstring of the generated file says about where the model came from."""

    title: str
    origin: str
    version: str


def _op_tuple(op: OpChoice, channels: int) -> str:
    if op.kind == "conv":
        return f'("conv", {op.kernel_size}, {op.groups or 1})'
    return f'("involution", {op.kernel_size}, {op.groups_for(channels)}, {op.reduction or 4})'


def _quote(text: str) -> str:
    return json.dumps(text)


def _docstring_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _uses_involution(space: SearchSpace, arch: Arch) -> bool:
    return space.stem.kind == "rednet" or any(
        op.kind == "involution" for stage in arch.stages for op in stage.ops
    )


def _arch_constant(space: SearchSpace, arch: Arch) -> str:
    lines = [
        "# One entry per stage: (name, block, width, inner width, stride, ops). The first block of",
        "# a stage takes the previous stage's width and carries the stride. One op per block:",
        '# ("conv", kernel_size, groups) or ("involution", kernel_size, groups, reduction).',
        "ARCH = [",
    ]
    for spec, stage in zip(space.stages, arch.stages, strict=True):
        inner = spec.inner_width(stage.width)
        lines.append(
            f"    ({_quote(spec.name)}, {_quote(spec.block)}, {stage.width}, {inner}, "
            f"{spec.stride}, ["
        )
        lines.extend(f"        {_op_tuple(op, inner)}," for op in stage.ops)
        lines.append("    ]),")
    lines.append("]")
    return "\n".join(lines)


def _stem_function(stem: StemSpec, in_channels: int) -> str:
    c = stem.channels
    if stem.kind == "conv":
        layers = [f"ConvBNAct({in_channels}, {c}, {stem.kernel_size}, {stem.stride})"]
        if stem.pool:
            layers.append("nn.MaxPool2d(3, 2, 1)")
    elif stem.kind == "resnet":
        layers = [f"ConvBNAct({in_channels}, {c}, 7, 2)", "nn.MaxPool2d(3, 2, 1)"]
    elif stem.kind == "rednet":
        half = c // 2
        layers = [
            f"ConvBNAct({in_channels}, {half}, 3, 2)",
            f"Involution2d({half}, 3, 1, groups={half // 16}, reduction=4)",
            f"nn.BatchNorm2d({half})",
            "nn.ReLU(inplace=True)",
            f"ConvBNAct({half}, {c}, 3)",
            "nn.MaxPool2d(3, 2, 1)",
        ]
    else:
        raise ValueError(f"stem kind {stem.kind!r}: unknown; expected conv, resnet or rednet")
    body = "".join(f"        {layer},\n" for layer in layers)
    return (
        "def make_stem() -> nn.Sequential:\n"
        '    """The layers before the first stage."""\n'
        f"    return nn.Sequential(\n{body}    )\n"
    )


def _block_function(kinds: set[str]) -> str:
    bottleneck = "return Bottleneck(in_channels, out_channels, inner_channels, op, stride)"
    basic = "return BasicBlock(in_channels, out_channels, op, stride)"
    if kinds == {"bottleneck", "basic"}:
        body = f'    if kind == "bottleneck":\n        {bottleneck}\n    {basic}\n'
    else:
        body = f"    {bottleneck if 'bottleneck' in kinds else basic}\n"
    return (
        "\n\ndef make_block(\n"
        "    kind: str, in_channels: int, out_channels: int, inner_channels: int, op: tuple, "
        "stride: int\n"
        ") -> nn.Module:\n"
        '    """One residual block of a stage (ARCH names its kind)."""\n'
        f"{body}"
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


def make_op(op: tuple, channels: int, stride: int) -> nn.Module:
    """The spatial operation of a block, from its ARCH entry (no norm, no activation)."""
    kind, kernel_size, groups = op[0], op[1], op[2]
    if kind == "conv":
        padding = kernel_size // 2
        return nn.Conv2d(
            channels, channels, kernel_size, stride, padding, groups=groups, bias=False
        )
{involution_branch}


def make_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride, act=False)
'''

_INVOLUTION_BRANCH = """\
    return Involution2d(channels, kernel_size, stride, groups=groups, reduction=op[3])"""

_NO_INVOLUTION_BRANCH = """\
    raise ValueError("unknown op " + repr(op))"""

_BOTTLENECK = '''

class Bottleneck(nn.Module):
    """1x1 reduce, spatial op (carrying the stride), 1x1 expand, plus the shortcut, then ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, inner_channels: int, op: tuple, stride: int
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, inner_channels, 1)
        self.op = make_op(op, inner_channels, stride)
        self.bn2 = nn.BatchNorm2d(inner_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = ConvBNAct(inner_channels, out_channels, 1, act=False)
        self.shortcut = make_shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.act2(self.bn2(self.op(self.conv1(x)))))
        return self.act(out + self.shortcut(x))
'''

_BASIC_BLOCK = '''

class BasicBlock(nn.Module):
    """Two spatial ops at the output width (the first striding) plus the shortcut, then ReLU.
    A 1x1 entry projection adapts the input width first when it differs."""

    def __init__(self, in_channels: int, out_channels: int, op: tuple, stride: int) -> None:
        super().__init__()
        if in_channels != out_channels:
            self.entry = ConvBNAct(in_channels, out_channels, 1)
        else:
            self.entry = nn.Identity()
        self.op1 = make_op(op, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.op2 = make_op(op, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.op1(self.entry(x))))
        out = self.bn2(self.op2(out))
        return self.act(out + self.shortcut(x))
'''

_NETWORK = '''

class Net(nn.Module):
    """Stem, the stages of ARCH, global average pooling and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = make_stem()
        stages = []
        channels = {stem_channels}
        for _name, block, width, inner, stride, ops in ARCH:
            blocks = []
            for index, op in enumerate(ops):
                block_in = channels if index == 0 else width
                block_stride = stride if index == 0 else 1
                blocks.append(make_block(block, block_in, width, inner, op, block_stride))
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, NUM_CLASSES)

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


def generate_source(space: SearchSpace, arch: Arch, info: SourceInfo) -> str:
    """The text of a standalone ``model.py`` building ``arch`` of ``space`` with plain layers."""
    uses_involution = _uses_involution(space, arch)
    blocks = {spec.block for spec in space.stages}
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
        ),
        _arch_constant(space, arch) + "\n",
    ]
    if uses_involution:
        parts.append(_INVOLUTION)
    branch = _INVOLUTION_BRANCH if uses_involution else _NO_INVOLUTION_BRANCH
    parts.append(_CONV_BN_ACT.format(involution_branch=branch))
    if "bottleneck" in blocks:
        parts.append(_BOTTLENECK)
    if "basic" in blocks:
        parts.append(_BASIC_BLOCK)
    parts.append(_block_function(blocks))
    parts.append("\n\n" + _stem_function(space.stem, space.input.channels))
    parts.append(_NETWORK.replace("{stem_channels}", str(space.stem.channels)))
    return "".join(parts)
