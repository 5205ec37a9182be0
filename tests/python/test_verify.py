"""Export checks the model it built against an independent reference before writing it (issue 24.1): a correct
model records the check, a wrong converter is refused naming its region, --no-verify writes it and says so."""

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import ModelError, zoo
from tvm_ncnn.ncnn import codegen

from conftest import tvm_ncnn_cli
from nets import SplitByUnsupported, TinyConvNet


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Two ncnn regions with an erf left to TVM between them."""
    work = tmp_path_factory.mktemp("verify")
    return zoo.to_onnx(SplitByUnsupported().eval(), str(work / "split.onnx"), (1, 3, 32, 32))


def test_a_right_model_records_the_check(split, tmp_path):
    so = tmp_path / "m.so"
    tvm_ncnn.export(split, so)
    record = tvm_ncnn.read_metadata(so)["verify"]
    assert record["result"] == "passed" and record["reference"] == "onnxruntime"
    assert record["max_error"] < 1e-4
    assert "verified   against onnxruntime" in tvm_ncnn_cli("inspect", so).stdout


def test_a_torch_model_is_checked_against_torch(tmp_path):
    so = tmp_path / "t.so"
    tvm_ncnn.export(TinyConvNet().eval(), so, example_inputs=(torch.randn(1, 3, 32, 32),))
    assert tvm_ncnn.read_metadata(so)["verify"]["reference"] == "torch"


def _flip_region_1(monkeypatch):
    """A deliberately wrong converter: region 1's first convolution gets its weights' sign flipped."""
    original = codegen.convert_region

    def wrong(func):
        region = original(func)
        if region.symbol == "ncnn_region_1":
            conv = next(layer for layer in region.graph.layers if layer.type == "Convolution")
            weight, tagged = conv.weights[0]
            conv.weights[0] = (-np.asarray(weight), tagged)
        return region

    monkeypatch.setattr(codegen, "convert_region", wrong)


def test_a_wrong_converter_is_refused_naming_its_region(split, tmp_path, monkeypatch):
    _flip_region_1(monkeypatch)
    so = tmp_path / "wrong.so"
    with pytest.raises(ModelError) as refused:
        tvm_ncnn.export(split, so)
    message = str(refused.value)
    assert "\n" not in message
    assert "differs from onnxruntime's" in message and "ncnn region ncnn_region_1 computes other values" in message
    assert "Convolution" in message and "--no-verify" in message
    assert not so.exists()
    tvm_ncnn.export(split, so, verify=False)  # written anyway when asked, and recorded
    assert tvm_ncnn.read_metadata(so)["verify"] == {"result": "skipped", "why": "--no-verify"}
