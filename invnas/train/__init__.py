"""Training and evaluation loops, optimizer/scheduler, latency, seeding and checkpoints."""

from invnas.train.checkpoint import load_training_state, save_training_state
from invnas.train.latency import measure_latency_ms
from invnas.train.loops import (
    CosineDecay,
    EpochStats,
    EvalStats,
    NonFiniteLossError,
    evaluate,
    make_optimizer,
    make_scaler,
    make_scheduler,
    train_epoch,
    train_supernet_epoch,
)
from invnas.train.seeding import derive_seed, seed_everything

__all__ = [
    "CosineDecay",
    "EpochStats",
    "EvalStats",
    "NonFiniteLossError",
    "derive_seed",
    "evaluate",
    "load_training_state",
    "make_optimizer",
    "make_scaler",
    "make_scheduler",
    "measure_latency_ms",
    "save_training_state",
    "seed_everything",
    "train_epoch",
    "train_supernet_epoch",
]
