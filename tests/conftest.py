"""Shared fixtures: tiny real data (scikit-learn digits), a genuinely pre-trained builtin backbone."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

# Source/target class split of digits used across the suite: pre-train on 0-4, transfer to 5-9.
SOURCE_DIGITS = ["0", "1", "2", "3", "4"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path_factory.getbasetemp() / "tk-cache"))


@pytest.fixture(scope="session")
def digits():
    from transferkit.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def digits_source_target(digits):
    """(source: digits 0-4, target: digits 5-9 relabelled 0-4)."""
    from transferkit.data import class_split

    return class_split(digits, SOURCE_DIGITS)


@pytest.fixture(scope="session")
def target_split(digits_source_target):
    """Target digits 5-9 split 60/40 into (train, test), stratified, seed 0."""
    from transferkit.data import stratified_split

    return stratified_split(digits_source_target[1], 0.4, seed=0)


@pytest.fixture(scope="session")
def pretrained_backbone(tmp_path_factory, digits_source_target) -> str:
    """``file:`` spec of builtin:small-cnn pre-trained (transferkit pretrain) on digits 0-4 (~10 s)."""
    from transferkit.pretrain import pretrain_backbone

    out = tmp_path_factory.mktemp("pretrained")
    path = pretrain_backbone(digits_source_target[0], out, arch="builtin:small-cnn", epochs=4, lr=3e-3,
                             batch_size=64, val_fraction=0.0, progress=False)
    return f"file:{path}"


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST test split (10k images) or skip when the files are not installed."""
    from transferkit.data import load_fashion_mnist
    from transferkit.errors import DataError

    try:
        return load_fashion_mnist("test", download=False)
    except DataError as e:
        pytest.skip(str(e))


def pytest_collection_modifyitems(config, items):
    np.random.seed(0)
