"""The loaders of a run's data: DataLoader workers chosen from the trial's CPUs."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from invnas.config import DataConfig
from invnas.engine import load_data


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
