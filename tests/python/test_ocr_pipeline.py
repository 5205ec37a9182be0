"""PP-OCR end to end through three model.so files: rapidocr-onnxruntime's detector (DBNet, dynamic H and W),
direction classifier and recogniser (SVTR-LCNet, dynamic W), each exported once with its dynamic sizes, read the
same text as rapidocr's own pipeline on rendered pages.

Everything that is not a model is rapidocr's own code: its RapidOCR object runs twice, once as shipped
(onnxruntime) and once with our model.so in place of each onnxruntime InferenceSession (an object with the same
run(output_names, feeds)), so the DB post-processing, box sorting, crops, orientation and CTC decoding are its.
A third run also lets our runtime preprocess (load_image with the resize rules export recorded: limit:min 736 for
the detector, height for the classifier and recogniser) in place of rapidocr's resize/normalise methods."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("pyclipper")  # rapidocr's DB post-processing (requirements-dev.txt)
pytest.importorskip("shapely")

import tvm_ncnn  # noqa: E402

MODELS = Path(importlib.util.find_spec("rapidocr_onnxruntime").origin).parent / "models"
FONT = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
NORMALISE = {"mean": (127.5,) * 3, "std": (127.5,) * 3, "color": "BGR"}  # rapidocr: (x / 255 - 0.5) / 0.5, BGR

# Each page: its size (W, H), font size and lines. Lengths vary from 2 characters to a full line, so the
# recogniser runs at many widths; the last page is 731 x 517 (no side a multiple of 32) and is upside down, so
# the classifier turns its lines.
PAGES = {
    "invoice": ((800, 704), 28, ["Invoice 2024-0117", "Total amount due 4815.62", "OK", "Paid on 12 March 2025",
                                 "Order 90210 shipped to 221 Baker Street", "Ref 7", "Tax 19 percent 769.01",
                                 "Thank you"]),
    "notes": ((1024, 576), 24, ["The quick brown fox jumps over the lazy dog", "Call 555 0199 after 6 pm",
                                "Room 42", "Meeting moved to Thursday 3 June at 10 am", "Version 1.8.3 release",
                                "Bring 2 copies of the report", "Budget 31000", "Lunch at noon"]),
    "odd": ((731, 517), 28, ["Temperature 23 degrees", "Wind 14 km per hour", "Humidity 61 percent",
                             "Sunrise 06 12"]),
}
UPSIDE_DOWN = {"odd"}


def render(name: str) -> np.ndarray:
    """A page of black DejaVu Sans lines on white, as an OpenCV BGR array."""
    from PIL import Image, ImageDraw, ImageFont

    (width, height), size, lines = PAGES[name]
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), size)
    step = (height - 2 * size) // len(lines)
    for i, line in enumerate(lines):
        draw.text((size + 13 * (i % 3), size + i * step), line, fill="black", font=font)
    if name in UPSIDE_DOWN:
        page = page.rotate(180)
    return np.ascontiguousarray(np.asarray(page)[:, :, ::-1])


class ModelSession:
    """What rapidocr's OrtInferSession calls on its onnxruntime InferenceSession -- run(output_names, feeds) ->
    [outputs], get_inputs() and get_outputs() for the names -- answered by a model.so. A batch (rapidocr stacks up
    to 6 lines) runs image by image: model.so's input is batch 1, at the width rapidocr padded the batch to."""

    def __init__(self, model):
        self.model = model
        self.widths: set[int] = set()  # the input widths it was run at

    def get_inputs(self):
        return [SimpleNamespace(name=spec["name"]) for spec in self.model.inputs]

    def get_outputs(self):
        return [SimpleNamespace(name=spec["name"]) for spec in self.model.outputs]

    def run(self, output_names, feeds):
        (x,) = feeds.values()
        self.widths.add(x.shape[-1])
        return [np.concatenate([self.model(np.ascontiguousarray(one[None]))[0] for one in x])]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The three rapidocr models exported once each: the detector with H and W dynamic (its ONNX says so; the
    size rule is a multiple of 32), the recogniser and the classifier with W made dynamic ("W" in input_shapes);
    with rapidocr's normalisation and the resize rules its code applies."""
    directory = tmp_path_factory.mktemp("ocr")
    exports = {
        "det": ("ch_PP-OCRv4_det_infer.onnx", None, tvm_ncnn.Preprocess(resize="limit:min", size=736, **NORMALISE)),
        "cls": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", {"x": [1, 3, 48, "W"]},
                tvm_ncnn.Preprocess(resize="height", min_width=192, max_width=192, **NORMALISE)),
        "rec": ("ch_PP-OCRv4_rec_infer.onnx", {"x": [1, 3, 48, "W"]},
                tvm_ncnn.Preprocess(resize="height", min_width=320, **NORMALISE)),
    }
    loaded = {}
    for name, (onnx_name, shapes, preprocess) in exports.items():
        so = directory / f"{name}.so"
        tvm_ncnn.export(str(MODELS / onnx_name), str(so), input_shapes=shapes, preprocess=preprocess)
        loaded[name] = tvm_ncnn.load(so, threads=2)
    return loaded


