import pytest
import torch

from pyface.ops import cuda_available


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and pyface's CUDA backend")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def devices():
    """Parametrisation helper: cpu always, cuda marked (skipped without a GPU)."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
