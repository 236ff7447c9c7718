"""Define-by-run search space: an Optuna trial chooses one architecture of a space.

Parameters are named after the stages: ``<stage>.depth``, ``<stage>.width`` and ``<stage>.op``
(granularity ``stage``) or ``<stage>.op0``, ``<stage>.op1``, ... (granularity ``block``; one
per block of the deepest choice, so that every trial has the same parameters, which the
model-based samplers need; a shallower choice ignores the extra ones). Choices with a single
value are not suggested at all. Depths and widths are suggested as their values, ops as their
codes (``conv3g1``); samplers without categorical support get each choice as an integer index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from invnas.space.arch import Arch, StageArch
from invnas.space.spec import OpChoice, SearchSpace

ARCH_KEY = "arch"


def _choose(trial: Any, name: str, choices: Sequence, categorical: bool):
    if len(choices) == 1:
        return choices[0]
    if categorical:
        return trial.suggest_categorical(name, list(choices))
    return choices[trial.suggest_int(name, 0, len(choices) - 1)]


def suggest_arch(trial: Any, *, space: SearchSpace, categorical: bool = True) -> dict[str, str]:
    """Suggest an architecture of ``space`` on the Optuna ``trial``; returns
    ``{"arch": Arch.encode()}`` (also stored as the trial's user attribute ``arch``).

    Module-level so that ``functools.partial(suggest_arch, space=space)`` pickles, as the
    search's searcher (which Tune pickles) requires of its define-by-run function.
    """
    stages = []
    for spec in space.stages:
        depth = _choose(trial, f"{spec.name}.depth", sorted(spec.depth), categorical)
        width = _choose(trial, f"{spec.name}.width", sorted(spec.width), categorical)
        pinned = spec.pinned_ops
        candidates = [op.code for op in spec.ops.candidates()]
        if pinned is not None:
            ops: tuple[OpChoice, ...] = pinned
        elif spec.granularity == "stage":
            code = _choose(trial, f"{spec.name}.op", candidates, categorical)
            ops = (OpChoice.from_code(code),) * depth
        else:
            codes = [
                _choose(trial, f"{spec.name}.op{j}", candidates, categorical)
                for j in range(max(spec.depth))
            ]
            ops = tuple(OpChoice.from_code(code) for code in codes[:depth])
        stages.append(StageArch(depth, width, ops))
    arch = Arch(tuple(stages)).encode()
    trial.set_user_attr(ARCH_KEY, arch)
    return {ARCH_KEY: arch}
