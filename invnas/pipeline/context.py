"""What every trial of every phase needs: the space, the run's settings, where its data lives
and its share of the machine; the training itself is :mod:`invnas.engine`'s."""

from __future__ import annotations

import dataclasses
import functools
import pickle
from dataclasses import dataclass

import torch

from invnas.config import PhaseResources, RunConfig
from invnas.engine.data import SeededData, load_data
from invnas.space.spec import SearchSpace
from invnas.train.seeding import derive_seed

__all__ = ["TrialContext", "derive_seed", "portable_errors"]


def portable_errors(trainable):
    """Decorate a Tune trainable so that its exceptions reach the driver: Ray pickles a trial's
    exception, and one that does not unpickle (e.g. with extra required constructor
    arguments) would arrive as an unrelated TypeError. Such an error is re-raised as a
    RuntimeError carrying the original type and message."""

    @functools.wraps(trainable)
    def run(*args, **kwargs):
        try:
            return trainable(*args, **kwargs)
        except Exception as error:
            try:
                pickle.loads(pickle.dumps(error))
            except Exception:
                raise RuntimeError(f"{type(error).__name__}: {error}") from None
            raise

    return run


@dataclass(frozen=True)
class TrialContext:
    """Settings shared by a phase's trials (passed with ``tune.with_parameters``): the space,
    the run's settings, where its data lives, the seed and the trial's share of the machine
    (``share``: each worker's CPUs and GPUs, and how many workers train together).

    ``data_root`` is the absolute directory that a relative ``data.path`` is taken from (the
    space file's directory when the run started): trials run with their own directory as the
    working directory, possibly on another node.
    """

    space: SearchSpace
    run: RunConfig
    data_root: str | None
    share: PhaseResources = PhaseResources(1.0)

    @property
    def seed(self) -> int:
        """The run's seed: every random stream of its trials derives from it."""
        return self.run.seed

    @property
    def threads(self) -> int:
        """Torch threads of a trial (or of each of its workers): its whole CPUs."""
        return self.share.threads

    @property
    def latency_threads(self) -> int:
        """Threads of latency measurements: a search trial's, in every phase, so that
        latencies measured in the search and in retraining compare."""
        return max(1, int(self.run.resources.cpus_per_trial))

    def for_phase(self, share: PhaseResources) -> TrialContext:
        """This context with a phase's share of the machine."""
        return dataclasses.replace(self, share=share)

    def trial_resources(self) -> dict[str, float]:
        """The Tune resources of one trial: its share; a data-parallel trial is only the driver
        of its workers and reserves no CPU (Ray Train places the workers)."""
        if self.share.workers > 1:
            return {"CPU": 0, "memory": 1}
        return {"cpu": self.share.cpus, "gpu": self.share.gpus}

    def setup(self) -> torch.device:
        """Thread count and device for this trial (or worker); returns the device."""
        torch.set_num_threads(self.threads)
        if self.share.gpus > 0 and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")

    def precision(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype of training on ``device`` (``resources.amp``; CUDA only; float16
        on GPUs without bfloat16)."""
        amp = self.run.resources.amp
        if device.type != "cuda" or amp == "off":
            return None
        if amp == "bfloat16" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return getattr(torch, amp)

    def memory_format(self, device: torch.device) -> torch.memory_format:
        """The memory order of training on ``device`` (``resources.channels_last``)."""
        setting = self.run.resources.channels_last
        cuda_convs = device.type == "cuda" and not self.space.uses_involution
        if setting == "on" or (setting == "auto" and cuda_convs):
            return torch.channels_last
        return torch.contiguous_format

    def data(self) -> SeededData:
        """The dataset's seeded splits and loaders; read once per process, since Tune reuses
        a trial's worker process for the next trial."""
        return load_data(self.space, self.run, self.data_root, cpus=self.share.cpus)
