"""Whole models through export -> model.so -> tvm_ncnn.load and deploy_app, against onnxruntime and TVM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo

from conftest import deploy_app_output, max_rel_error, onnxruntime_run, tvm_reference
from nets import TinyConvNet

TOLERANCE = 1e-4

# name -> (how to build the torch module, input shape); pytorchcv nets end in a fixed 7x7 pool: 224 input
MODELS = {
    "tiny": (TinyConvNet, (1, 3, 64, 64)),
    "mobilenetv2": (lambda: zoo.torch_model("mobilenetv2"), (1, 3, 224, 224)),
    "resnet18": (lambda: zoo.torch_model("resnet18"), (1, 3, 224, 224)),
    "efficientnet-lite0": (lambda: zoo.torch_model("efficientnet-lite0"), (1, 3, 224, 224)),
}


@pytest.fixture(scope="module")
def exported(workdir):
    """name -> (onnx path, model.so path, export result), exported once per test session."""
    cache = {}

    def get(name):
        if name not in cache:
            make, shape = MODELS[name]
            torch.manual_seed(0)
            onnx_path = zoo.to_onnx(make().eval(), str(workdir / f"{name}.onnx"), shape)
            result = tvm_ncnn.export(onnx_path, workdir / f"{name}.so")
            cache[name] = (onnx_path, str(workdir / f"{name}.so"), result)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(MODELS))
def test_model_matches_references(name, exported, tmp_path, deploy_app):
    onnx_path, model_so, result = exported(name)
    shape = MODELS[name][1]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)

    ort_out = onnxruntime_run(onnx_path, x)
    tvm_out = tvm_reference(onnx_path, x)
    loaded = tvm_ncnn.load(model_so).single(x)
    app_out, timing = deploy_app_output(model_so, x, tmp_path)

    for got, via in ((loaded, "tvm_ncnn.load"), (app_out, "deploy_app")):
        assert max_rel_error(got, ort_out) <= TOLERANCE, f"{name} via {via} vs onnxruntime"
        assert max_rel_error(got, tvm_out) <= TOLERANCE, f"{name} via {via} vs TVM alone"
    assert timing["p50_ms"] > 0 and timing["threads"] >= 1


@pytest.mark.parametrize("name", list(MODELS))
def test_convolutions_run_in_ncnn(name, exported):
    report = exported(name)[2].report
    convs = [op for op in report.ops if op.op == "relax.nn.conv2d"]
    assert convs, "the model has convolutions"
    assert all(op.place.startswith("ncnn") for op in convs), \
        [f"{op.op} {op.shape}: {op.reason}" for op in convs if op.place == "tvm"]
    assert report.ncnn_flops_share > 0.95


def test_pretrained_classifier_agrees_on_a_photo(exported, tmp_path, deploy_app):
    """EfficientNet-Lite0 on Grace Hopper's photo: deploy_app's top-5 equals onnxruntime's on the same
    preprocessed input."""
    onnx_path, _, _ = exported("efficientnet-lite0")
    spec = zoo.MODELS["efficientnet-lite0"]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(zoo.imagenet_labels()) + "\n")
    model_so = str(tmp_path / "effnet_labeled.so")
    tvm_ncnn.export(onnx_path, model_so, labels=str(labels),
                    preprocess=tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std))
    model = tvm_ncnn.load(model_so)
    x = model.load_image(zoo.sample_image())
    assert x.shape == (1, 3, 224, 224)
    ref_top5 = list(np.argsort(-onnxruntime_run(onnx_path, x)[0])[:5])

    import json
    from conftest import run_deploy_app

    report = json.loads(run_deploy_app(model_so, zoo.sample_image(), "--json", "--repeat", "2").stdout)
    assert [entry["index"] for entry in report["topk"]] == ref_top5
    assert report["topk"][0]["label"] == zoo.imagenet_labels()[ref_top5[0]]
