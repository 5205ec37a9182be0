"""A model that is one ncnn region runs without the Relax VM (compile/direct.py, runtime/FORMAT.md
`direct_region`): the runtime calls the region itself, writing into the caller's outputs. Held against
onnxruntime, with one output and with several (a tuple main returns as the region gives it), from Python and
from deploy_app; a model that is more than one region (or has TVM ops) keeps the VM and says nothing."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

import tvm_ncnn
from tvm_ncnn.format.describe import describe, describe_text, read_metadata

from conftest import max_rel_error, run_deploy_app

TOLERANCE = 1e-4


class TwoHeads(torch.nn.Module):
    """One ncnn region with two outputs: a feature map and a vector of classes."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y, self.head(y.mean(dim=(2, 3)))


class WithTvmOp(torch.nn.Module):
    """An op ncnn does not take between two convolutions: two regions and TVM code, the VM's job."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.b(torch.special.erf(self.a(x)))


def _export(module, tmp_path, name):
    torch.manual_seed(0)
    model = module()
    onnx_path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 20, 24),), onnx_path, input_names=["input"],
                      dynamo=False, opset_version=17)
    so = str(tmp_path / f"{name}.so")
    result = tvm_ncnn.export(onnx_path, so)
    return onnx_path, so, result


def _onnxruntime(onnx_path, x):
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})


def test_one_region_runs_direct_and_matches_onnxruntime(tmp_path):
    onnx_path, so, result = _export(TwoHeads, tmp_path, "two_heads")
    assert result.report.regions == 1
    assert read_metadata(so).get("direct_region") == "ncnn_region_0"
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 24)).astype(np.float32)
    model = tvm_ncnn.load(so, threads=1)
    want = _onnxruntime(onnx_path, x)
    for _ in range(3):  # the same outputs every call
        got = model(x)
        assert len(got) == 2
        for g, w in zip(got, want):
            assert max_rel_error(g, w) <= TOLERANCE
    # the other x gives its own answer: nothing of the first call is left in the outputs
    x2 = np.random.default_rng(1).standard_normal((1, 3, 20, 24)).astype(np.float32)
    for g, w in zip(model(x2), _onnxruntime(onnx_path, x2)):
        assert max_rel_error(g, w) <= TOLERANCE
    assert "(the whole model: run without the Relax VM)" in describe_text(describe(so))


def test_deploy_app_runs_direct(tmp_path):
    onnx_path, so, _ = _export(TwoHeads, tmp_path, "two_heads")
    x = np.random.default_rng(2).standard_normal((1, 3, 20, 24)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run_deploy_app(so, str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npz"), "--repeat", "3")
    names = [o["name"] for o in read_metadata(so)["outputs"]]
    with np.load(tmp_path / "y.npz") as got:
        for name, want in zip(names, _onnxruntime(onnx_path, x)):
            assert max_rel_error(got[name], want) <= TOLERANCE


def test_more_than_one_region_keeps_the_vm(tmp_path):
    onnx_path, so, result = _export(WithTvmOp, tmp_path, "with_tvm_op")
    assert result.report.regions == 2
    assert "direct_region" not in read_metadata(so)
    x = np.random.default_rng(3).standard_normal((1, 3, 20, 24)).astype(np.float32)
    assert max_rel_error(tvm_ncnn.load(so, threads=1).single(x), _onnxruntime(onnx_path, x)[0]) <= TOLERANCE


def test_no_offload_keeps_the_vm(tmp_path):
    torch.manual_seed(0)
    onnx_path = str(tmp_path / "m.onnx")
    torch.onnx.export(TwoHeads().eval(), (torch.randn(1, 3, 20, 24),), onnx_path, input_names=["input"],
                      dynamo=False, opset_version=17)
    so = str(tmp_path / "m.so")
    tvm_ncnn.export(onnx_path, so, offload=False)
    assert "direct_region" not in read_metadata(so)
