"""Activations exporters spell as several ops become the one ncnn layer pnnx writes (Swish, GELU, HardSwish,
HardSigmoid), and compute what onnxruntime computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.ncnn.codegen import convert_region
from tvm_ncnn.partition.regions import partition, region_vars

from conftest import max_rel_error, onnxruntime_run


class Activated(torch.nn.Module):
    """conv -> activation -> conv: the activation between two layers, as in a real block."""

    def __init__(self, activation: torch.nn.Module):
        super().__init__()
        self.a, self.act, self.b = torch.nn.Conv2d(3, 8, 3), activation, torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(self.act(self.a(x)))


CASES = [
    (torch.nn.SiLU(), 17, "Swish"),
    (torch.nn.GELU(), 17, "GELU"),
    (torch.nn.Hardswish(), 17, "HardSwish"),
    (torch.nn.Hardswish(), 13, "HardSwish"),  # before opset 14: x * HardSigmoid(x)
    (torch.nn.Hardsigmoid(), 17, "HardSigmoid"),
]


@pytest.mark.parametrize("activation,opset,layer", CASES, ids=[f"{c[2]}-opset{c[1]}" for c in CASES])
def test_spelled_activation_is_one_layer(tmp_path, activation, opset, layer):
    torch.manual_seed(0)
    onnx_path = str(tmp_path / "act.onnx")
    torch.onnx.export(Activated(activation).eval(), (torch.randn(1, 3, 12, 12),), onnx_path,
                      opset_version=opset, dynamo=False)
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    assert len(region_vars(mod)) == 1
    layers = [line.split()[0] for line in convert_region(mod[region_vars(mod)[0]]).param.splitlines()[2:]]
    assert layers == ["Input", "Convolution", layer, "Convolution"]
    result = tvm_ncnn.export(onnx_path, tmp_path / "act.so")
    x = np.random.default_rng(1).standard_normal((1, 3, 12, 12)).astype("float32") * 3
    assert max_rel_error(tvm_ncnn.load(result.path).single(x), onnxruntime_run(onnx_path, x)) <= 1e-5


def test_look_alikes_stay_elementwise(tmp_path):
    """x * sigmoid(y) and 0.4 * x * (1 + erf(x / sqrt 2)) are not Swish or GELU: no fused layer, same result."""

    class LookAlike(torch.nn.Module):
        def forward(self, x):
            y = x + 1.0
            return x * torch.sigmoid(y) + 0.4 * x * (1 + torch.erf(x / 1.4142135))

    onnx_path = zoo.to_onnx(LookAlike().eval(), str(tmp_path / "alike.onnx"), (1, 4, 6, 6))
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    params = "".join(convert_region(mod[gv]).param for gv in region_vars(mod))
    assert "Swish" not in params and "GELU" not in params
    result = tvm_ncnn.export(onnx_path, tmp_path / "alike.so")
    x = np.random.default_rng(2).standard_normal((1, 4, 6, 6)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(result.path).single(x), onnxruntime_run(onnx_path, x)) <= 1e-5
