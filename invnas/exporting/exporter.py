"""``invnas export``: one architecture as a directory a user can take away.

The directory holds ``model.py`` (standalone PyTorch source, see :mod:`invnas.exporting.codegen`),
``weights.pt`` (its state dict, loadable with ``torch.load(..., weights_only=True)``),
``arch.yaml`` (the architecture as a fixed space file), ``metrics.json`` (accuracy, params,
MACs, latency and where each came from, and the input contract: channels, size, normalisation,
value range, class names, as ``model.preprocess`` applies them) and ``sample.pt`` (a fixed
input batch and the output invnas's own model gave for it, in eval mode).

Example::

    export_run("runs/quick", pick="best", weights=None, out="exported/quick")
    export_space("search_spaces/rednet50.yaml", out="exported/rednet50")
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from invnas import __version__
from invnas.config import RunConfig
from invnas.exporting.codegen import WEIGHTS_FILE, InputContract, SourceInfo, generate_source
from invnas.exporting.picking import (
    Choice,
    check_search_finished,
    check_weights_kind,
    choose,
    parse_pick,
)
from invnas.rundir import RunDir, RunResults, TrialMetrics, open_run
from invnas.space.arch import Arch
from invnas.space.serialize import dump_space, fixed_arch, fixed_space
from invnas.space.spec import SearchSpace

log = logging.getLogger(__name__)

EXPORT_FILES = ("model.py", WEIGHTS_FILE, "arch.yaml", "metrics.json", "sample.pt")
SAMPLE_BATCH = 2
SAMPLE_SEED = 0
DEFAULT_BN_BATCHES = 10


def _prepare_out(out: str | os.PathLike, force: bool) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out: {path}: is a file; expected a directory to create")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(
            f"--out: {path}: exists and is not empty; use --force to overwrite it or choose "
            "another directory"
        )
    return path


def _cost_metrics(space: SearchSpace, arch: Arch) -> dict[str, Any]:
    from invnas.space.cost import cost

    counted = cost(space, arch)
    source = {"source": "cost model (invnas.space.cost) of arch.yaml"}
    return {
        "params": {"value": counted.params, **source},
        "macs": {"value": counted.macs, "aggregation_macs": counted.aggregation_macs, **source},
    }


def _sample(model: nn.Module, space: SearchSpace) -> dict[str, torch.Tensor]:
    shape = (SAMPLE_BATCH, space.input.channels, space.input.size, space.input.size)
    images = torch.randn(shape, generator=torch.Generator().manual_seed(SAMPLE_SEED))
    with torch.no_grad():
        output = model.eval()(images)
    return {"input": images, "output": output.detach().cpu()}


def write_export(
    out: Path,
    space: SearchSpace,
    arch: Arch,
    model: nn.Module,
    metrics: dict[str, Any],
    info: SourceInfo,
    config: RunConfig,
    contract: InputContract | None = None,
) -> Path:
    """Write the five files of an export of ``model`` (an ArchNet of ``arch``) into ``out``;
    ``arch.yaml`` carries the settings ``config``; ``contract`` says how its inputs were
    prepared (default: not recorded)."""
    contract = contract or InputContract.unrecorded(space)
    metrics = {**metrics, "input": contract.as_dict()}
    model = model.cpu().eval()
    out.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    torch.save(state, out / WEIGHTS_FILE)
    torch.save(_sample(model, space), out / "sample.pt")
    (out / "model.py").write_text(generate_source(space, arch, info, contract), encoding="utf-8")
    dump_space(fixed_space(space, arch), out / "arch.yaml", config)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s to %s", arch.encode(), out)
    return out


def export_space(
    space_path: str | os.PathLike, out: str | os.PathLike, force: bool = False
) -> Path:
    """Export the architecture of a fixed space file with random initialisation (seeded by the
    space's ``seed``); returns the export directory."""
    from invnas.nn import build_model
    from invnas.space.loader import load_space_file
    from invnas.train.latency import measure_latency_ms

    target = _prepare_out(out, force)
    space, config = load_space_file(space_path)
    arch = fixed_arch(space)
    torch.manual_seed(config.seed)
    model = build_model(space, arch).eval()
    shape = (space.input.channels, space.input.size, space.input.size)
    metrics = {
        "arch": arch.encode(),
        "space": space.name,
        "source": {"space_file": str(Path(space_path).resolve())},
        "weights": {"kind": "random", "seed": config.seed},
        "accuracy": {"value": None, "source": "not trained (random initialisation)"},
        **_cost_metrics(space, arch),
        "latency_ms": {
            "value": measure_latency_ms(model, shape),
            "source": "measured at export (invnas.train.latency, batch 1, CPU)",
        },
    }
    info = SourceInfo(
        title=f"{space.name}: {space.num_classes}-class network with random initialisation.",
        origin=f"Built from the fixed space file {Path(space_path).name}.",
        version=__version__,
    )
    return write_export(target, space, arch, model, metrics, info, config)


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path}: missing; the run's {what} weights are not there")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds {type(state).__name__}; expected a state dict")
    return state


