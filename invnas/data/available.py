"""A cheap look before a run starts: are the files a run's dataset names there?"""

from __future__ import annotations

from pathlib import Path

from invnas.config import DataConfig
from invnas.data.splits import resolve_data_path


def check_data_available(config: DataConfig, root: str | Path | None = None) -> None:
    """Raise ValueError (a user error naming ``data.path``) if the files of the dataset
    ``config`` names are missing: the directory, or the files its layout requires (the four
    IDX files, CIFAR's pickles, an ImageFolder's split directories). Checks that the files
    exist without reading them (milliseconds), so ``invnas validate`` and the search driver
    can call it before Ray starts. A relative ``data.path`` is taken from ``root``."""
    if config.dataset in ("digits", "synthetic"):
        return  # embedded or generated
    path = resolve_data_path(config, root)
    if config.dataset in ("fashion_mnist", "mnist"):
        from invnas.data.mnist import find_idx_files

        find_idx_files(path, config.dataset, default=config.path is None)
    elif config.dataset in ("cifar10", "cifar100"):
        from invnas.data.cifar import find_cifar_dir

        find_cifar_dir(path, config.dataset)
    elif config.dataset == "imagefolder":
        from invnas.data.folder import find_split_dirs

        find_split_dirs(path)
