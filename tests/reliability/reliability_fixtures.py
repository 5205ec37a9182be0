"""The suite's fixture: two tiny models exported once per process (tiny_models.py). Test modules import it by
name; there is no conftest.py here, because tests/python's conftest.py is imported as the module `conftest`
and a second one would replace it when both suites run in one pytest (tests/run.sh)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from support import DEPLOY_APP
from tiny_models import export_all


@functools.lru_cache(maxsize=None)
def _exported() -> dict:
    # Once per process: every test module that imports the fixture gets its own copy of it, all sharing this.
    return export_all(Path(tempfile.mkdtemp(prefix="tvm_ncnn_reliability_")))


@pytest.fixture(scope="session")
def models() -> dict:
    """{"two_regions": {"onnx", "so"}, "classifier": {"onnx", "so"}, "x": a matching .npy input}."""
    assert DEPLOY_APP.exists(), f"{DEPLOY_APP} is not built: cmake --build build/host"
    return _exported()
