"""Detectors as ultralytics' own exporter writes them (`YOLO(...).export(format="onnx")`): the preprocessing and
task its ONNX metadata records, NMS-free end-to-end heads (YOLOv10, YOLO26), oriented boxes (YOLO11-obb) and a
dynamic=True export (one model.so for every size, letterboxed as ultralytics' predictor does), each held to
ultralytics' own code on the same pixels or raw outputs, or to onnxruntime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEPLOY_APP
from detect_support import with_scores

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics' exporter: no downloads, no pip installs of its own
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

import tvm_ncnn  # noqa: E402

PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # 512 x 600


# ---- ultralytics' own ONNX export: its metadata says the task and the preprocessing


def ultralytics_onnx(yaml: str, directory: Path, imgsz: int, scores: bool = False, **kwargs) -> str:
    """ONNX as `yolo export format=onnx` writes it (metadata_props: task, stride, imgsz, names, end2end), random
    weights from the yaml (scores: varied, with_scores)."""
    from ultralytics import YOLO

    cwd = os.getcwd()
    os.chdir(directory)  # the exporter writes beside the (yaml) model name
    try:
        yolo = YOLO(yaml)
        if scores:
            with_scores(yolo.model)
        return str(directory / yolo.export(format="onnx", imgsz=imgsz, simplify=False, **kwargs))
    finally:
        os.chdir(cwd)


def test_ultralytics_onnx_records_its_preprocessing(tmp_path, capsys):
    """Exported with no flags, ultralytics' own ONNX records what ultralytics feeds it -- LetterBox (114, centred)
    and pixels / 255 for detect, shorter side + centre cut and / 255 for classify -- and says where it came from;
    a flag overrides only what it sets. The input is ultralytics' LetterBox of the photo's pixels (within one level; OpenCV's SIMD paths round a few pixels of a large shrink
    otherwise)."""
    import cv2
    from ultralytics.data.augment import LetterBox

    from tvm_ncnn.cli.main import main

    onnx_path = ultralytics_onnx("yolov8n.yaml", tmp_path, 320)
    so = tmp_path / "y.so"
    assert main(["export", onnx_path, "-o", str(so)]) == 0
    printed = capsys.readouterr().out
    meta = tvm_ncnn.read_metadata(so)
    assert meta["preprocess"] == {"mean": [0.0] * 3, "std": [255.0] * 3, "color": "RGB", "resize": "letterbox",
                                  "pad": 114, "anchor": "center"}
    assert meta["postprocess"]["task"] == "detect" and len(meta["labels"]) == 80
    assert set(meta["sources"].values()) == {"the model's metadata (ultralytics detect)"}
    assert "letterbox:114 (fit whole, centred" in printed and "from the model's metadata" in printed, printed
    model = tvm_ncnn.load(so, threads=2)
    bgr = cv2.imread(str(PHOTO))
    ref = LetterBox(new_shape=(320, 320), auto=False)(image=bgr)[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0
    got = model.load_image(bgr, pixel_format="BGR")  # the same decoded pixels (stb and libjpeg differ a little)
    apart = np.abs(got - ref.astype(np.float32)) * 255  # in pixel levels
    assert apart.max() < 1.001 and (apart > 0.5).mean() < 0.01, (apart.max(), (apart > 0.5).mean())

    cls_onnx = ultralytics_onnx("yolov8n-cls.yaml", tmp_path, 64)
    tvm_ncnn.export(cls_onnx, tmp_path / "c.so", preprocess=tvm_ncnn.Preprocess(color="BGR"))
    meta = tvm_ncnn.read_metadata(tmp_path / "c.so")
    assert meta["preprocess"] == {"mean": [0.0] * 3, "std": [255.0] * 3, "color": "BGR", "resize": "crop",
                                  "crop_pct": 1.0}
    assert meta["postprocess"] == {"task": "classify"} and meta["sources"]["color"] == "flags"
    assert meta["sources"]["resize"] == "the model's metadata (ultralytics classify)"
    shown = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "inspect", str(tmp_path / "c.so")],
                           capture_output=True, text=True, timeout=300).stdout
    assert "crop:1 (shorter side" in shown and "color from flags" in shown, shown


@pytest.mark.parametrize("yaml", ["yolov10n.yaml", "yolo26n.yaml"])
def test_end2end_heads_match_ultralytics(yaml, tmp_path):
    """NMS-free heads exported end to end (ultralytics' nms=False: output [1, 300, 6], metadata end2end True) are
    recognised from the metadata with no flags and decoded with no NMS: the same rows, in the same order, as
    ultralytics' non_max_suppression(end2end=True) + scale_boxes on the same raw outputs."""
    from ultralytics.utils import nms, ops

    onnx_path = ultralytics_onnx(yaml, tmp_path, 320, scores=True, nms=False)
    so = tmp_path / "e2e.so"
    tvm_ncnn.export(onnx_path, so)
    model = tvm_ncnn.load(so, threads=2)
    post = model.info["postprocess"]
    assert (post["task"], post["layout"], post["classes"]) == ("detect", "end2end", 80)
    raw = model(model.load_image(str(PHOTO)))
    assert raw[0].shape == (1, 300, 6)
    conf = float(np.quantile(raw[0][0, :, 4], 0.5))  # half the rows pass
    found = model.postprocess(raw, model.image_transform((512, 600)), score=conf)
    det = nms.non_max_suppression(torch.from_numpy(raw[0]), conf, 0.7, end2end=True)[0]
    boxes = ops.scale_boxes((320, 320), det[:, :4].clone(), (600, 512))
    assert len(found) == len(det) > 100
    assert np.array_equal(found.scores, det[:, 4].numpy()) and np.array_equal(found.classes, det[:, 5].numpy())
    assert np.abs(found.boxes - boxes.numpy()).max() < 1e-3
    shown = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "inspect", str(so)], capture_output=True,
                           text=True, timeout=300).stdout
    assert "detect (end2end, 80 classes; score > 0.25, no NMS" in shown, shown


