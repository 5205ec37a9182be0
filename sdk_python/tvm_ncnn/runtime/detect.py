"""Detections from Python: the runtime's post-processing (runtime/src/detect/, tvm_ncnn/detect.h), the same code
deploy_app runs, called on a model's raw outputs -- boxes in original image pixels, best first.

    model = tvm_ncnn.load("yolov8n.so")
    found = model.detect("street.jpg")            # or model.postprocess(model(x), model.image_transform(img))
    for box, score, label in zip(found.boxes, found.scores, found.labels): ..."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import tvm_ffi

from . import native
from ..errors import ModelError, last_line


@dataclass
class Mask:
    """A binary instance mask over its box: pixels[row, col] is image pixel (x + col, y + row)."""

    x: int
    y: int
    pixels: np.ndarray  # uint8 [height, width], 1 where the object is
    area: int


@dataclass
class Detections:
    boxes: np.ndarray       # float32 [n, 4]: x1, y1, x2, y2 in image pixels
    scores: np.ndarray      # float32 [n]
    classes: np.ndarray     # int64 [n]
    labels: list[str]       # the model's label of each class ("" without labels)
    keypoints: np.ndarray   # pose: float32 [n, K, 3] (x, y, visibility); [n, 0, 3] otherwise
    masks: list[Mask] = field(default_factory=list)  # segment: one per detection
    rboxes: np.ndarray | None = None  # obb: float32 [n, 5] cx, cy, w, h, angle (radians); boxes is their extent

    def __len__(self) -> int:
        return len(self.scores)

    def to_json(self) -> list[dict]:
        """deploy_app --json's "detections" list."""
        out = []
        for i in range(len(self)):
            d = {"class": int(self.classes[i]), "label": self.labels[i], "score": float(self.scores[i]),
                 "box": [float(v) for v in self.boxes[i]]}
            if self.keypoints.shape[1]:
                d["keypoints"] = self.keypoints[i].tolist()
            if self.masks:
                d["mask_area"] = self.masks[i].area
            if self.rboxes is not None and self.rboxes.shape[1]:
                d["rbox"] = [float(v) for v in self.rboxes[i]]
            out.append(d)
        return out


def postprocess(info_json: str, outputs, transform, score=None, iou=None, max_detections=None) -> Detections:
    """Decode + class-aware NMS + mapping back to the image (ImageTransform) of a model's raw outputs."""
    tensors = [tvm_ffi.from_dlpack(np.require(np.asarray(o, dtype=np.float32), requirements="C")) for o in outputs]
    fields = transform if isinstance(transform, dict) else asdict(transform)
    try:
        r = native.get_function("tvm_ncnn.detect")(
            tensors, info_json, {k: v for k, v in fields.items()}, -1.0 if score is None else float(score),
            -1.0 if iou is None else float(iou), -1 if max_detections is None else int(max_detections))
    except Exception as err:
        raise ModelError(last_line(err)) from None
    masks = [Mask(int(m["x"]), int(m["y"]), np.from_dlpack(m["pixels"]).copy(), int(m["area"])) for m in r["masks"]]
    return Detections(np.from_dlpack(r["boxes"]).copy(), np.from_dlpack(r["scores"]).copy(),
                      np.from_dlpack(r["classes"]).copy(), [str(s) for s in r["labels"]],
                      np.from_dlpack(r["keypoints"]).copy(), masks, np.from_dlpack(r["rboxes"]).copy())
