"""The training and scoring every phase runs, as plain functions free of Ray and of the run
directory: Tune trainables, Ray Train workers, the exporter and the experiments all call them.

- :func:`load_data` -> :class:`SeededData`: the seeded splits and their loaders;
- :func:`train_supernet`: weight-sharing training with a per-epoch monitor accuracy;
- :func:`score_arch` / :func:`inherited_model`: an architecture on inherited weights;
- :func:`train_standalone`: one architecture trained from scratch or fine-tuned;
- :class:`DataParallel` / :func:`process_group`: either training as one of several
  data-parallel workers of a ``torch.distributed`` group.

Training functions report each epoch to an ``on_epoch(EpochReport)`` callback (metrics plus
the state to checkpoint, see :func:`write_checkpoint`) and resume from a ``training.pt``.
"""

from invnas.engine.checkpoint import (
    TRAINING_STATE_FILE,
    cpu_state_dict,
    resume_training,
    write_checkpoint,
)
from invnas.engine.data import EVAL_BATCH_SIZE, SeededData, load_data
from invnas.engine.parallel import SINGLE, DataParallel, SingleProcess, process_group
from invnas.engine.records import EpochMetrics, EpochReport, OnEpoch, TrainingResult
from invnas.engine.scoring import (
    ArchScore,
    InheritedModel,
    inherited_model,
    load_supernet,
    score_arch,
)
from invnas.engine.standalone import initial_model, train_standalone
from invnas.engine.supernet import MONITOR_ARCHS, monitor_accuracy, train_supernet

__all__ = [
    "EVAL_BATCH_SIZE",
    "MONITOR_ARCHS",
    "SINGLE",
    "TRAINING_STATE_FILE",
    "ArchScore",
    "DataParallel",
    "EpochMetrics",
    "EpochReport",
    "InheritedModel",
    "OnEpoch",
    "SeededData",
    "SingleProcess",
    "TrainingResult",
    "cpu_state_dict",
    "initial_model",
    "inherited_model",
    "load_data",
    "load_supernet",
    "monitor_accuracy",
    "process_group",
    "resume_training",
    "score_arch",
    "train_standalone",
    "train_supernet",
    "write_checkpoint",
]