def test_obb_matches_ultralytics_rotated_nms(tmp_path):
    """ultralytics' own ONNX of YOLO11n-obb (metadata task obb), exported with no flags: oriented boxes decoded
    (xywh + angle), ultralytics' rotated NMS (ProbIoU, Fast NMS) and mapped back as its scale_boxes(xywh=True):
    the same boxes, in the same order, as ultralytics' non_max_suppression(rotated=True) on the same raw outputs;
    deploy_app's --json carries rbox beside the axis-aligned box and --draw writes the outlines."""
    from ultralytics.utils import nms, ops

    so = tmp_path / "obb.so"
    tvm_ncnn.export(ultralytics_onnx("yolo11n-obb.yaml", tmp_path, 320, scores=True), so)
    model = tvm_ncnn.load(so, threads=2)
    post = model.info["postprocess"]
    assert (post["task"], post["layout"], post["classes"]) == ("obb", "yolov8", 80)
    assert model.info["preprocess"]["resize"] == "letterbox" and model.info["preprocess"]["std"] == [255.0] * 3
    raw = model(model.load_image(str(PHOTO)))
    found = model.postprocess(raw, model.image_transform((512, 600)))
    det = nms.non_max_suppression(torch.from_numpy(raw[0]), post["score"], post["iou"], nc=80, rotated=True)[0]
    ref = torch.cat([det[:, :4], det[:, -1:]], 1)
    ref[:, :4] = ops.scale_boxes((320, 320), ref[:, :4], (600, 512), xywh=True)
    print(f"obb: {len(found)} rotated boxes, ultralytics {len(det)}")
    assert len(found) == len(det) > 5
    assert np.abs(found.scores - det[:, 4].numpy()).max() < 1e-6
    assert np.array_equal(found.classes, det[:, 5].numpy().astype(int))
    assert np.abs(found.rboxes - ref.numpy()).max() < 1e-3
    cx = np.clip(found.rboxes[:, 0], 0, 512)  # box: the rotated box's extent, clipped to the image
    assert ((found.boxes[:, 0] <= cx) & (cx <= found.boxes[:, 2])).all()

    drawn = tmp_path / "obb.png"
    proc = subprocess.run([str(DEPLOY_APP), str(so), str(PHOTO), "--json", "--repeat", "1", "--draw", str(drawn)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["task"] == "obb" and len(report["detections"]) == len(found)
    for d, rbox in zip(report["detections"], found.rboxes):
        assert np.allclose(d["rbox"], rbox, atol=0.01) and len(d["box"]) == 4
    assert drawn.stat().st_size > 0


# ---- one model.so for every input size: ultralytics' dynamic=True ONNX and its predictor's rect letterbox


@pytest.fixture(scope="module")
def dynamic_yolo(tmp_path_factory):
    """YOLOv8n as `yolo export format=onnx dynamic=True` writes it (batch, height and width symbolic; random
    weights with varied scores), exported through tvm_ncnn once with no flags: H and W stay dynamic (multiples of
    32) and the letterbox takes ultralytics' imgsz 640 and stride 32 from its metadata."""
    directory = tmp_path_factory.mktemp("dynamic_yolo")
    onnx_path = ultralytics_onnx("yolov8n.yaml", directory, 640, scores=True, dynamic=True)
    so = directory / "yolo.so"
    tvm_ncnn.export(onnx_path, so)
    return onnx_path, so, tvm_ncnn.load(so, threads=2)


def ultralytics_predict(onnx_path: str, image: str, **kwargs):
    """ultralytics' own predictor on its ONNX (onnxruntime): its letterbox, inference, NMS and scale_boxes. Returns
    the result and the input shapes its preprocess made. The PyPI torchvision cannot register its C++ ops beside the
    CPU torch (tvm_ncnn.zoo.modern), and the predictor imports torchvision to choose torchvision's NMS: here
    torchvision stands for ultralytics' own TorchNMS.nms ("matches torchvision behavior exactly")."""
    import types

    from ultralytics import YOLO
    from ultralytics.utils.nms import TorchNMS

    shapes = []
    saved = sys.modules.get("torchvision")
    sys.modules["torchvision"] = types.SimpleNamespace(ops=types.SimpleNamespace(nms=TorchNMS.nms))
    try:
        yolo = YOLO(onnx_path, task="detect")
        yolo.predict(image, verbose=False, **kwargs)  # makes the predictor; then record what it preprocesses
        preprocess = yolo.predictor.preprocess
        yolo.predictor.preprocess = lambda im: shapes.append(tuple((x := preprocess(im)).shape)) or x
        result = yolo.predict(image, verbose=False, **kwargs)[0]
    finally:
        if saved is None:
            del sys.modules["torchvision"]
        else:
            sys.modules["torchvision"] = saved
    return result, shapes


def test_dynamic_letterbox_16_9_matches_ultralytics_predictor(dynamic_yolo, tmp_path):
    """A 16:9 photo (1280 x 720) through the dynamic model.so: the runtime letterboxes it to 640 x 384, as
    ultralytics' predictor does for a dynamic ONNX (LetterBox(auto=True): checked on the tensor its preprocess
    made), and deploy_app and Python's detect give ultralytics' detections: the same classes, scores within 1e-4,
    boxes within a pixel (IoU >= 0.99 each, and the largest corner offset printed)."""
    import cv2

    from detect_support import match

    onnx_path, so, model = dynamic_yolo
    grace = cv2.imread(str(PHOTO))
    photo = str(tmp_path / "wide.png")  # PNG: both decoders give the same pixels
    cv2.imwrite(photo, cv2.resize(grace[100:388, :512], (1280, 720)))
    conf, iou_thres = 0.35, 0.7  # tens of boxes pass, well under max_det 300
    ref, shapes = ultralytics_predict(onnx_path, photo, imgsz=640, conf=conf, iou=iou_thres)
    assert shapes == [(1, 3, 384, 640)]
    ref_boxes, ref_scores, ref_classes = (ref.boxes.xyxy.numpy(), ref.boxes.conf.numpy(),
                                          ref.boxes.cls.numpy().astype(int))
    assert 5 < len(ref_scores) < 300

    assert model.load_image(photo).shape == (1, 3, 384, 640)
    found = model.detect(photo, score=conf, iou=iou_thres)
    pairs, worst = match(found.boxes, found.scores, found.classes, ref_boxes, ref_scores, ref_classes)
    offset = max(float(np.abs(found.boxes[i] - ref_boxes[j]).max()) for i, j in pairs)
    score_apart = max(abs(float(found.scores[i] - ref_scores[j])) for i, j in pairs)

    proc = subprocess.run([str(DEPLOY_APP), str(so), photo, "--json", "--repeat", "1", "--score", str(conf),
                           "--iou", str(iou_thres)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["input"]["shape"] == [1, 3, 384, 640]
    app = report["detections"]
    app_pairs, app_worst = match(np.array([d["box"] for d in app]), np.array([d["score"] for d in app]),
                                 np.array([d["class"] for d in app]), ref_boxes, ref_scores, ref_classes)
    app_offset = max(float(np.abs(np.array(app[i]["box"]) - ref_boxes[j]).max()) for i, j in app_pairs)
    print(f"16:9 photo at 640x384: {len(found)} detections as ultralytics' {len(ref_scores)}; lowest IoU "
          f"{worst:.6f} (deploy_app {app_worst:.6f}), max box offset {offset:.3f} px (deploy_app {app_offset:.3f}, "
          f"its JSON has 2 decimals), max score difference {score_apart:.1e}")
    assert offset <= 1.0 and app_offset <= 1.0


@pytest.mark.parametrize("size", [(384, 640), (640, 640), (256, 800)])
def test_dynamic_yolo_sizes_match_onnxruntime(dynamic_yolo, size):
    """The one model.so at three input sizes against onnxruntime on the same ONNX, random inputs: max abs error
    <= 1e-4 x max|ref|."""
    from conftest import max_rel_error, onnxruntime_run

    onnx_path, _, model = dynamic_yolo
    x = np.random.default_rng(sum(size)).random((1, 3, *size), dtype=np.float32)
    ref = onnxruntime_run(onnx_path, x)
    got = model(x)[0]
    error = max_rel_error(got, ref)
    print(f"{size}: output {got.shape}, max abs error / max|ref| {error:.2e}")
    assert error <= 1e-4