def rapidocr(**params):
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(**params)


def with_our_sessions(models) -> tuple:
    """rapidocr's RapidOCR with each onnxruntime session replaced by the model.so."""
    ocr = rapidocr()
    sessions = {name: ModelSession(models[name]) for name in ("det", "cls", "rec")}
    ocr.text_det.infer.session = sessions["det"]
    ocr.text_cls.infer.session = sessions["cls"]
    ocr.text_rec.session.session = sessions["rec"]
    return ocr, sessions


def with_our_preprocessing(models):
    """rapidocr's RapidOCR with our model.so sessions and our runtime's preprocessing (load_image) in place of its
    resize + normalise: DetPreProcess (limit:min 736), the classifier's and recogniser's resize_norm_img (height;
    one line a batch, as the runtime sizes each line's input to the line)."""
    ocr, sessions = with_our_sessions(models)
    ocr.text_det.get_preprocess = lambda max_wh: lambda img: models["det"].load_image(img, pixel_format="BGR")
    ocr.text_cls.resize_norm_img = lambda img: models["cls"].load_image(img, pixel_format="BGR")[0]
    ocr.text_rec.resize_norm_img = lambda img, ratio: models["rec"].load_image(img, pixel_format="BGR")[0]
    ocr.text_rec.rec_batch_num = 1
    return ocr, sessions


def read(ocr, page) -> tuple[list[str], np.ndarray, list[float]]:
    result, _ = ocr(page)
    assert result, "nothing read"
    boxes, texts, scores = zip(*result)
    return list(texts), np.array(boxes, np.float64), [float(s) for s in scores]


@pytest.fixture(scope="module")
def reference():
    """rapidocr as shipped (onnxruntime), on every page."""
    ocr = rapidocr()
    return {name: read(ocr, render(name)) for name in PAGES}


def test_pages_read_as_rapidocr_reads_them(models, reference):
    """Our model.so files in rapidocr's own pipeline: the same texts, line for line, in the same order; boxes
    within a pixel; recognition scores within 1e-3 (the model.so computes what onnxruntime does to about 1e-5, and
    the scores are means of per-character maxima). The recogniser ran at several widths, the detector at each
    page's size (none of them the 731 x 517 page's own)."""
    ocr, sessions = with_our_sessions(models)
    worst_box = worst_score = 0.0
    for name in PAGES:
        ref_texts, ref_boxes, ref_scores = reference[name]
        texts, boxes, scores = read(ocr, render(name))
        drawn = sum(text in PAGES[name][2] for text in texts)
        print(f"{name}: {drawn} of {len(texts)} lines as drawn; {texts}")
        assert texts == ref_texts
        assert len(texts) == len(PAGES[name][2])  # rapidocr found every line of the page
        if name in UPSIDE_DOWN:  # read as drawn only if the classifier turned each line
            assert set(texts) == set(PAGES[name][2])
        worst_box = max(worst_box, float(np.abs(boxes - ref_boxes).max()))
        worst_score = max(worst_score, float(np.abs(np.array(scores) - ref_scores).max()))
    print(f"model.so sessions: max box offset {worst_box:.2f} px, max score difference {worst_score:.2e}; "
          f"recogniser widths {sorted(sessions['rec'].widths)}, detector widths {sorted(sessions['det'].widths)}")
    assert worst_box <= 1.0 and worst_score <= 1e-3
    assert len(sessions["rec"].widths) >= 4 and len(sessions["det"].widths) >= 2


def test_pages_read_with_our_preprocessing(models):
    """The same pipeline with our runtime resizing and normalising each image (deploy_app's code): the detector's
    input from the page by limit:min 736, each line's by height (its own width, at least 320). rapidocr pads a
    batch of lines to the widest of the batch, which moves what the recogniser reads (it drops spaces in long
    padding); one line a batch (its rec_batch_num 1) it sizes each line as the runtime does, and is the reference
    here: texts equal; boxes within 2 pixels (ncnn and OpenCV round a few bilinear weights differently, which
    moves the probability map's threshold crossings a little)."""
    reference = rapidocr()
    reference.text_rec.rec_batch_num = 1
    ocr, sessions = with_our_preprocessing(models)
    worst_box = worst_score = 0.0
    for name in PAGES:
        page = render(name)
        ref_texts, ref_boxes, ref_scores = read(reference, page)
        texts, boxes, scores = read(ocr, page)
        drawn = sum(text in PAGES[name][2] for text in texts)
        print(f"{name}: {drawn} of {len(texts)} lines as drawn; {texts}")
        assert texts == ref_texts, name
        worst_box = max(worst_box, float(np.abs(boxes - ref_boxes).max()))
        worst_score = max(worst_score, float(np.abs(np.array(scores) - ref_scores).max()))
    print(f"our preprocessing: max box offset {worst_box:.2f} px, max score difference {worst_score:.2e}; "
          f"recogniser widths {sorted(sessions['rec'].widths)}")
    assert worst_box <= 2.0 and worst_score <= 1e-2
    assert len(sessions["rec"].widths) >= 8
