"""The weight-sharing supernet: every candidate of every block in one module, one path per pass.

Single-path one-shot layout: for every stage and every block position up to the stage's
largest depth, the supernet holds one whole residual block per op candidate, each with its own
weights, built at the stage's largest width (:func:`invnas.space.plan.plan_supernet`). A
forward pass runs the blocks of one architecture only: blocks past the chosen depth are skipped
and narrower widths run on the leading channels of each layer (:mod:`invnas.nn.dynamic`). The
stem and the classifier are shared by all paths.

Example::

    supernet = Supernet(space)
    logits = supernet(x, arch)          # trains/evaluates the path of ``arch`` only
    subnet = supernet.extract(arch)     # a plain ArchNet holding copies of those weights
"""

from __future__ import annotations

import torch
from torch import nn

from invnas.nn.blocks import add_layers, build_stem
from invnas.nn.builder import ArchNet, build_model
from invnas.nn.dynamic import DynamicLinear, build_dynamic_layer
from invnas.space.arch import Arch, StageArch, check_arch
from invnas.space.plan import BlockPlan, plan_supernet
from invnas.space.spec import OpChoice, SearchSpace, StageSpec


class DynamicBottleneck(nn.Module):
    """Sliceable twin of :class:`invnas.nn.blocks.Bottleneck` (same parameter names), built
    from a block planned at its largest widths.

    ``plan.projects`` says whether any configuration needs the projection shortcut; it is used
    exactly when the plain block would have one (stride > 1 or a width change).
    """

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        self.stride = plan.stride
        add_layers(self, plan, build_dynamic_layer)

    def forward(self, x: torch.Tensor, width: int, inner: int) -> torch.Tensor:
        out = self.act2(self.bn2(self.op(self.conv1(x, inner))))
        out = self.conv3(out, width)
        return self.act(out + _shortcut(self.shortcut, x, width, self.stride))


class DynamicBasicBlock(nn.Module):
    """Sliceable twin of :class:`invnas.nn.blocks.BasicBlock` (same parameter names)."""

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        self.stride = plan.stride
        add_layers(self, plan, build_dynamic_layer)

    def forward(self, x: torch.Tensor, width: int, inner: int) -> torch.Tensor:
        entered = self.entry(x, width) if x.shape[1] != width else x
        out = self.act1(self.bn1(self.op1(entered)))
        out = self.bn2(self.op2(out))
        return self.act(out + _shortcut(self.shortcut, x, width, self.stride))


def _shortcut(
    projection: nn.Module | None, x: torch.Tensor, width: int, stride: int
) -> torch.Tensor:
    if stride == 1 and x.shape[1] == width:
        return x
    if projection is None:
        raise RuntimeError(
            f"supernet block: no projection for {x.shape[1]}->{width}, stride {stride}"
        )
    return projection(x, width)


class ChoiceBlock(nn.Module):
    """One block position of a stage: one independent block per op candidate."""

    def __init__(self, candidates: tuple[BlockPlan, ...]) -> None:
        super().__init__()
        self.candidates = nn.ModuleDict(
            (
                plan.op.code,
                DynamicBottleneck(plan) if plan.kind == "bottleneck" else DynamicBasicBlock(plan),
            )
            for plan in candidates
        )

    def forward(self, x: torch.Tensor, op: OpChoice, width: int, inner: int) -> torch.Tensor:
        return self.candidates[op.code](x, width, inner)


class SuperStage(nn.Module):
    """All block positions of one stage, up to its largest depth."""

    def __init__(self, spec: StageSpec, positions: tuple[tuple[BlockPlan, ...], ...]) -> None:
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(ChoiceBlock(candidates) for candidates in positions)

    def forward(self, x: torch.Tensor, stage: StageArch) -> torch.Tensor:
        inner = self.spec.inner_width(stage.width)
        for block, op in zip(self.blocks, stage.ops, strict=False):
            x = block(x, op, stage.width, inner)
        return x


class Supernet(nn.Module):
    """Every candidate op of every block of ``space``; ``forward(x, arch)`` runs one path."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        plan = plan_supernet(space)
        self.stem = build_stem(plan.stem)
        self.stages = nn.ModuleList(
            SuperStage(spec, positions)
            for spec, positions in zip(space.stages, plan.stages, strict=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = DynamicLinear(plan.fc.in_features, plan.fc.out_features)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Logits of ``arch``'s path; only that path's blocks run (ValueError if not in space)."""
        check_arch(self.space, arch)
        x = self.stem(x)
        for stage, stage_arch in zip(self.stages, arch.stages, strict=True):
            x = stage(x, stage_arch)
        return self.fc(torch.flatten(self.pool(x), 1))

    def path_modules(self, arch: Arch) -> list[tuple[str, nn.Module, str]]:
        """``(plain prefix, supernet module, supernet prefix)`` for each part of ``arch``'s path.

        A plain :class:`ArchNet` parameter named ``<plain prefix>.<rest>`` inherits the leading
        slice of the supernet parameter ``<supernet prefix>.<rest>``.
        """
        parts: list[tuple[str, nn.Module, str]] = [
            ("stem", self.stem, "stem"),
            ("fc", self.fc, "fc"),
        ]
        for i, (stage, stage_arch) in enumerate(zip(self.stages, arch.stages, strict=True)):
            for j, op in enumerate(stage_arch.ops):
                block = stage.blocks[j].candidates[op.code]
                parts.append(
                    (f"stages.{i}.{j}", block, f"stages.{i}.blocks.{j}.candidates.{op.code}")
                )
        return parts

    @torch.no_grad()
    def extract(self, arch: Arch) -> ArchNet:
        """A plain :class:`ArchNet` of ``arch`` holding copies of the inherited weights.

        Parameters, biases and BatchNorm buffers (running statistics and batch counts) are the
        leading slices of the supernet's, copied: the result shares no storage with the
        supernet and has no supernet machinery. It is on the supernet's device and dtype and in
        its train/eval mode; in eval mode its outputs equal ``self(x, arch)``.
        """
        check_arch(self.space, arch)
        reference = next(self.parameters())
        model = build_model(self.space, arch).to(device=reference.device, dtype=reference.dtype)
        targets = model.state_dict(keep_vars=True)
        filled: set[str] = set()
        for plain_prefix, module, super_prefix in self.path_modules(arch):
            for name, source in module.state_dict(keep_vars=True).items():
                key = f"{plain_prefix}.{name}"
                if key not in targets:
                    continue
                _copy_leading(targets[key], source, key, f"{super_prefix}.{name}")
                filled.add(key)
        missing = sorted(set(targets) - filled)
        if missing:
            raise RuntimeError(f"supernet extract: no inherited value for {missing}")
        return model.train(self.training)


def _copy_leading(target: torch.Tensor, source: torch.Tensor, key: str, source_key: str) -> None:
    if target.dim() != source.dim() or any(
        t > s for t, s in zip(target.shape, source.shape, strict=True)
    ):
        raise RuntimeError(
            f"supernet extract: {key} {tuple(target.shape)} is not a leading slice of "
            f"{source_key} {tuple(source.shape)}"
        )
    target.copy_(source[tuple(slice(0, n) for n in target.shape)])
