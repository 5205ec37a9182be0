"""int8 chains (runtime/src/ncnn/int8_chain.h): an int8 convolution whose one reader is an int8 convolution hands
it int8 (ncnn's requantize form) instead of fp32 -- a speed change that must not change the result. The same
int8 model.so runs with the chains (the default) and without (TVM_NCNN_INT8_CHAIN=0) and must agree to int8's
rounding of a few values; a chain whose producer is also read elsewhere (a residual, a region output) is not
formed, which the residual add here exercises."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

import tvm_ncnn
from tvm_ncnn import zoo


class Chains(nn.Module):
    """pointwise -> depthwise -> pointwise (two chains), then a residual add the last conv's output also feeds."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(3, 32, 1)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.project = nn.Conv2d(32, 16, 1)
        self.head = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        x = torch.clamp(self.expand(x), 0.0, 6.0)
        x = torch.relu(self.dw(x))
        y = self.project(x)
        return self.head(y) + y


def _smooth(rng) -> np.ndarray:
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    return np.ascontiguousarray((x[:, :, :16, :16] + x[:, :, 2:18, 2:18] + x[:, :, 4:, 4:]) / 1.5)


def _run(model_so: str, x: np.ndarray, chain: bool) -> np.ndarray:
    saved = os.environ.pop("TVM_NCNN_INT8_CHAIN", None)
    if not chain:
        os.environ["TVM_NCNN_INT8_CHAIN"] = "0"  # read when the region's net is built
    try:
        return tvm_ncnn.load(model_so, threads=1).single(x)
    finally:
        os.environ.pop("TVM_NCNN_INT8_CHAIN", None)
        if saved is not None:
            os.environ["TVM_NCNN_INT8_CHAIN"] = saved


def test_int8_chains_compute_what_the_unchained_layers_compute(tmp_path):
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(Chains().eval(), str(tmp_path / "chains.onnx"), (1, 3, 16, 16))
    data = tmp_path / "calib"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        np.save(data / f"x{i}.npy", _smooth(rng))
    int8 = str(tmp_path / "chains-int8.so")
    tvm_ncnn.export(onnx_path, int8, precision="int8", calibration=str(data))
    x = _smooth(rng)
    chained, unchained = _run(int8, x, True), _run(int8, x, False)
    # Requantizing in the producer is the reader's own quantization moved one layer up: the same int8 values but
    # for float rounding at a .5 boundary, which moves one value by one step of the reader's scale.
    scale = float(np.abs(unchained).max())
    assert np.abs(chained - unchained).max() <= 0.02 * scale, (np.abs(chained - unchained).max(), scale)
    assert np.mean(np.abs(chained - unchained) > 1e-6 * scale) < 0.01
