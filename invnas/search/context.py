"""What every trial of every phase needs: the space, where its data lives, the seed and its
share of the machine; plus the seeded data loaders built from them inside the trial."""

from __future__ import annotations

import functools
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from invnas.config import DataConfig, RunConfig
from invnas.space.spec import InputSpec, SearchSpace

EVAL_BATCH_SIZE = 256


@functools.lru_cache(maxsize=2)
def _cached_splits(
    data: DataConfig, input: InputSpec, seed: int, root: str | None, num_classes: int
):
    from invnas.data import load_splits

    return load_splits(data, input, seed, Path(root) if root else None, num_classes=num_classes)


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state_dict on the CPU, so that saved weights load on any machine."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


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


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one use (e.g. ``("supernet", epoch)``), stable across runs and machines."""
    text = ":".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


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

    def setup(self) -> torch.device:
        """Thread count and device for this trial; returns the device."""
        torch.set_num_threads(max(1, int(self.cpus)))
        if self.gpus > 0 and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")

    def splits(self):
        """The dataset's train/val/test splits (fixed by the seed); read once per process,
        since Tune reuses a trial's worker process for the next trial."""
        space = self.space
        return _cached_splits(
            self.run.data, space.input, self.seed, self.data_root, space.num_classes
        )

    def train_loader(self, dataset, seed: int) -> DataLoader:
        """Shuffled training batches in an order fixed by ``seed``."""
        from invnas.data import make_loader

        data = self.run.data
        return make_loader(
            dataset, data.batch_size, shuffle=True, seed=seed, num_workers=data.num_workers
        )

    def eval_loader(self, dataset) -> DataLoader:
        """Unshuffled batches for evaluation."""
        from invnas.data import make_loader

        batch = max(EVAL_BATCH_SIZE, self.run.data.batch_size)
        return make_loader(
            dataset, batch, shuffle=False, seed=0, num_workers=self.run.data.num_workers
        )
