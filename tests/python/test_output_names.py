"""Issue 15.5: outputs as the model names them. model.so keeps an ONNX graph's output names (and a torch module's
dict keys), every tool shows them, `--output FILE.npz` saves every output under its name (deploy_app writes the
zip itself; numpy.load is the independent reader, onnxruntime the reference), a .npy for several outputs is
refused in one line, and a model that is not a classifier gets one plain line instead of a softmax top-5."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import tvm_ncnn
from tvm_ncnn.frontend.importer import _output_names

from conftest import max_rel_error, run_deploy_app, tvm_ncnn_cli

SHAPES = {"boxes": [1, 6, 4], "scores": [1, 6, 3]}


class BoxesAndScores(nn.Module):
    """A toy detection head: per-cell boxes and class scores, neither of them a vector of classes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 3, padding=1)
        self.pool = nn.AvgPool2d(4)  # [1, 7, 8, 12] -> [1, 7, 2, 3]

    def forward(self, x):
        y = self.pool(torch.relu(self.conv(x))).flatten(2).transpose(1, 2)  # [1, 6, 7]
        return y[..., :4], torch.sigmoid(y[..., 4:])


class DictHeads(BoxesAndScores):
    def forward(self, x):
        boxes, scores = super().forward(x)
        return {"boxes": boxes, "scores": scores}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """(work dir, onnx path, model.so, input .npy, onnxruntime's outputs by name)."""
    import onnxruntime as ort

    work = tmp_path_factory.mktemp("names")
    torch.manual_seed(0)
    onnx_path = str(work / "two.onnx")
    torch.onnx.export(BoxesAndScores().eval(), (torch.randn(1, 3, 8, 12),), onnx_path, input_names=["images"],
                      output_names=["boxes", "scores"], opset_version=17, dynamo=False)
    so = work / "two.so"
    tvm_ncnn.export(onnx_path, so)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 12)).astype(np.float32)
    np.save(work / "x.npy", x)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    refs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": x})))
    assert list(refs) == ["boxes", "scores"]
    return work, onnx_path, so, work / "x.npy", refs


def test_names_in_metadata_inspect_and_load(two):
    _, _, so, x_path, refs = two
    specs = [{"name": n, "shape": s, "dtype": "float32"} for n, s in SHAPES.items()]
    assert tvm_ncnn.read_metadata(so)["outputs"] == specs  # before: output0, output1
    text = tvm_ncnn_cli("inspect", so)
    assert text.returncode == 0, text.stderr
    assert "'boxes' [1,6,4] float32" in text.stdout and "'scores' [1,6,3] float32" in text.stdout, text.stdout
    assert json.loads(tvm_ncnn_cli("inspect", so, "--json").stdout)["outputs"] == specs
    model = tvm_ncnn.load(so)
    assert [o["name"] for o in model.outputs] == ["boxes", "scores"]
    for got, (name, ref) in zip(model(np.load(x_path)), refs.items()):
        assert max_rel_error(got, ref) <= 1e-4, name


def test_deploy_app_lists_every_output_and_says_it_is_not_a_classifier(two, deploy_app):
    _, _, so, x_path, _ = two
    done = run_deploy_app(str(so), str(x_path), "--repeat", "1")  # exit 0
    lines = done.stdout.splitlines()
    assert "output   'boxes' [1,6,4] float32" in lines and "output   'scores' [1,6,3] float32" in lines, done.stdout
    plain = [line for line in lines if "not class scores" in line]
    assert len(plain) == 1 and "'boxes' [1,6,4]" in plain[0] and "--task detect" in plain[0] and \
        "out.npz" in plain[0], done.stdout
    assert "top-" not in done.stdout and "softmax" not in done.stdout, done.stdout
    doc = json.loads(run_deploy_app(str(so), str(x_path), "--repeat", "0", "--json").stdout)
    assert "topk" not in doc and doc["scores"] is None, doc
    assert [(o["name"], o["shape"]) for o in doc["outputs"]] == list(SHAPES.items())


def test_deploy_app_saves_every_output_as_npz(two, deploy_app):
    work, _, so, x_path, refs = two
    out = work / "app.npz"
    done = run_deploy_app(str(so), str(x_path), "--repeat", "0", "--output", str(out))
    assert f"saved    2 outputs ('boxes', 'scores') to {out}" in done.stdout, done.stdout
    with np.load(out) as saved:  # numpy's zip reader checks the CRCs and the directory
        assert sorted(saved.files) == ["boxes", "scores"]
        for name, ref in refs.items():
            assert saved[name].dtype == np.float32 and max_rel_error(saved[name], ref) <= 1e-4, name
    doc = json.loads(run_deploy_app(str(so), str(x_path), "--repeat", "0", "--json", "--output", str(out)).stdout)
    assert doc["output_file"] == str(out)


def test_npy_for_two_outputs_is_refused_in_one_line(two, deploy_app):
    work, _, so, x_path, _ = two
    for run in (lambda path: run_deploy_app(str(so), str(x_path), "--output", str(path), check=False),
                lambda path: tvm_ncnn_cli("run", so, x_path, "--output", path)):
        path = work / "refused.npy"
        done = run(path)
        assert done.returncode == 2 and not path.exists(), (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "2 outputs ('boxes', 'scores')" in lines[0] and ".npz" in lines[0], done.stderr


def test_cli_run_saves_npz_and_says_it_is_not_a_classifier(two):
    work, _, so, x_path, refs = two
    out = work / "cli.npz"
    done = tvm_ncnn_cli("run", so, x_path, "--output", out)
    assert done.returncode == 0, done.stderr
    assert "output   'boxes' [1,6,4] float32" in done.stdout and "not class scores" in done.stdout, done.stdout
    assert "top-" not in done.stdout
    with np.load(out) as saved:
        assert sorted(saved.files) == ["boxes", "scores"]
        for name, ref in refs.items():
            assert max_rel_error(saved[name], ref) <= 1e-4, name
    doc = json.loads(tvm_ncnn_cli("run", so, x_path, "--json").stdout)
    assert "topk" not in doc and doc["scores"] is None


def test_torch_dict_keys_name_the_outputs(tmp_path):
    x = torch.randn(1, 3, 8, 12)
    tvm_ncnn.export(DictHeads().eval(), tmp_path / "d.so", example_inputs=(x,))
    assert [o["name"] for o in tvm_ncnn.read_metadata(tmp_path / "d.so")["outputs"]] == ["boxes", "scores"]


def test_names_are_unique_and_never_empty():
    assert _output_names(["boxes", "scores"], 2) == ["boxes", "scores"]
    assert _output_names(["", "a", "a"], 3) == ["output0", "a", "a_2"]
    assert _output_names(None, 1) == ["output"] and _output_names(["x"], 2) == ["output0", "output1"]
