"""Images into an input whose H and/or W is dynamic: the runtime's one preprocessing (C++ PreprocessImage, reached
here through tvm_ncnn.runtime.images.preprocess, the binding load_image uses) sizes the tensor from the image by the
rule model.so's metadata records, and each rule is held to the code the models were trained with -- ultralytics'
LetterBox(auto=True), rapidocr's DBNet detector resize (DetPreProcess.resize) and its recogniser's line
(TextRecognizer.resize_norm_img). The metadata is written here by hand, as runtime/FORMAT.md describes it ("inputs"
with -1 and "dynamic"), until export writes it for a dynamic model. Refusals: one line each."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

import tvm_ncnn
from tvm_ncnn.exporter.preprocessing import fit_input
from tvm_ncnn.runtime import native
from tvm_ncnn.runtime.detect import postprocess
from tvm_ncnn.runtime.images import preprocess

SAMPLES = Path(__import__("matplotlib").get_data_path()) / "sample_data"
GRACE = cv2.imread(str(SAMPLES / "grace_hopper.jpg"))             # 512 x 600, BGR
PACK = cv2.imread(str(SAMPLES / "Minduka_Present_Blue_Pack.png"))  # 128 x 128
WIDE = np.ascontiguousarray(GRACE[100:388, :512])                    # 512 x 288: 16:9
PHOTOS = {"grace_hopper": GRACE, "pack": PACK, "16:9": WIDE, "16:9 large": cv2.resize(WIDE, (1920, 1080)),
          "landscape": cv2.resize(GRACE, (300, 200))}


def dim(axis, multiple=32, low=32, high=4096):
    return {"axis": axis, "name": "HW"[axis - 2], "multiple": multiple, "min": low, "max": high}


def metadata(shape, dynamic, **preprocess) -> dict:
    """The metadata runtime/FORMAT.md describes, only what preprocessing reads."""
    pre = {"mean": [0.0] * 3, "std": [1.0] * 3, "color": "BGR", **preprocess}
    return {"format_version": 3, "tvm_version": "", "inputs": [{"name": "x", "shape": shape, "dtype": "float32",
            "dynamic": dynamic}], "outputs": [], "preprocess": pre}


def yolo(size=640, stride=32, **more) -> dict:
    return metadata([1, 3, -1, -1], [dim(2), dim(3)], resize="letterbox", pad=114, anchor="center", size=size,
                    stride=stride, **more)


def pixels(x: np.ndarray) -> np.ndarray:
    """The preprocessed tensor (mean 0, std 1, BGR) back as H x W x 3 pixel values."""
    return x[0].transpose(1, 2, 0)


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("size", [640, 320])
def test_letterbox_is_ultralytics_auto(photo, size):
    """letterbox on a dynamic input is ultralytics' LetterBox(auto=True, stride=32), as its predictor runs: the
    long side to imgsz, the short side padded only to the next multiple of 32 (a 16:9 frame at 640: 640 x 384),
    centred. The size is the same exactly. Pixels: both resize with 11-bit fixed-point bilinear (OpenCV's
    INTER_LINEAR, ncnn's resize_bilinear), whose weights are rounded differently at a few sample positions, so
    a value may be one level apart -- measured in at most 0.3% of the values of these photos; equal elsewhere."""
    from ultralytics.data.augment import LetterBox

    image = PHOTOS[photo]
    ref = LetterBox(new_shape=(size, size), auto=True, stride=32)(image=image)
    x, t = preprocess(image, yolo(size), "BGR")
    assert x.shape == (1, 3) + ref.shape[:2]
    assert (t.input_height, t.input_width) == ref.shape[:2]
    apart = np.abs(pixels(x) - ref)
    assert apart.max() <= 1 and (apart > 0).mean() < 0.003, (apart.max(), (apart > 0).mean())
    # where the image landed: the transform maps the unpadded region's corners back to the photo's
    inside = np.argwhere(~np.all(ref == 114, axis=2))
    (top, left), (bottom, right) = inside.min(0), inside.max(0) + 1
    assert (t.offset_y, t.offset_x) == (top, left)
    assert np.allclose(t.to_image([left, right], [top, bottom]), [[0, image.shape[1]], [0, image.shape[0]]])


def test_letterbox_16_9_frame_is_640_by_384_and_topleft_pads_right_bottom():
    x, t = preprocess(PHOTOS["16:9 large"], yolo(), "BGR")
    assert x.shape == (1, 3, 384, 640) and (t.offset_x, t.offset_y) == (0, 12)
    meta = yolo()
    meta["preprocess"]["anchor"] = "topleft"  # YOLOX: r and int(w * r) as its preproc, then up to 32 multiples
    x, t = preprocess(PHOTOS["16:9 large"], meta, "BGR")
    assert x.shape == (1, 3, 384, 640) and (t.offset_x, t.offset_y) == (0, 0) and t.scale_x == 1 / 3
    assert np.all(pixels(x)[360:] == 114) and not np.all(pixels(x)[:360] == 114)


def rapidocr_det(limit_side_len, limit_type):
    """rapidocr's own DetPreProcess. Its module imports pyclipper and shapely for the box post-processing, which
    the venv lacks: stand-ins let the module import; the resize under test uses neither."""
    for name in ("pyclipper", "shapely", "shapely.geometry"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.SimpleNamespace(Polygon=None)
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    return DetPreProcess(limit_side_len, limit_type)


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("limit", [("min", 736), ("max", 960), ("max", 320)])
def test_limit_is_rapidocr_det_resize(photo, limit):
    """limit:min / limit:max is rapidocr's (PaddleOCR's) DB detector resize: one ratio from the limiting side,
    sides truncated, then rounded to the nearest multiple of 32 (half to even) -- the same size exactly; pixels
    within one level of its cv2.resize (as above)."""
    kind, side = limit
    image = PHOTOS[photo]
    ref = rapidocr_det(side, kind).resize(image)
    x, t = preprocess(image, metadata([1, 3, -1, -1], [dim(2), dim(3)], resize="limit", limit=kind, size=side,
                                      stride=32), "BGR")
    assert x.shape == (1, 3) + ref.shape[:2]
    assert np.abs(pixels(x) - ref).max() <= 1
    # rapidocr maps its boxes back with ratio_h, ratio_w = resized / original
    assert (t.scale_x, t.scale_y) == (ref.shape[1] / image.shape[1], ref.shape[0] / image.shape[0])


def rapidocr_rec(height=48, width=320):
    from rapidocr_onnxruntime.ch_ppocr_rec.text_recognize import TextRecognizer

    rec = TextRecognizer.__new__(TextRecognizer)  # resize_norm_img reads only rec_image_shape: no model needed
    rec.rec_image_shape = [3, height, width]
    return rec


def line(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (max(2, height // 4), max(2, width // 4), 3), np.uint8), (width, height))


REC_MEAN = {"mean": [127.5] * 3, "std": [127.5] * 3}  # rapidocr: (x / 255 - 0.5) / 0.5


def rec_meta(height=48, stride=1, **sizes):
    meta = metadata([1, 3, height, -1], [dim(3, stride, 1, 4096)], resize="height", stride=stride, **sizes)
    meta["preprocess"].update(REC_MEAN)
    return meta


@pytest.mark.parametrize("size", [(40, 48), (100, 30), (320, 48), (500, 48), (1000, 31), (3, 60), (2000, 30)])
def test_height_is_rapidocr_rec_line(size):
    """height (min_width 320 for a 48-high input) is rapidocr's TextRecognizer.resize_norm_img for one line: the
    width int(48 * max(320 / 48, w / h)), the line ceil(48 * w / h) wide (at most that), zeros to the right in the
    normalised input. The same shape exactly; values within one level (1/127.5) of its cv2.resize + float
    normalisation, the padding exactly 0."""
    image = line(*size)
    ref = rapidocr_rec().resize_norm_img(image, max(320 / 48, size[0] / size[1]))
    x, t = preprocess(image, rec_meta(min_width=320, max_width=4096), "BGR")
    assert x.shape == (1,) + ref.shape and t.input_width == ref.shape[2]
    assert np.abs(x[0] - ref).max() <= 1 / 127.5 + 1e-6
    assert np.all(x[0, :, :, t.resized_width:] == 0) and np.all(ref[:, :, t.resized_width:] == 0)


def test_height_caps_the_width_and_rounds_to_the_stride():
    """max_width squeezes a longer line into the widest input, as resize_norm_img does when its max_wh_ratio is
    max_width / 48; with stride 8 the width rounds up to a multiple of 8, the line keeping its own width."""
    image = line(3000, 40)
    ref = rapidocr_rec().resize_norm_img(image, 1280 / 48)
    x, t = preprocess(image, rec_meta(stride=8, min_width=320, max_width=1280), "BGR")
    assert x.shape == (1,) + ref.shape == (1, 3, 48, 1280) and t.resized_width == 1280
    assert np.abs(x[0] - ref).max() <= 1 / 127.5 + 1e-6
    x, t = preprocess(line(403, 48), rec_meta(stride=8, min_width=320, max_width=1280), "BGR")
    assert (t.input_width, t.resized_width) == (408, 403)
    padded = rec_meta(stride=8, min_width=320, max_width=1280, pad=127.5)  # a pixel value: 0 with this mean/std
    meta = rec_meta(stride=8, min_width=320, max_width=1280, pad=255)
    assert np.array_equal(preprocess(line(100, 48), padded, "BGR")[0], preprocess(line(100, 48), rec_meta(
        stride=8, min_width=320, max_width=1280), "BGR")[0])
    assert np.all(preprocess(line(100, 48), meta, "BGR")[0][0, :, :, 100:] == 1)


def test_file_and_detections_follow_the_image(tmp_path):
    """A file preprocesses as its pixels do (deploy_app's path), and a detector's boxes map back through the
    transform of this image's tensor size: a YOLOX grid on a 640 x 384 input, one cell at stride 32."""
    cv2.imwrite(str(tmp_path / "wide.png"), PHOTOS["16:9 large"])
    meta = yolo()
    meta["preprocess"]["anchor"] = "topleft"
    tensor = native.get_function("tvm_ncnn.load_image")(str(tmp_path / "wide.png"), json.dumps(meta))
    x, t = preprocess(PHOTOS["16:9 large"], meta, "BGR")
    assert np.array_equal(np.from_dlpack(tensor), x)

    meta["postprocess"] = {"task": "detect", "layout": "yolox", "classes": 1, "strides": [8, 16, 32],
                           "score": 0.25, "iou": 0.45}
    cells = [(384 // s) * (640 // s) for s in (8, 16, 32)]
    y = np.zeros((1, sum(cells), 6), np.float32)
    y[0, cells[0] + cells[1] + 2 * 20 + 3, 4:] = 1  # stride 32, grid x 3, y 2: box 80..112 x 48..80 in the input
    found = postprocess(json.dumps(meta), [y], t)
    assert np.allclose(found.boxes, [[80 * 3, 48 * 3, 112 * 3, 80 * 3]])


def test_metadata_inspect_and_header_text():
    """inspect shows the rule with its sizes (meta/preprocess.resize_text)."""
    from tvm_ncnn.meta.preprocess import resize_text

    assert resize_text(yolo()["preprocess"]).startswith("letterbox:114 (long side to the size, the short side "
                                                        "padded only to a stride multiple, size 640, stride 32")
    assert "min_width 320, max_width 1280" in resize_text(rec_meta(min_width=320, max_width=1280)["preprocess"])
    assert resize_text({"resize": "limit", "limit": "max", "size": 960, "stride": 32}).startswith(
        "limit:max (long side down to the size")


def fit(resize, spec, asked=True, hints=None, **sizes):
    return fit_input(tvm_ncnn.Preprocess(resize=resize, **sizes), spec, hints or {}, asked)


STATIC = {"name": "x", "shape": [1, 3, 48, 320], "dtype": "float32"}
DET = {"name": "x", "shape": [1, 3, -1, -1], "dtype": "float32", "dynamic": [dim(2), dim(3)]}
REC = {"name": "x", "shape": [1, 3, 48, -1], "dtype": "float32", "dynamic": [dim(3, 8, 16, 2048)]}


def test_export_fills_the_sizes():
    """export's defaults: ultralytics' imgsz and stride, else 640 and the input's multiple; limit 736 (min) /
    960 (max); height from the input's dynamic range, at most 1280."""
    assert (fit("letterbox", DET, hints={"imgsz": 320, "stride": 64}).size,
            fit("letterbox", DET, hints={"imgsz": 320, "stride": 64}).stride) == (320, 64)
    assert fit("letterbox", DET).to_json()["size"] == 640 and fit("letterbox", DET).stride == 32
    assert (fit("limit", DET).size, fit("limit:max", DET).size, fit("limit", DET).stride) == (736, 960, 32)
    rec = fit("height", REC).to_json()
    assert (rec["stride"], rec["min_width"], rec["max_width"]) == (8, 16, 1280)
    assert fit("letterbox", STATIC).to_json() == tvm_ncnn.Preprocess(resize="letterbox").to_json()  # as before
    assert fit("stretch", DET, asked=False).size is None  # not asked: .npy inputs still run


@pytest.mark.parametrize("resize,spec,sizes,needle", [
    ("height", STATIC, {}, "resize height is for an input whose H or W is dynamic; input 'x' [1,3,48,320] is static"),
    ("letterbox", STATIC, {"size": 640}, "--size is for an input whose H or W is dynamic"),
    ("stretch", DET, {}, "resize stretch needs a static H x W; input 'x' [1,3,-1,-1] is dynamic"),
    ("limit", REC, {}, "resize limit needs a dynamic H and W"),
    ("height", DET, {}, "resize height needs a static H and a dynamic W"),
    ("letterbox", DET, {"size": 650}, "size 650 is not a multiple of the stride 32"),
    ("letterbox", DET, {"stride": 48}, "stride 48 is not a multiple of 32"),
    ("letterbox", DET, {"size": 8192}, "size 8192 is over the largest size model input 'x' [1,3,-1,-1] H takes"),
    ("limit", {**DET, "dynamic": [dim(2, 32, 64), dim(3, 32, 64)]}, {"size": 64},
     "stride 32 is below the smallest size"),
    ("height", REC, {"max_width": 1300}, "max_width <= its max and a multiple of the stride"),
    ("height", REC, {"min_width": 8}, "does not fit model input 'x' [1,3,48,-1] W (multiples of 8 from 16 to 2048)"),
    ("height", REC, {"size": 640}, "--size is not for resize height (it takes --stride, --min-width, --max-width)"),
    ("letterbox", DET, {"max_width": 640}, "--max-width is not for resize letterbox"),
])
def test_rules_that_do_not_fit_refused_at_export(resize, spec, sizes, needle):
    with pytest.raises(tvm_ncnn.ModelError) as err:
        fit(resize, spec, **sizes)
    assert "\n" not in str(err.value) and needle in str(err.value), str(err.value)


@pytest.mark.parametrize("spec,needle", [("height:300", "0..255"), ("limit:both", "limit:min")])
def test_bad_resize_specs_refused(spec, needle):
    with pytest.raises(tvm_ncnn.ModelError, match=needle):
        tvm_ncnn.Preprocess(resize=spec)
    with pytest.raises(tvm_ncnn.ModelError, match="whole number of pixels"):
        tvm_ncnn.Preprocess(size=0)


def test_runtime_refusals_are_one_line():
    """What the runtime refuses of metadata and images, naming the field or the size."""
    big = metadata([1, 3, -1, -1], [dim(2), dim(3, 32, 32, 1024)], resize="limit", limit="min", size=736, stride=32)
    cases = [
        (metadata([1, 3, -1, -1], [dim(2)], resize="letterbox", size=640, stride=32),
         "has a dynamic dimension (axis 3) that its 'dynamic' list does not describe"),
        (metadata([1, 3, -1, -1], [dim(2), dim(3)]), "resize stretch needs a static H x W"),
        (metadata([1, 3, -1, -1], [dim(2), dim(3)], resize="letterbox"), "needs preprocess.size"),
        (big, "gives the input 1920x1088 by resize limit, but its W takes multiples of 32 from 32 to 1024"),
    ]
    for meta, needle in cases:
        with pytest.raises(tvm_ncnn.ModelError) as err:
            preprocess(PHOTOS["16:9 large"], meta, "BGR")
        assert "\n" not in str(err.value) and needle in str(err.value), str(err.value)


def test_cli_export_refuses_a_dynamic_mode_on_a_static_input(tmp_path):
    """tvm-ncnn export --resize height of a model with a static input: one line, no model.so."""
    import subprocess

    from nets import TinyConvNet
    from tvm_ncnn import zoo

    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "m.onnx"), (1, 3, 48, 320))
    for flags, needle in [(["--resize", "height"], "resize height is for an input whose H or W is dynamic"),
                          (["--resize", "letterbox", "--size", "640"], "--size is for an input whose H or W")]:
        done = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "export", onnx_path, "-o",
                               str(tmp_path / "m.so"), *flags], capture_output=True, text=True, timeout=300)
        line = done.stderr.strip()
        assert done.returncode == 1 and not (tmp_path / "m.so").exists() and "\n" not in line, done.stderr
        assert needle in line and "input 'input' [1,3,48,320] is static" in line, line
