import os
import shutil
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def log_root(tmp_path, monkeypatch):
    root = tmp_path / "logs"
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def mnist_available():
    """Skips, saying how to install it, when no MNIST source is present."""
    from fairkit.data.errors import DatasetNotFoundError
    from fairkit.data.mnist import load_mnist

    try:
        load_mnist("test", download=False)
    except DatasetNotFoundError as error:
        pytest.skip(f"MNIST not available: {error}")


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    """A small CelebA folder in the official layout, written once per test module."""
    from fairkit.data.fixtures import write_celeba

    return write_celeba(tmp_path_factory.mktemp("celeba"), n=12, seed=1)


@pytest.fixture
def celeba_copy(celeba, tmp_path):
    """A copy of that folder a test may damage."""
    shutil.copytree(celeba.root, tmp_path / "celeba")
    return tmp_path / "celeba"
