"""The suite's two tiny models (exported in about a second each) and their input.

    python tests/reliability/tiny_models.py DIR   # writes DIR/{two_regions,classifier}.{onnx,so} and DIR/x.npy
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from nets import SplitByUnsupported as TwoRegions  # noqa: E402  conv -> erf -> conv: two ncnn regions, TVM between

INPUT_SHAPE = (1, 3, 16, 16)
LABELS = [f"class-{i}" for i in range(10)]


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

    onnx_path = zoo.to_onnx(module.eval(), str(directory / f"{name}.onnx"), INPUT_SHAPE)
    so = directory / f"{name}.so"
    tvm_ncnn.export(onnx_path, so, labels=labels,
                    preprocess=tvm_ncnn.Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)))
    return {"onnx": Path(onnx_path), "so": so}


def export_all(directory: Path) -> dict:
    """{"two_regions": {"onnx", "so"}, "classifier": {"onnx", "so"}, "x": .npy input}; same weights every time."""
    torch.manual_seed(0)
    two, classifier = TwoRegions(), Classifier()
    out = {"two_regions": export_tiny(two, directory, "two_regions"),
           "classifier": export_tiny(classifier, directory, "classifier", labels=LABELS)}
    np.save(directory / "x.npy", np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32))
    out["x"] = directory / "x.npy"
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for name, paths in export_all(target).items():
        print(name, paths)
