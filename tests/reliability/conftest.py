"""Fixtures of the reliability suite: two tiny models exported once per session (about a second each), the
inputs they take, and the built deploy_app. Helpers live in support.py (imported by name: this file shares
its module name with tests/python/conftest.py, so the tests never import from it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import DEPLOY_APP  # noqa: E402

INPUT_SHAPE = (1, 3, 16, 16)
LABELS = [f"class-{i}" for i in range(10)]


class TwoRegions(nn.Module):
    """conv -> sin -> conv: sin has no ncnn layer, so two ncnn regions with TVM between (the fuzz target)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.b(torch.sin(torch.relu(self.a(x)))))


class Classifier(nn.Module):
    """An image classifier in miniature: conv, pool, dense, softmax over 10 labelled classes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return torch.softmax(self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))), dim=1)


def export_tiny(module: nn.Module, directory: Path, name: str, labels=None) -> dict[str, Path]:
    import tvm_ncnn
    from tvm_ncnn import zoo

    torch.manual_seed(0)
    module = module.eval()
    onnx_path = zoo.to_onnx(module, str(directory / f"{name}.onnx"), INPUT_SHAPE)
    so = directory / f"{name}.so"
    tvm_ncnn.export(onnx_path, so, labels=labels,
                    preprocess=tvm_ncnn.Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)))
    return {"onnx": Path(onnx_path), "so": so}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """{"two_regions": {"onnx", "so"}, "classifier": {"onnx", "so"}}, plus "x": a matching .npy input."""
    directory = tmp_path_factory.mktemp("reliability_models")
    torch.manual_seed(0)
    two = TwoRegions()
    classifier = Classifier()
    out = {"two_regions": export_tiny(two, directory, "two_regions"),
           "classifier": export_tiny(classifier, directory, "classifier", labels=LABELS)}
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    np.save(directory / "x.npy", x)
    out["x"] = directory / "x.npy"
    return out


@pytest.fixture(scope="session", autouse=True)
def built_deploy_app():
    assert DEPLOY_APP.exists(), f"{DEPLOY_APP} is not built: cmake --build build/host"
    return DEPLOY_APP
