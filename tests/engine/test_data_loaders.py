"""The loaders of a run's data: DataLoader workers chosen from the trial's CPUs, pinned
memory for CUDA."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from invnas.config import DataConfig
from invnas.engine import load_data, train_supernet


def grey_folder(root, per_class=6):
    """Two classes of 9x9 greyscale noise images."""
    rng = np.random.default_rng(3)
    for name in ("dim", "lit"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(9, 9), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize(
    ("loading", "workers", "cpus", "expected"),
    [("stream", None, 3, 2), ("memory", None, 3, 0), ("stream", None, 1, 0), ("memory", 1, 3, 1)],
)
def test_loaders_use_the_workers_the_trial_cpus_allow(
    tiny, tmp_path, loading, workers, cpus, expected
):
    space, config = tiny
    root = grey_folder(tmp_path / "folder")
    data_config = DataConfig(
        dataset="imagefolder", path=str(root), loading=loading, workers=workers, batch_size=4
    )
    data = load_data(space, dataclasses.replace(config, data=data_config), cpus=cpus)
    assert data.splits.streamed == (loading == "stream")
    assert data.workers == expected
    assert data.train_loader(0).num_workers == expected
    assert data.eval_loader("val").num_workers == expected


def test_without_cpus_the_resources_setting_counts(tiny, tmp_path):
    space, config = tiny
    root = grey_folder(tmp_path / "folder")
    data_config = DataConfig(dataset="imagefolder", path=str(root), loading="stream")
    resources = dataclasses.replace(config.resources, cpus_per_trial=9)
    run = dataclasses.replace(config, data=data_config, resources=resources)
    assert load_data(space, run).workers == 4


def test_data_for_cuda_ask_for_pinned_memory_and_data_for_the_cpu_do_not(data):
    cuda, cpu = data.on(torch.device("cuda")), data.on(torch.device("cpu"))
    assert cuda.splits is data.splits and cuda.workers == data.workers
    loaders = (cuda.train_loader(0), cuda.eval_loader("test"), cuda.calibration_loader())
    assert all(loader.pin_memory for loader in loaders)
    assert not any(ld.pin_memory for ld in (cpu.train_loader(0), cpu.eval_loader("val")))
    assert not data.train_loader(0).pin_memory and cuda.on("cpu") == data


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_supernet_trains_on_cuda_from_pinned_streamed_batches(tiny, tmp_path):
    space, config = tiny
    root = grey_folder(tmp_path / "folder", per_class=20)
    data_config = DataConfig(dataset="imagefolder", path=str(root), loading="stream", batch_size=8)
    data = load_data(space, dataclasses.replace(config, data=data_config), cpus=2)
    assert data.workers == 1
    result = train_supernet(
        space, config.supernet, data, torch.device("cuda"), bn_batches=2, monitor_archs=1
    )
    assert next(result.model.parameters()).is_cuda
    assert all(math.isfinite(m.train_loss) for m in result.history)
