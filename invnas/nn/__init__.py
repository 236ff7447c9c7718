"""Networks: plain blocks, the per-architecture builder, MAC counting on built models, the
weight-sharing supernet with its path samplers, and BatchNorm recalibration."""

from invnas.nn.blocks import (
    BasicBlock,
    Bottleneck,
    ConvBNAct,
    build_block,
    build_layer,
    build_stem,
    make_op,
)
from invnas.nn.bn import recalibrate_bn
from invnas.nn.builder import ArchNet, build_model
from invnas.nn.profile import count_macs
from invnas.nn.sampling import FairSampler, PathSampler, UniformSampler, make_path_sampler
from invnas.nn.supernet import Supernet

__all__ = [
    "ArchNet",
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "FairSampler",
    "PathSampler",
    "Supernet",
    "UniformSampler",
    "build_block",
    "build_layer",
    "build_model",
    "build_stem",
    "count_macs",
    "make_op",
    "make_path_sampler",
    "recalibrate_bn",
]
