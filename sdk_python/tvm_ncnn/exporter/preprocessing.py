"""The preprocessing model.so records (meta/preprocess.py), and where each part of it came from: the flags
(export(preprocess=...), --mean/--std/--color/--resize), the model file's own metadata, or the defaults.

Only a model that says how it was trained is read: ultralytics' ONNX export writes its task in onnx metadata_props
(and an ultralytics torch module is one), and every ultralytics model is fed RGB pixels scaled to 0..1 -- boxes
(detect, segment, pose, obb) through LetterBox (border 114, centred), classify through its classify_transforms
(shorter side to the input size, centre cut). Exported with the defaults instead (stretch, 0..255), such a model
gives wrong boxes to anyone who trusts them. A flag still overrides the group it sets (scaling = mean + std,
color, resize)."""

from __future__ import annotations

import os

from ..meta.preprocess import Preprocess

ULTRALYTICS_BOXES = Preprocess(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), color="RGB",
                               resize="letterbox:114")
ULTRALYTICS_CLASSIFY = Preprocess(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), color="RGB", resize="crop:1")
_ULTRALYTICS_TASKS = ("detect", "segment", "pose", "obb")

FLAGS, DEFAULT = "flags", "default"


def resolve(model, given: Preprocess | None) -> tuple[Preprocess, dict[str, str]]:
    """(what to record, {group: where it came from}) for groups scaling, color and resize."""
    given = given or Preprocess()
    found, where = _from_model(model)
    mine = given.given()
    result = given.over(found) if found is not None else given
    sources = {g: FLAGS if g in mine else where if found is not None else DEFAULT
               for g in ("scaling", "color", "resize")}
    return result, sources


def _task_of(model) -> str | None:
    """The task an ultralytics ONNX file's metadata or torch module says (None: not an ultralytics model)."""
    try:
        if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".onnx"):
            import onnx

            model = onnx.load(os.fspath(model), load_external_data=False)
        if type(model).__name__ == "ModelProto":
            meta = {p.key: p.value for p in model.metadata_props}
            ultralytics = meta.get("author") == "Ultralytics" or {"stride", "imgsz", "names"} <= set(meta)
            return meta.get("task") if ultralytics else None
        if hasattr(model, "model") and hasattr(model, "names") and hasattr(model, "task"):
            return str(model.task)
    except Exception:  # reading the file is a convenience: any doubt leaves the flags and defaults
        return None
    return None


def _from_model(model) -> tuple[Preprocess | None, str]:
    task = _task_of(model)
    if task in _ULTRALYTICS_TASKS:
        return ULTRALYTICS_BOXES, f"the model's metadata (ultralytics {task})"
    if task == "classify":
        return ULTRALYTICS_CLASSIFY, "the model's metadata (ultralytics classify)"
    return None, ""
