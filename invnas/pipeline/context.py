"""What every trial of every phase needs: the space, the run's settings, where its data lives
and its share of the machine; the training itself is :mod:`invnas.engine`'s."""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass

import torch

from invnas.config import RunConfig
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
    the run's settings, where its data lives, the seed and the trial's share of the machine.

    ``data_root`` is the absolute directory that a relative ``data.path`` is taken from (the
    space file's directory when the run started): trials run with their own directory as the
    working directory, possibly on another node.
    """

    space: SearchSpace
    run: RunConfig
    data_root: str | None
    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def seed(self) -> int:
        """The run's seed: every random stream of its trials derives from it."""
        return self.run.seed

    @property
    def threads(self) -> int:
        """Torch threads of a trial (and of its latency measurements): its whole CPUs."""
        return max(1, int(self.cpus))

    def setup(self) -> torch.device:
        """Thread count and device for this trial; returns the device."""
        torch.set_num_threads(self.threads)
        if self.gpus > 0 and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")

    def data(self) -> SeededData:
        """The dataset's seeded splits and loaders; read once per process, since Tune reuses
        a trial's worker process for the next trial."""
        return load_data(self.space, self.run, self.data_root, cpus=self.cpus)
