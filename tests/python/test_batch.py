"""Batch N > 1: a model that keeps its images apart runs its batch-1 ncnn partition once per image; one that
combines them stays at batch N in TVM and export says why; a dynamic batch alone exports as batch 1."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.compile.lower import TvmFallbackWarning
from tvm_ncnn.frontend.importer import DefaultBatchWarning

from conftest import max_rel_error
from nets import TinyConvNet


class TwoHeads(nn.Module):
    """Two outputs, so the per-image results are concatenated output by output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return torch.sigmoid(y), self.fc(y.mean(dim=(2, 3)))


class ViewHead(nn.Module):
    """x.view(x.size(0), -1): exported at batch 4, the reshape's target is the constant [4, -1]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 16 * 16, 6)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


class SliceConcatPermute(nn.Module):
    """Slices, a softmax, a concat and a permute, all along other axes than the batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([y[:, 4:], y[:, :4].softmax(1)], 1).permute(0, 2, 3, 1)


class CenteredOverBatch(nn.Module):
    """Subtracts the batch mean: every output depends on every image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y - y.mean(dim=0, keepdim=True)


def _onnx(net: nn.Module, path, shape, dynamic_batch: bool = False) -> str:
    torch.manual_seed(0)
    net = net.eval()
    if not dynamic_batch:
        return zoo.to_onnx(net, str(path), shape)
    with torch.no_grad():
        torch.onnx.export(net, (torch.randn(*shape),), str(path), input_names=["input"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    return str(path)


def _check_against_onnxruntime(onnx_path: str, so_path: str, x: np.ndarray) -> None:
    import onnxruntime as ort

    refs = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    got = tvm_ncnn.load(so_path)(x)
    assert len(got) == len(refs)
    for out, ref in zip(got, refs):
        assert max_rel_error(out, ref) <= 1e-4


@pytest.mark.parametrize("net", [TinyConvNet, TwoHeads, ViewHead, SliceConcatPermute])
def test_images_kept_apart_run_once_each_in_ncnn(net, tmp_path):
    onnx_path = _onnx(net(), tmp_path / "net.onnx", (4, 3, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TvmFallbackWarning)
        result = tvm_ncnn.export(onnx_path, tmp_path / "net.so")
    report = result.report
    assert report.batch_loop == 4 and report.regions == 1 and report.ncnn_flops_share == 1.0
    assert "once per image of the batch of 4" in report.table()
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype("float32")
    _check_against_onnxruntime(onnx_path, result.path, x)


def test_images_combined_stay_at_batch_n_and_export_says_why(tmp_path):
    onnx_path = _onnx(CenteredOverBatch(), tmp_path / "net.onnx", (3, 3, 16, 16))
    with pytest.warns(TvmFallbackWarning, match="batch 3 runs in TVM.*relax.mean works along the batch axis"):
        result = tvm_ncnn.export(onnx_path, tmp_path / "net.so")
    assert result.report.batch_loop == 0
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype("float32")
    _check_against_onnxruntime(onnx_path, result.path, x)


def test_a_dynamic_batch_alone_exports_as_batch_1(tmp_path):
    onnx_path = _onnx(TinyConvNet(), tmp_path / "net.onnx", (2, 3, 32, 32), dynamic_batch=True)
    with pytest.warns(DefaultBatchWarning, match="input input has a dynamic batch; exporting batch 1"):
        result = tvm_ncnn.export(onnx_path, tmp_path / "one.so")
    assert tvm_ncnn.load(result.path).inputs[0]["shape"] == [1, 3, 32, 32]
    three = tvm_ncnn.export(onnx_path, tmp_path / "three.so", input_shapes={"input": [3, 3, 32, 32]})
    assert three.report.batch_loop == 3
    x = np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype("float32")
    _check_against_onnxruntime(onnx_path, three.path, x)


def test_cli_prints_the_default_batch_as_one_note(tmp_path):
    onnx_path = _onnx(TinyConvNet(), tmp_path / "net.onnx", (2, 3, 32, 32), dynamic_batch=True)
    proc = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "export", onnx_path, "-o", str(tmp_path / "m.so")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("tvm-ncnn: note:")]
    assert len(notes) == 1 and "--input input:N,3,32,32" in notes[0]


def test_what_counts_as_a_batch():
    """The leading axis of inputs of rank 2 or more, shared by all, up to batch.MAX_IMAGES (main is unrolled):
    a rank-1 input's only axis (ONNX's node tests feed [10000]) is not a batch of images."""
    from tvm_ncnn.partition.batch import MAX_IMAGES, batch_of

    assert batch_of([[4, 3, 32, 32]]) == 4 and batch_of([[4, 3, 8], [4, 2]]) == 4
    assert batch_of([[10000]]) == 1 and batch_of([[4, 3], [2, 3]]) == 1 and batch_of([[4, 3], [4]]) == 1
    assert batch_of([[MAX_IMAGES + 1, 3, 8, 8]]) == 1 and batch_of([[1, 3, 8, 8]]) == 1