def _inherited_model(
    run: RunDir, results: RunResults, space: SearchSpace, config: RunConfig, arch: Arch
) -> tuple[nn.Module, dict]:
    """The supernet's weights for ``arch`` with BatchNorm recalibrated as the search did it
    (same training batches), and that model's accuracy on the validation split."""
    from invnas.engine import load_data, score_arch
    from invnas.nn.supernet import Supernet

    supernet_phase = results.phases.supernet
    relative = supernet_phase.weights
    if not relative:
        raise ValueError(
            f"{run.results_file}: phases.supernet.weights: none recorded (supernet phase "
            f"{supernet_phase.status.value!r}); no inherited weights to export"
        )
    supernet = Supernet(space)
    supernet.load_state_dict(_load_state(run.path / relative, "supernet"))
    data = load_data(space, config, run.read_info().data_root)
    batches = config.search.bn_batches or DEFAULT_BN_BATCHES
    score = score_arch(supernet, arch, data, batches, measure_latency=False)
    del supernet
    recalibration = {
        "batches": score.bn_batches,
        "batch_size": config.data.batch_size,
        "split": "train",
        "as_in_search": batches == config.search.bn_batches,
    }
    return score.model, {
        "accuracy": score.accuracy,
        "bn_recalibration": recalibration,
        "weights": relative,
    }


def _trial_source(run: RunDir, choice: Choice, phase: str, **extra: Any) -> dict[str, Any]:
    return {"run": str(run.path), "trial_id": choice.trial.trial_id, "phase": phase, **extra}


def _retrained(
    run: RunDir, choice: Choice, space: SearchSpace, arch: Arch
) -> tuple[nn.Module, dict[str, Any], str]:
    """The phase-3 model of ``choice``, its metrics entries and a title."""
    from invnas.nn import build_model

    entry = choice.retrained
    assert entry is not None and entry.weights is not None and entry.metrics is not None
    model = build_model(space, arch)
    model.load_state_dict(_load_state(run.path / entry.weights, "retrained"))
    recorded = entry.metrics
    source = _trial_source(run, choice, "retrain", rank=entry.rank)
    metrics = {
        "weights": {"kind": "retrained", "file": entry.weights, "rank": entry.rank},
        "accuracy": {"value": recorded.test_accuracy, **source, "split": "test"},
        "val_accuracy": {"value": recorded.val_accuracy, **source, "split": "val"},
        "latency_ms": {"value": recorded.latency_ms, **source},
    }
    return model, metrics, f"rank {entry.rank} retrained model of run {run.name}"


def _inherited(
    run: RunDir,
    results: RunResults,
    choice: Choice,
    space: SearchSpace,
    config: RunConfig,
    arch: Arch,
) -> tuple[nn.Module, dict[str, Any], str]:
    """The supernet's model of ``choice`` (BatchNorm recalibrated), its metrics entries and a
    title."""
    model, inherited = _inherited_model(run, results, space, config, arch)
    recorded = choice.trial.metrics
    metrics = {
        "weights": {
            "kind": "inherited",
            "file": inherited["weights"],
            "bn_recalibration": inherited["bn_recalibration"],
        },
        "accuracy": {
            "value": inherited["accuracy"],
            **_trial_source(run, choice, "export", split="val"),
        },
        "latency_ms": {
            "value": recorded.latency_ms if recorded else None,
            **_trial_source(run, choice, "search"),
        },
    }
    return (
        model,
        metrics,
        f"trial {choice.trial.trial_id} of run {run.name} with supernet weights",
    )


def export_run(
    run_dir: str | os.PathLike,
    pick: str = "best",
    weights: str | None = None,
    out: str | os.PathLike = "exported",
    force: bool = False,
) -> Path:
    """Export the architecture ``pick`` selects from a finished run (see
    :mod:`invnas.exporting.picking` for ``pick`` and ``weights``); returns the export directory."""
    parsed = parse_pick(pick)
    kind = check_weights_kind(weights)
    target = _prepare_out(out, force)
    run = open_run(run_dir)
    results = run.read_results()
    check_search_finished(results, run.results_file)
    choice = choose(results, parsed, kind)
    space, config = run.settings()
    arch = Arch.decode(choice.trial.arch)
    if choice.retrained is not None:
        model, parts, title = _retrained(run, choice, space, arch)
    else:
        model, parts, title = _inherited(run, results, choice, space, config, arch)
    latency_ms = parts.pop("latency_ms")
    recorded = choice.trial.metrics
    search_accuracy = _trial_source(run, choice, "search", split="val")
    metrics = {
        "arch": arch.encode(),
        "space": space.name,
        "source": {"run": str(run.path), "pick": str(parsed), "trial_id": choice.trial.trial_id},
        **parts,
        "supernet_accuracy": {
            "value": recorded.accuracy if recorded else None,
            **search_accuracy,
            "weights": "supernet (inherited)",
        },
        **_cost_metrics(space, arch),
        "latency_ms": latency_ms,
    }
    _check_recorded_cost(metrics, recorded)
    about = SourceInfo(
        title=f"{space.name}: {title}.",
        origin=f"Picked with --pick {parsed} from the run at {run.path}.",
        version=__version__,
    )
    contract = _input_contract(run, space, config)
    return write_export(target, space, arch, model, metrics, about, config, contract)


def _input_contract(run: RunDir, space: SearchSpace, config: RunConfig) -> InputContract:
    """How the run's dataset was presented to the network (its normalisation and classes)."""
    from invnas.engine import load_data

    splits = load_data(space, config, run.read_info().data_root).splits
    return InputContract(
        channels=space.input.channels,
        size=space.input.size,
        mean=tuple(splits.mean),
        std=tuple(splits.std),
        class_names=tuple(splits.class_names),
    )


def _check_recorded_cost(metrics: dict[str, Any], recorded: TrialMetrics | None) -> None:
    if recorded is None:
        return
    for key, value in (("params", recorded.params), ("macs", recorded.macs)):
        if value != metrics[key]["value"]:
            counted = metrics[key]["value"]
            log.warning("%s: the run recorded %s, the cost model gives %s", key, value, counted)
