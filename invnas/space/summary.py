"""A search space at a glance: what ``invnas validate`` shows, as one plain dict."""

from __future__ import annotations

from invnas.config import Machine, RunConfig, plan_phases
from invnas.space.arch import cardinality, stage_cardinality
from invnas.space.cost import bounds, cost
from invnas.space.serialize import fixed_arch, space_to_dict
from invnas.space.spec import SearchSpace


def _cost_range(space: SearchSpace) -> dict[str, int]:
    keys = ("params_min", "params_max", "macs_min", "macs_max")
    if space.is_fixed:
        one = cost(space, fixed_arch(space))
        return dict(zip(keys, (one.params, one.params, one.macs, one.macs), strict=True))
    found = bounds(space)
    return {key: getattr(found, key) for key in keys}


def data_held(run: RunConfig) -> tuple[str, ...]:
    """How the images may be held: ``memory``, ``stream`` or both (an ImageFolder under
    ``data.loading: auto``, streamed above 1 GiB decoded)."""
    data = run.data
    if data.dataset != "imagefolder" or data.loading == "memory":
        return ("memory",)
    return ("stream",) if data.loading == "stream" else ("memory", "stream")


def data_workers(run: RunConfig, cpus: float) -> dict[str, int]:
    """DataLoader workers of a training process of ``cpus`` CPUs (a trial, or each
    data-parallel worker), by how the images may be held (:func:`data_held`)."""
    return {way: run.data.workers_for(cpus, way == "stream") for way in data_held(run)}


def summarize(space: SearchSpace, run: RunConfig, machine: Machine | None = None) -> dict:
    """What ``invnas validate --json`` prints: cardinality, params/MACs range, stages, run,
    and what each phase gets on ``machine`` (default: this one) under ``resources``, with the
    DataLoader workers of each of its processes (``data_workers``)."""
    plain = space_to_dict(space, run)
    plan = plan_phases(run.resources, run.retrain.top_k, machine or Machine.local())
    return {
        "name": space.name,
        "source": space.source,
        "input": plain["input"],
        "num_classes": space.num_classes,
        "stem": plain["stem"],
        "cardinality": cardinality(space),
        "fixed": space.is_fixed,
        **_cost_range(space),
        "stages": [
            {
                "name": stage.name,
                "depth": list(stage.depth),
                "width": list(stage.width),
                "stride": stage.stride,
                "block": stage.block,
                "expansion": stage.expansion if stage.block == "bottleneck" else None,
                "granularity": stage.granularity,
                "ops": [op.code for op in stage.ops.candidates()],
                "blocks": list(stage.blocks) if stage.blocks is not None else None,
                "choices": stage_cardinality(stage),
            }
            for stage in space.stages
        ],
        "run": {key: plain[key] for key in ("data", "supernet", "search", "retrain", "resources")}
        | {"seed": run.seed},
        "data_held": list(data_held(run)),
        "resources": {
            phase: share.as_dict() | {"data_workers": data_workers(run, share.cpus)}
            for phase, share in plan.named()
        },
    }
