"""The run's settings, read from a space file beside its :class:`~invnas.space.SearchSpace`:
where the data comes from and how the supernet, search, retraining and resources are set.

Every class here is a frozen dataclass whose field annotations and ``metadata`` bounds are the
schema the YAML loader (:mod:`invnas.space.loader`) validates against, as in
:mod:`invnas.space.spec`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal


def positive(**extra) -> dict:
    """Field metadata: at least 1, plus ``extra`` bounds."""
    return {"min": 1, **extra}


# datasets of photographs, the ones data.augment: photo applies to
PHOTO_DATASETS = ("cifar10", "cifar100", "imagefolder")
# data.workers: auto never starts more DataLoader workers than this
MAX_AUTO_WORKERS = 4
# data.augment's former true / false
AUGMENT_ALIASES = {True: "crop_flip", False: "none"}


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from, how they are split (splits are fixed by the seed) and
    augmented.

    ``augment``: ``none``; ``crop_flip`` pads by 1/8 of the size, crops back at a random offset
    and mirrors half the images (never handwriting: digits, mnist); ``photo`` (photo datasets
    only) trains on random resized crops (8-100% of the area, aspect 3/4-4/3) mirrored half the
    time and evaluates on the centre crop (the image resized to size / 0.875, its centre
    size x size). ``true`` / ``false`` still mean ``crop_flip`` / ``none``.

    ``loading`` (ImageFolder only): ``memory`` decodes every image up front, ``stream`` keeps
    the file list and decodes each batch when it is asked for (in ``workers`` DataLoader
    processes), ``auto`` streams when the decoded images would take more than 1 GiB.
    ``workers`` (formerly ``num_workers``, still read from a space file): DataLoader worker
    processes; ``auto`` (null) chooses from the trial's CPUs (see :meth:`workers_for`).
    """

    dataset: Literal[
        "digits", "fashion_mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic"
    ] = "digits"
    path: str | None = None
    val_fraction: float = field(default=0.1, metadata={"exclusive_min": 0.0, "max": 0.5})
    test_fraction: float = field(default=0.2, metadata={"exclusive_min": 0.0, "max": 0.5})
    batch_size: int = field(default=64, metadata=positive(max=65536))
    augment: Literal["none", "crop_flip", "photo"] = field(
        default="none", metadata={"aliases": AUGMENT_ALIASES}
    )
    synthetic_samples: int = field(default=512, metadata=positive(max=1_000_000))
    workers: int | None = field(
        default=None,
        metadata={"min": 0, "max": 64, "aliases": {"auto": None}, "renamed_from": "num_workers"},
    )
    loading: Literal["auto", "memory", "stream"] = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):  # the Python API's former augment=True / False
            object.__setattr__(self, "augment", AUGMENT_ALIASES[self.augment])

    def workers_for(self, cpus: float, streamed: bool) -> int:
        """DataLoader workers for a trial with ``cpus`` CPUs: ``workers`` when given, else for
        ``streamed`` images ``min(cpus - 1, 4)`` (one CPU trains, the others decode), and 0
        for images in memory (a worker would only copy them)."""
        if self.workers is not None:
            return self.workers
        return min(max(int(cpus) - 1, 0), MAX_AUTO_WORKERS) if streamed else 0


