"""The models bench_dynamic.py measures, made once into --workdir (cached: delete the directory to remake them).

Per model, from ONE torch model (same weights everywhere):
  <name>.onnx          ONNX with symbolic H and W (YOLOv8n: ultralytics' own exporter, dynamic=True; the
                       classifier: torch.onnx.export with dynamic_axes), as users export them
  dyn.so               `tvm-ncnn export <name>.onnx -o dyn.so`: H and W stay dynamic
  fixed_<H>x<W>.so     `tvm-ncnn export <name>.onnx -o fixed.so --input NAME:1,3,H,W`, one per measured size
  pnnx/                pnnx's dynamic ncnn graph of the same model traced by TorchScript, converted with
                       `inputshape=[1,3,H1,W1] inputshape2=[1,3,H2,W2]` (native ncnn's reference)
  x_<H>x<W>.npy        the input tensor at each size (a letterboxed photo for YOLO, noise for the classifier)
YOLOv8n's weights are bench_detect.biased(): convs at unit gain, class biases set so that 100 anchors pass 0.25 on
grace_hopper.jpg at 640x640 (a realistic decode for the end-to-end rows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

PYTHON = sys.executable
# name -> (input name, sizes measured as (H, W), pnnx's two shapes)
MODELS = {
    "yolov8n": ("images", [(640, 640), (384, 640)], [(640, 640), (320, 480)]),
    "mobilenetv2_100": ("input", [(224, 224), (320, 256)], [(224, 224), (320, 256)]),
}
MEMORY_SIZES = [(640, 640), (384, 640), (320, 480)]  # YOLOv8n's sizes alternated in the memory rows


def photo_16x9(workdir: Path) -> Path:
    """matplotlib's grace_hopper.jpg (512 x 600) cut to 16:9 (512 x 288, centred): a landscape frame."""
    from PIL import Image

    out = workdir / "hopper_16x9.jpg"
    if not out.exists():
        src = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
        im = Image.open(src).convert("RGB")
        top = (im.height - 288) // 2
        im.crop((0, top, 512, top + 288)).save(out, quality=95)
    return out


def torch_yolo(d: Path):
    """(torch model ready to trace, ONNX path): ultralytics' exporter writes the ONNX from the same weights."""
    import torch

    from bench_detect import biased

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from ultralytics import YOLO

    torch.manual_seed(0)
    cwd = os.getcwd()
    os.chdir(d)  # the exporter writes beside the (yaml) model name
    try:
        yolo = YOLO("yolov8n.yaml")
        biased(yolo.model, 100)
        onnx_path = d / yolo.export(format="onnx", imgsz=640, dynamic=True, simplify=False)
    finally:
        os.chdir(cwd)
    model = yolo.model.fuse().eval()  # the exporter worked on a copy: fuse and flag this one as it did
    for module in model.modules():
        module.export, module.format = True, "onnx"
    # pnnx cannot write ncnn layers for the anchors made from the feature maps' sizes (arange, meshgrid: its graph
    # keeps pnnx.Expression and torch.arange, which ncnn cannot load), so native ncnn's graph stops where ncnn's
    # own YOLOv8 examples stop: box distances (DFL) and class scores (sigmoid), [1, 84, N]; the anchor arithmetic
    # (2 adds, 2 subs and a multiply per anchor) is left out of native's time and in model.so's.
    head = model.model[-1]
    head._get_decode_boxes = lambda x: head.dfl(x["boxes"])
    return model, onnx_path


def torch_classifier(name: str, d: Path):
    import torch

    from tvm_ncnn.zoo.modern import _import_timm

    torch.manual_seed(0)
    model = _import_timm().create_model(name, pretrained=False).eval()
    onnx_path = d / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(onnx_path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {2: "height", 3: "width"}})
    return model, onnx_path


def pnnx_dynamic(model, shapes, d: Path) -> str:
    """TorchScript trace at the first shape, then pnnx with both shapes: ncnn's param with shape expressions."""
    import torch

    p = d / "pnnx"
    if (p / "model.ncnn.param").exists():
        return str(p / "model.ncnn")
    p.mkdir(exist_ok=True)
    (h1, w1), (h2, w2) = shapes
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, h1, w1), strict=False)
    traced.save(str(p / "model.pt"))
    cmd = [str(Path(PYTHON).parent / "pnnx"), "model.pt", f"inputshape=[1,3,{h1},{w1}]",
           f"inputshape2=[1,3,{h2},{w2}]", "fp16=0"]
    proc = subprocess.run(cmd, cwd=p, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 or not (p / "model.ncnn.param").exists():
        sys.exit(f"dynamic_models: pnnx failed: {proc.stderr[-1500:]}")
    (p / "command.txt").write_text(" ".join(cmd[1:]) + "\n")
    return str(p / "model.ncnn")


def export(onnx_path: Path, out: Path, shape=None, name="images") -> dict:
    """The CLI's export (tvm-ncnn export), from Python for its ExportResult.schedules."""
    import tvm_ncnn

    cached = out.with_suffix(".json")
    if cached.exists() and out.exists():
        return json.loads(cached.read_text())
    result = tvm_ncnn.export(str(onnx_path), str(out), input_shapes={name: list(shape)} if shape else None)
    report = {"schedules": {k: str(v) for k, v in (result.schedules or {}).items()}, "seconds": result.seconds,
            "regions": result.report.regions}
    cached.write_text(json.dumps(report))
    return report


def inputs(name: str, sizes, d: Path, photo: Path) -> None:
    rng = np.random.default_rng(0)
    for h, w in sizes:
        path = d / f"x_{h}x{w}.npy"
        if path.exists():
            continue
        if name == "yolov8n":  # the photo as the model sees it at this size (stretched: only the values matter)
            from PIL import Image

            im = Image.open(photo).convert("RGB").resize((w, h), Image.BILINEAR)
            x = (np.asarray(im).transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        else:
            x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        np.save(path, x)


def prepare(name: str, workdir: Path) -> dict:
    """Everything for one model, made once; returns paths (and the export reports) as a dict."""
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    info_path = d / "info.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    input_name, sizes, pnnx_shapes = MODELS[name]
    model, onnx_path = torch_yolo(d) if name == "yolov8n" else torch_classifier(name, d)
    info = {"name": name, "input": input_name, "onnx": str(onnx_path), "sizes": sizes,
            "pnnx": pnnx_dynamic(model, pnnx_shapes, d), "dyn": str(d / "dyn.so"), "fixed": {}, "exports": {}}
    info["exports"]["dyn"] = export(onnx_path, d / "dyn.so")
    all_sizes = sizes + (MEMORY_SIZES if name == "yolov8n" else [])
    for h, w in sizes:
        so = d / f"fixed_{h}x{w}.so"
        info["exports"][f"fixed_{h}x{w}"] = export(onnx_path, so, (1, 3, h, w), input_name)
        info["fixed"][f"{h}x{w}"] = str(so)
    inputs(name, all_sizes, d, photo_16x9(workdir))
    info_path.write_text(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    wd = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tvm_ncnn_bench_dynamic")
    for n in MODELS:
        print(json.dumps(prepare(n, wd), indent=1), flush=True)
