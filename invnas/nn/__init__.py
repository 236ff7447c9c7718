"""Networks: plain blocks, the per-architecture builder and MAC counting on built models."""

from invnas.nn.blocks import BasicBlock, Bottleneck, ConvBNAct, build_stem, make_op
from invnas.nn.builder import ArchNet, build_model
from invnas.nn.profile import count_macs

__all__ = [
    "ArchNet",
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "build_model",
    "build_stem",
    "count_macs",
    "make_op",
]
