"""Fixtures shared by every test package: one local Ray for the in-process searches."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the in-process search tests (invnas uses an initialised Ray as is)."""
    import ray

    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray socket paths stay short
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024**2,
        _temp_dir=str(temp),
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
