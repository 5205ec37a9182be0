"""Modern architectures with random weights, from PyPI packages (timm, ultralytics), exported to ONNX the way
their users export them: the model families people deploy on small boards today (ViTs, mobile hybrids with
attention, ConvNeXts, YOLO detectors). For tests and benchmarks; needs timm, torchvision and ultralytics
(requirements-nodeps.txt)."""

from __future__ import annotations

import sys
import types

# timm name -> input size (the size it was designed for, or a smaller one its layers accept)
TIMM = {
    "convnext_atto": 224, "convnext_femto": 224, "vit_tiny_patch16_224": 224, "deit_tiny_distilled_patch16_224": 224,
    "mobilevit_xxs": 256, "mobilevit_xs": 256, "mobilevitv2_050": 256, "efficientformerv2_s0": 224,
    "efficientformer_l1": 224, "edgenext_xx_small": 256, "edgenext_x_small": 256, "levit_128s": 224,
    "levit_128": 224, "fastvit_t8": 256, "efficientvit_m0": 224, "efficientvit_m1": 224, "efficientnet_b0": 224,
    "mobilenetv4_hybrid_medium": 256, "tiny_vit_5m_224": 224,
    # issue 24's held-out families (tests/python/test_held_out_families.py), for bench at their design size
    "pvt_v2_b0": 224, "xcit_nano_12_p16_224": 224, "mobilevitv2_075": 256, "convnextv2_atto": 224,
    "starnet_s050": 224, "mambaout_femto": 224,
}
# ultralytics model yaml -> input size
# ("-e2e": YOLOv10's one-to-one head with its top-k selection, as export(format="onnx", nms=False) writes it;
# ultralytics' default ONNX export of YOLOv10 keeps the one-to-many head, boxes and scores for NMS)
YOLO = {"yolov8n": 320, "yolo11n": 320, "yolov8n-seg": 320, "yolo11n-seg": 320, "yolov8n-pose": 320,
        "yolo12n": 320, "yolov10n": 320, "yolov10n-e2e": 320, "yolo11n-obb": 320}


def _import_timm():
    # The PyPI torchvision wheel cannot register its C++ ops beside the CPU torch; timm needs only its Python.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import timm

    return timm


def torch_model(name: str, seed: int = 0):
    """(nn.Module in eval mode, input shape) for a timm or ultralytics model name."""
    import torch

    torch.manual_seed(seed)
    if name in YOLO:
        from ultralytics import YOLO as Yolo

        model = Yolo(f"{name.removesuffix('-e2e')}.yaml").model
        if name.endswith("-e2e"):
            model.end2end = True  # as ultralytics' exporter sets it for nms=False
        model = model.fuse()
        for module in model.modules():  # as ultralytics' own ONNX exporter sets them
            module.export, module.format = True, "onnx"
        return model.eval(), (1, 3, YOLO[name], YOLO[name])
    if name not in TIMM:
        raise KeyError(f"unknown model {name}: choose one of {', '.join([*TIMM, *YOLO])}")
    timm = _import_timm()
    model = timm.create_model(name, pretrained=False).eval()
    if name.startswith(("fastvit", "mobileone", "repvgg")):
        from timm.utils.model import reparameterize_model

        model = reparameterize_model(model)
    return model, (1, 3, TIMM[name], TIMM[name])


def to_onnx(name: str, path: str, seed: int = 0, size: int | None = None) -> tuple[str, tuple[int, ...]]:
    """Export with the TorchScript-based exporter at opset 17, as most published models were; at `size` x `size`
    instead of the table's size when given."""
    import torch

    model, shape = torch_model(name, seed)
    if size is not None:
        shape = (1, 3, size, size)
    example = torch.randn(*shape)
    with torch.no_grad():
        model(example)
        torch.onnx.export(model, (example,), path, input_names=["input"], opset_version=17, dynamo=False)
    return path, shape


def pnnx_from_onnx(onnx_path: str, shape, directory) -> str:
    """pnnx's ncnn graph of an ONNX file (fp32 weights), converted in `directory`: the reference graph for layer
    counts and native-ncnn timings. Returns its path without '.ncnn.param' (pnnx writes '-' in names as '_')."""
    import shutil
    import subprocess
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / Path(onnx_path).name
    shutil.copy(onnx_path, source)
    pnnx = Path(sys.executable).parent / "pnnx"
    subprocess.run([str(pnnx), source.name, f"inputshape=[{','.join(map(str, shape))}]", "fp16=0"], cwd=directory,
                   capture_output=True, timeout=600, check=True)
    return str(next(directory.glob("*.ncnn.param"))).removesuffix(".ncnn.param")

