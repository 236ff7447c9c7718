"""Data-parallel training with real gloo process groups (torch.multiprocessing spawn): two
workers with batch b train the same weights as one worker with batch 2b, with and without
BatchNorm, for a plain net, a stand-alone architecture and the single-path supernet."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from invnas.data.loader import make_loader
from invnas.engine import train_standalone, train_supernet
from invnas.engine.parallel import process_group
from invnas.space.arch import sample
from invnas.train import make_optimizer, seed_everything, train_epoch

from .conftest import CPU

STEPS = 6
HALF = 16  # each worker's batch; one worker alone trains on 2 * HALF
TOLERANCE = 1e-5  # float32 sums in another order, a few steps
ENGINE_TOLERANCE = 1e-4  # two epochs of 6 steps at lr 0.05 amplify those differences


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _net(batch_norm: bool) -> nn.Module:
    seed_everything(3)
    layers: list[nn.Module] = [nn.Conv2d(1, 6, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 10)]
    return nn.Sequential(*layers)


def _images() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2 * HALF * STEPS, 1, 8, 8, generator=generator)
    return TensorDataset(images, torch.randint(0, 10, (len(images),), generator=generator))


def _train_net(batch_norm: bool, parallel=None) -> dict[str, torch.Tensor]:
    model = _net(batch_norm)
    optimizer = make_optimizer(model, 0.1, 0.9, 1e-4)
    shard = None if parallel is None else (parallel.rank, parallel.world_size)
    loader = make_loader(_images(), 2 * HALF, shuffle=True, seed=5, shard=shard)
    if parallel is None:
        train_epoch(model, loader, optimizer)
    else:
        with parallel.training(model) as sync:
            train_epoch(model, loader, optimizer, sync=sync)
    return model.state_dict()


def _train_engine(kind: str, tiny, data, parallel=None) -> dict[str, torch.Tensor]:
    space, config = tiny
    extra = {} if parallel is None else {"parallel": parallel}
    if kind == "supernet":
        result = train_supernet(
            space, config.supernet, data, CPU, bn_batches=2, monitor_archs=0, **extra
        )
    else:
        arch = sample(space, 4)
        settings = dataclasses.replace(config.retrain, epochs=1)
        result = train_standalone(space, arch, settings, data, CPU, seed=1, **extra)
    return result.model.state_dict()


def _worker(rank: int, port: int, out: str, job: tuple) -> None:
    torch.set_num_threads(1)
    with process_group(rank, 2, port=port) as parallel:
        if job[0] == "net":
            state = _train_net(job[1], parallel)
        else:
            state = _train_engine(job[0], job[1], job[2], parallel)
    torch.save(state, Path(out) / f"rank{rank}.pt")


def _two_workers(tmp_path: Path, job: tuple) -> list[dict[str, torch.Tensor]]:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path), job), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_close(parallel: dict, single: dict, tolerance: float = TOLERANCE) -> None:
    assert parallel.keys() == single.keys()
    for key, value in single.items():
        if value.is_floating_point():
            torch.testing.assert_close(parallel[key], value, rtol=10 * tolerance, atol=tolerance)
        else:
            assert torch.equal(parallel[key], value), key


@pytest.mark.parametrize("batch_norm", [False, True], ids=["no-bn", "synced-bn"])
def test_two_workers_of_batch_b_train_as_one_of_batch_2b(tmp_path, batch_norm):
    ranks = _two_workers(tmp_path, ("net", batch_norm))
    single = _train_net(batch_norm)
    assert any(not torch.equal(v, _net(batch_norm).state_dict()[k]) for k, v in single.items())
    for state in ranks:
        _assert_close(state, single)
    if batch_norm:  # the running statistics are those of the whole batch
        assert not torch.equal(single["1.running_var"], torch.ones(6))


@pytest.mark.parametrize("kind", ["supernet", "standalone"])
def test_the_engine_trains_the_same_weights_on_two_workers(tmp_path, tiny, data, kind):
    # 48 images a batch, 24 per worker; the supernet's unused candidates get no gradient
    ranks = _two_workers(tmp_path, (kind, tiny, data))
    single = _train_engine(kind, tiny, data)
    _assert_close(ranks[0], single, ENGINE_TOLERANCE)
    _assert_close(ranks[1], ranks[0], 0.0)  # every worker holds the same weights


def test_sharded_batches_together_are_the_single_process_batches():
    dataset = _images()  # 192 images: batches of 7, the last one of 3
    whole = [labels for _, labels in make_loader(dataset, 7, shuffle=True, seed=9)]
    loaders = [make_loader(dataset, 7, shuffle=True, seed=9, shard=(r, 3)) for r in range(3)]
    parts = [[labels for _, labels in loader] for loader in loaders]
    assert len(whole) == len(parts[0]) == len(loaders[2]) == 28
    for step, labels in enumerate(whole):
        assert torch.equal(torch.cat([part[step] for part in parts]), labels)
    assert [len(part[-1]) for part in parts] == [1, 1, 1]
    quarters = [make_loader(dataset, 7, shuffle=True, seed=9, shard=(r, 4)) for r in range(4)]
    assert [len(list(q)) for q in quarters] == [len(q) for q in quarters] == [27] * 4


def test_synced_batch_norm_of_one_worker_is_batch_norm_sliced_and_under_autocast():
    from invnas.engine.parallel import synced_batch_norm
    from invnas.nn.dynamic import DynamicBatchNorm2d

    x = torch.randn(8, 4, 5, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1
    plain, synced = DynamicBatchNorm2d(6), DynamicBatchNorm2d(6)
    with process_group(0, 1, port=_free_port()):
        got = synced_batch_norm(synced, x)  # 4 of its 6 channels
        low = synced_batch_norm(DynamicBatchNorm2d(6), x.bfloat16())
    expected = plain(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(synced.state_dict()[key], value, atol=1e-5, rtol=1e-5)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, atol=0.05, rtol=0.05)