@dataclass(frozen=True)
class SupernetConfig:
    """Phase 1: weight-sharing supernet training.

    ``epochs`` passes over the training split (cosine schedule, SGD with Nesterov momentum);
    each batch trains the path(s) ``sampling`` picks: ``uniform`` one random architecture,
    ``fair`` one per candidate op, every op once (gradients accumulated). A checkpoint is
    written after every epoch; 0 epochs searches with the untrained supernet.
    """

    epochs: int = field(default=10, metadata={"min": 0, "max": 10_000})
    sampling: Literal["uniform", "fair"] = "uniform"
    lr: float = field(default=0.05, metadata={"exclusive_min": 0.0, "max": 10.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    weight_decay: float = field(default=5e-5, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class SearchConfig:
    """Phase 2: Optuna-driven search over the supernet.

    Each trial scores one architecture that ``sampler`` suggests: its subnet inherits the
    supernet's weights, BatchNorm is recalibrated on ``bn_batches`` training batches, and the
    trial reports validation accuracy, params, MACs and measured latency (batch 1). The search
    ends when ``trials`` trials have *completed*; a failed trial is recorded and replaced,
    until more than ``max_failures`` have failed (then the phase fails). Suggestions come in
    batches of ``max_concurrent`` trials, run in parallel, and the next batch is asked for
    once the whole batch has finished, so the same seed gives the same architectures.
    ``objectives``: accuracy is maximised, params/macs/latency minimised; several give a Pareto
    front. ``max_params`` / ``max_macs`` / ``max_latency_ms``: trials above them are
    infeasible (told to the samplers that handle constraints: tpe, nsga2, nsga3, gp) and never
    enter the front. ``cmaes`` handles a single objective only.
    """

    sampler: Literal["tpe", "nsga2", "nsga3", "gp", "random", "qmc", "cmaes"] = "tpe"
    trials: int = field(default=32, metadata=positive(max=1_000_000))
    objectives: tuple[Literal["accuracy", "params", "macs", "latency"], ...] = ("accuracy",)
    max_params: int | None = field(default=None, metadata=positive())
    max_macs: int | None = field(default=None, metadata=positive())
    max_latency_ms: float | None = field(default=None, metadata={"exclusive_min": 0.0})
    bn_batches: int = field(default=10, metadata={"min": 0, "max": 100_000})
    max_concurrent: int = field(default=2, metadata=positive(max=4096))
    max_failures: int = field(default=3, metadata={"min": 0, "max": 1_000_000})


@dataclass(frozen=True)
class RetrainConfig:
    """Phase 3: retraining the winners and scoring them on the test split.

    The ``top_k`` best distinct architectures (the Pareto front first, best by the first
    objective; then the next front) are trained for ``epochs`` epochs, ``scratch`` from a
    fresh initialisation or ``finetune`` from their inherited supernet weights, then scored
    on the held-out test split.
    """

    top_k: int = field(default=3, metadata={"min": 0, "max": 1000})
    mode: Literal["scratch", "finetune"] = "scratch"
    epochs: int = field(default=15, metadata={"min": 0, "max": 10_000})
    lr: float = field(default=0.05, metadata={"exclusive_min": 0.0, "max": 10.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    weight_decay: float = field(default=5e-5, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class ResourcesConfig:
    """Where and on what the trials run.

    ``address``: None starts a local Ray; ``auto`` or ``HOST:PORT`` joins a running cluster.
    ``storage``: the directory (or ``file://`` URI) holding run directories, default
    ``./runs``; with a cluster it must be absolute and shared by every node.

    What each phase gets (see :func:`plan_phases`; ``invnas validate`` shows it):

    - search trials: ``cpus_per_trial`` CPUs (and as many torch threads) and
      ``gpus_per_trial`` GPUs each (fractions allowed; > 0 runs the trial on CUDA);
    - the supernet: ``supernet_cpus`` / ``supernet_gpus``, default the whole machine (every
      CPU and GPU of the largest Ray node: this machine for a local run);
    - each retrained architecture: ``retrain_cpus`` / ``retrain_gpus``, default the whole
      machine when one architecture is retrained (``retrain.top_k`` 1) or when each trains with
      several data-parallel workers (the architectures then train one after another), else
      the search trials' share (the trials then run side by side).

    The supernet and each retrained architecture train with ``train_workers`` data-parallel
    workers (Ray Train; None: one per GPU of the phase, 1 without GPUs); each worker gets
    ``cpus_per_worker`` / ``gpus_per_worker``, default the phase's share divided among its
    workers (at most one GPU each). Each worker needs a whole CPU unless ``cpus_per_worker``
    is set, and a whole GPU or none: :func:`plan_phases` refuses a share that would split them.

    ``amp``: mixed precision of the supernet's and the retrained architectures' training steps
    on CUDA (autocast in bfloat16 or float16, whose gradient scaler is checkpointed with the
    training state; ``off``: float32). Training on the CPU, and every evaluation, runs in
    float32.

    ``channels_last``: the supernet and the retrained architectures keep their weights, and
    take their images, in NHWC memory order (``on``), which CUDA's convolutions run faster
    in; ``auto``: on for CUDA training of spaces without involution (its kernels read NCHW, so
    every involution layer would copy its input), off on the CPU; ``true`` / ``false`` mean
    ``on`` / ``off``.
    """

    address: str | None = None
    storage: str | None = None
    cpus_per_trial: float = field(default=1.0, metadata={"exclusive_min": 0.0, "max": 1024})
    gpus_per_trial: float = field(default=0.0, metadata={"min": 0.0, "max": 64})
    supernet_cpus: float | None = field(default=None, metadata={"exclusive_min": 0.0, "max": 4096})
    supernet_gpus: float | None = field(default=None, metadata={"min": 0.0, "max": 1024})
    retrain_cpus: float | None = field(default=None, metadata={"exclusive_min": 0.0, "max": 4096})
    retrain_gpus: float | None = field(default=None, metadata={"min": 0.0, "max": 1024})
    train_workers: int | None = field(default=None, metadata=positive(max=1024))
    cpus_per_worker: float | None = field(
        default=None, metadata={"exclusive_min": 0.0, "max": 1024}
    )
    gpus_per_worker: float | None = field(default=None, metadata={"min": 0.0, "max": 64})
    amp: Literal["off", "bfloat16", "float16"] = "bfloat16"
    channels_last: Literal["auto", "on", "off"] = field(
        default="auto", metadata={"aliases": {True: "on", False: "off"}}
    )


@dataclass(frozen=True)
class RunConfig:
    """The run's sections of a space file; every one has defaults."""

    data: DataConfig = DataConfig()
    supernet: SupernetConfig = SupernetConfig()
    search: SearchConfig = SearchConfig()
    retrain: RetrainConfig = RetrainConfig()
    resources: ResourcesConfig = ResourcesConfig()
    seed: int = field(default=0, metadata={"min": 0, "max": 2**31 - 1})


@dataclass(frozen=True)
class Machine:
    """The CPUs and GPUs a phase may have when it asks for "the whole machine"; ``where``
    says which machine that is, for messages."""

    cpus: float
    gpus: float = 0.0
    where: str = field(default="this machine", compare=False)

    @classmethod
    def local(cls) -> Machine:
        """This machine: its CPU count and its CUDA devices."""
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(float(os.cpu_count() or 1), float(gpus))

    @classmethod
    def unbounded(cls) -> Machine:
        """A machine of unlimited CPUs (and no GPU): planning on it refuses only the settings
        that are wrong on any machine (before a cluster's size is known)."""
        return cls(math.inf, 0.0, "a machine not known yet")


@dataclass(frozen=True)
class PhaseResources:
    """What one trial of a phase gets: ``workers`` training processes of ``cpus`` CPUs and
    ``gpus`` GPUs each (more than one: data-parallel on Ray Train). ``source`` says where the
    share comes from (``per trial``, ``whole machine`` or the setting that gave it)."""

    cpus: float
    gpus: float = 0.0
    workers: int = 1
    source: str = "per trial"

    @property
    def total_cpus(self) -> float:
        """CPUs of all the workers together."""
        return self.cpus * self.workers

    @property
    def total_gpus(self) -> float:
        """GPUs of all the workers together."""
        return self.gpus * self.workers

    @property
    def threads(self) -> int:
        """Torch threads of each worker: its whole CPUs (at least 1)."""
        return max(1, int(self.cpus))

    def as_dict(self) -> dict[str, float | int | str]:
        """The share by name, as ``invnas validate --json`` shows it."""
        return {
            "workers": self.workers,
            "cpus_per_worker": self.cpus,
            "gpus_per_worker": self.gpus,
            "cpus": self.total_cpus,
            "gpus": self.total_gpus,
            "source": self.source,
        }


@dataclass(frozen=True)
class PhasePlan:
    """What each phase's trials get (search trials always run one process each)."""

    supernet: PhaseResources
    search: PhaseResources
    retrain: PhaseResources

    def named(self) -> tuple[tuple[str, PhaseResources], ...]:
        """``(phase, share)`` in the phases' order."""
        return (("supernet", self.supernet), ("search", self.search), ("retrain", self.retrain))


def _training_share(
    resources: ResourcesConfig, phase: str, cpus: float, gpus: float, source: str, where: str
) -> PhaseResources:
    """A training phase's share ``cpus``/``gpus`` (from ``source``, on the machine ``where``)
    divided among its workers; ValueError when the workers would not each get a whole CPU
    (unless ``cpus_per_worker`` says how much) or would share a GPU."""
    workers = resources.train_workers or max(1, int(gpus))
    per_cpu = resources.cpus_per_worker or cpus / workers
    per_gpu = resources.gpus_per_worker
    if per_gpu is None:
        per_gpu = min(1.0, gpus / workers)
    if workers == 1:
        return PhaseResources(per_cpu, per_gpu, workers, source)
    asked = f"resources.train_workers: {workers} workers" + (
        "" if resources.train_workers else " (one per GPU)"
    )
    whence = f"the whole of {where}" if source == "whole machine" else source
    has = f"the {phase} phase has {_amount(cpus, 'CPU')} and {_amount(gpus, 'GPU')} ({whence})"
    if resources.cpus_per_worker is None and per_cpu < 1 - 1e-9:
        raise ValueError(
            f"{asked} need 1 CPU each ({_amount(workers, 'CPU')}), and {has}; ask for at "
            f"most {max(1, int(cpus + 1e-9))}, give the phase more CPUs, or set "
            "resources.cpus_per_worker to let workers share CPUs"
        )
    if 0 < per_gpu < 1:
        raise ValueError(
            f"{asked} would share GPUs ({per_gpu:.3g} GPU each), and {has}; data-parallel "
            f"workers need a whole GPU each: ask for at most {max(1, int(gpus + 1e-9))}, or set "
            "resources.gpus_per_worker to 1 (or to 0 to train on CPUs)"
        )
    return PhaseResources(per_cpu, per_gpu, workers, source)


def _amount(count: float, unit: str) -> str:
    return f"{count:g} {unit}" + ("" if count == 1 else "s")


def plan_phases(resources: ResourcesConfig, top_k: int, machine: Machine) -> PhasePlan:
    """What each phase gets on ``machine`` (the largest node) from ``resources`` and
    ``retrain.top_k``; ValueError when data-parallel workers would get less than a CPU each
    (unless ``cpus_per_worker`` is set) or would share a GPU."""
    search = PhaseResources(resources.cpus_per_trial, resources.gpus_per_trial)
    supernet = _training_share(
        resources,
        "supernet",
        resources.supernet_cpus or machine.cpus,
        machine.gpus if resources.supernet_gpus is None else resources.supernet_gpus,
        "supernet_cpus" if resources.supernet_cpus else "whole machine",
        machine.where,
    )
    alone = top_k <= 1 or (resources.train_workers or 1) > 1
    retrain_cpus = resources.retrain_cpus or (machine.cpus if alone else resources.cpus_per_trial)
    retrain_gpus = resources.retrain_gpus
    if retrain_gpus is None:
        retrain_gpus = machine.gpus if alone else resources.gpus_per_trial
    source = "retrain_cpus" if resources.retrain_cpus else "whole machine" if alone else "per trial"
    retrain = _training_share(
        resources, "retrain", retrain_cpus, retrain_gpus, source, machine.where
    )
    return PhasePlan(supernet, search, retrain)
