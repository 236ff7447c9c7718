"""Fashion-MNIST end to end on the real files of Debian's ``dataset-fashion-mnist`` package
(``apt-get install dataset-fashion-mnist``; ``.ci/run`` installs it). Skipped without them."""

import pytest
import torch
import yaml

from invnas.config import DataConfig
from invnas.data import load_splits, make_loader
from invnas.data.mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDX_FILES
from invnas.nn import build_model
from invnas.ops.functional import ENV_VAR
from invnas.space.arch import Arch, StageArch
from invnas.space.loader import parse_space_file
from invnas.space.spec import InputSpec, OpChoice
from invnas.train import evaluate, make_optimizer, make_scheduler, seed_everything, train_epoch

pytestmark = pytest.mark.skipif(
    not all(
        (FASHION_MNIST_DIR / f"{name}.gz").is_file() for pair in IDX_FILES.values() for name in pair
    ),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)

TINY_SPACE = """\
name: fashion_tiny
input: {channels: 1, size: 28}
num_classes: 10
stem: {kind: conv, channels: 16, stride: 2}    # 14x14
stages:
  - name: a                                    # 7x7
    depth: [1]
    width: [32]
    stride: 2
    block: basic
    ops:
      conv: {kernel_size: [3]}
      involution: {kernel_size: [3], group_channels: [8], reduction: [4]}
  - name: b                                    # 4x4
    depth: [1]
    width: [64]
    stride: 2
    block: basic
    ops:
      conv: {kernel_size: [3]}
      involution: {kernel_size: [3], group_channels: [8], reduction: [4]}
data: {dataset: fashion_mnist, val_fraction: 0.1, batch_size: 64}
"""


@pytest.fixture(scope="module")
def space_file():
    return parse_space_file(yaml.safe_load(TINY_SPACE))


@pytest.fixture(scope="module")
def splits(space_file):
    space, run = space_file
    return load_splits(run.data, space.input, seed=0, num_classes=space.num_classes)


def test_fashion_mnist_splits_are_the_official_test_set_and_a_tenth_of_training(splits):
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert splits.class_names == FASHION_MNIST_CLASSES
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    assert splits.test.indices.tolist() == list(range(10000))  # the t10k file, in order
    per_class = torch.bincount(splits.val.labels, minlength=10)
    assert per_class.tolist() == [600] * 10  # stratified: the classes are balanced
    image, label = splits.train[0]
    assert image.shape == (1, 28, 28) and 0 <= int(label) < 10


def test_fashion_mnist_needs_no_path_and_reads_gzipped_files():
    config = DataConfig(dataset="fashion_mnist")
    splits = load_splits(config, InputSpec(channels=3, size=16), seed=3, num_classes=10)
    assert splits.train[0][0].shape == (3, 16, 16)
    assert splits.train.augment is None


@pytest.fixture
def quick_cpu(monkeypatch):
    """One torch thread (small models run fastest so when other processes share the cores)
    and the pure-PyTorch involution, which needs no build (the native kernel, whose first
    build takes a minute or more, is tested in tests/ops)."""
    monkeypatch.setenv(ENV_VAR, "torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # ~40 s on one busy core (0.88 test accuracy measured)
def test_a_tiny_hybrid_network_beats_75_percent_after_one_epoch(space_file, splits, quick_cpu):
    """One epoch of invnas's own training loop, over the whole 54,000-image training split, on
    a conv + involution network from a tiny space; scored on the official 10,000 test images."""
    space, run = space_file
    arch = Arch(
        (
            StageArch(1, 32, (OpChoice.from_code("conv3g1"),)),
            StageArch(1, 64, (OpChoice.from_code("inv3c8r4"),)),
        )
    )
    seed_everything(0)
    model = build_model(space, arch)
    loader = make_loader(splits.train, run.data.batch_size, shuffle=True, seed=0)
    optimizer = make_optimizer(model, lr=0.05, momentum=0.9, weight_decay=5e-5)
    scheduler = make_scheduler(optimizer, 1, len(loader))
    stats = train_epoch(model, loader, optimizer, scheduler=scheduler)
    assert stats.samples == 54000
    test = evaluate(model, make_loader(splits.test, 500, shuffle=False, seed=0))
    assert test.samples == 10000
    assert test.accuracy > 0.75, f"test accuracy {test.accuracy:.3f} after one epoch"
