"""Dynamically quantized ONNX models (onnxruntime's quantize_dynamic: DynamicQuantizeLinear in front of
ConvInteger / MatMulInteger, a Cast and Mul behind) export and match onnxruntime exactly; the integer parts run in
TVM (frontend/quantized.py adds ConvInteger, which TVM's importer lacks). ONNX's own node tests for the three
ops run in test_onnx_nodes.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvm_ncnn

from conftest import max_rel_error, onnxruntime_run


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, groups=2)
        self.fc = torch.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_quantize_dynamic_model(weight_type, per_channel, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    fp32, quantized = tmp_path / "fp32.onnx", tmp_path / "dynamic.onnx"
    torch.onnx.export(ConvNet().eval(), (torch.randn(1, 3, 16, 16),), str(fp32), dynamo=False, opset_version=17)
    quantize_dynamic(str(fp32), str(quantized), weight_type=getattr(QuantType, weight_type), per_channel=per_channel,
                     op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    ops = {n.op_type for n in __import__("onnx").load(str(quantized)).graph.node}
    assert {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"} <= ops
    tvm_ncnn.export(quantized, tmp_path / "model.so")  # verified against onnxruntime by export itself
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = tvm_ncnn.load(tmp_path / "model.so").single(x)
    assert max_rel_error(got, onnxruntime_run(str(quantized), x)) <= 1e-5
