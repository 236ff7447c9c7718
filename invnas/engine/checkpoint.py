"""An epoch's checkpoint as files in a directory (weights and training state) and resuming
from one: the layout every phase's trial checkpoints use."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from invnas.engine.records import EpochReport
from invnas.train.checkpoint import load_training_state, save_training_state

TRAINING_STATE_FILE = "training.pt"


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state_dict on the CPU, so that saved weights load on any machine."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


def write_checkpoint(directory: str | Path, report: EpochReport, weights_file: str) -> None:
    """Write ``report``'s model weights (CPU tensors) to ``weights_file`` and the state a run
    resumes from to ``training.pt``, both in ``directory``."""
    directory = Path(directory)
    torch.save(cpu_state_dict(report.model), directory / weights_file)
    save_training_state(
        directory / TRAINING_STATE_FILE,
        report.model,
        report.optimizer,
        report.scheduler,
        report.epoch,
        scaler=report.scaler,
    )


def resume_training(
    state_file: str | Path | None,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Load ``state_file`` (a ``training.pt``; None: start afresh) into the training objects
    (``scaler``: float16 training's gradient scaler, when there is one); returns the number of
    epochs finished already. The RNG state is not restored: every epoch seeds its own
    streams."""
    if state_file is None:
        return 0
    start, _ = load_training_state(
        state_file, model, optimizer, scheduler, restore_rng=False, scaler=scaler
    )
    return start
