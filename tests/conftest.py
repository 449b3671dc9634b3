from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parent / "data"
REPO_ROOT = Path(__file__).parent.parent


@pytest.fixture
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
