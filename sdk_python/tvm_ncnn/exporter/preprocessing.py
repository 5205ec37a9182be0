"""The preprocessing model.so records (meta/preprocess.py), and where each part of it came from: the flags
(export(preprocess=...), --mean/--std/--color/--resize), the model file's own metadata, or the defaults.

Only a model that says how it was trained is read: ultralytics' ONNX export writes its task in onnx metadata_props
(and an ultralytics torch module is one), and every ultralytics model is fed RGB pixels scaled to 0..1 -- boxes
(detect, segment, pose, obb) through LetterBox (border 114, centred), classify through its classify_transforms
(shorter side to the input size, centre cut). Exported with the defaults instead (stretch, 0..255), such a model
gives wrong boxes to anyone who trusts them. A flag still overrides the group it sets (scaling = mean + std,
color, resize)."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os

from ..errors import ModelError, last_line
from ..meta.preprocess import SIZE_FIELDS, Preprocess, parse_resize

ULTRALYTICS_BOXES = Preprocess(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), color="RGB",
                               resize="letterbox:114")
ULTRALYTICS_CLASSIFY = Preprocess(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), color="RGB", resize="crop:1")
_ULTRALYTICS_TASKS = ("detect", "segment", "pose", "obb")

FLAGS, DEFAULT = "flags", "default"


# A dynamic input's sizes when neither the flags nor the model say them: ultralytics' default imgsz; rapidocr's
# det config (limit_side_len 736 with limit_type min; 960 is its smallest for max); a text line at most 1280 wide.
DEFAULT_SIZE = {"letterbox": 640, "limit:min": 736, "limit:max": 960}
DEFAULT_MAX_WIDTH = 1280


def resolve(model, given: Preprocess | None, inputs: list[dict] | None = None) -> tuple[Preprocess, dict[str, str]]:
    """(what to record, {group: where it came from}) for groups scaling, color and resize. inputs: the metadata's
    "inputs" (runtime/FORMAT.md): a dynamic first input gets its rule's sizes (fit_input)."""
    given = given or Preprocess()
    hints = _ultralytics(model)
    found, where = _from_model(hints)
    mine = given.given()
    result = given.over(found) if found is not None else given
    sources = {g: FLAGS if g in mine else where if found is not None else DEFAULT
               for g in ("scaling", "color", "resize")}
    if inputs:
        result = fit_input(result, inputs[0], hints, "resize" in mine)
    return result, sources


def fit_input(pre: Preprocess, spec: dict, hints: dict, asked: bool) -> Preprocess:
    """pre with a dynamic input's sizes filled in -- size (letterbox: ultralytics' imgsz, else 640; limit: 736 for
    min, 960 for max), stride (ultralytics' stride, else the input's dynamic multiple), and for height min_width /
    max_width (the input's min; its max, at most 1280) -- checked by the runtime against the sizes the input
    takes, so that a rule that does not fit refuses the export in one line. A static input takes no such rule.
    asked: the resize mode came from the flags (a dynamic input then refuses stretch and crop)."""
    rule = parse_resize(pre.value("resize"))
    mode = rule["resize"]
    dynamic = {d["axis"]: d for d in spec.get("dynamic") or []}
    shape = list(spec.get("shape", []))
    name = f"input '{spec.get('name')}' {_shape(shape)}"
    sizes = [n for n in SIZE_FIELDS if getattr(pre, n) is not None]
    image = len(shape) == 4 and shape[1] == 3
    if not (image and {2, 3} & set(dynamic)):
        if mode in ("height", "limit") or sizes:
            what = f"resize {mode}" if mode in ("height", "limit") else "--" + sizes[0].replace("_", "-")
            raise ModelError(f"{what} is for an input whose H or W is dynamic; {name} is static (use stretch, crop "
                             f"or letterbox, or export the model with its dynamic size)")
        return pre
    if mode in ("stretch", "crop"):
        if asked:
            raise ModelError(f"resize {mode} needs a static H x W; {name} is dynamic: use letterbox (with --size), "
                             f"height (text recognisers) or limit (text detectors), or pin it with --input")
        return pre  # images are refused by the runtime, in one line; .npy inputs of any valid size run
    takes = ("stride", "min_width", "max_width") if mode == "height" else ("size", "stride")
    for n in sizes:
        if n not in takes:
            raise ModelError(f"--{n.replace('_', '-')} is not for resize {mode} (it takes "
                             f"{', '.join('--' + t.replace('_', '-') for t in takes)})")
    fill = {}
    multiple = math.lcm(*(int(d.get("multiple", 1)) for a, d in dynamic.items() if a in (2, 3)))
    fill["stride"] = pre.stride or (hints.get("stride") if mode == "letterbox" else None) or multiple
    if mode == "height":
        w = dynamic.get(3, {})
        stride = fill["stride"]
        top = min(int(w.get("max", DEFAULT_MAX_WIDTH)), DEFAULT_MAX_WIDTH)
        fill["min_width"] = pre.min_width or int(w.get("min", 1))
        fill["max_width"] = pre.max_width or max(top // stride * stride, stride)
    else:
        key = mode if mode == "letterbox" else f"limit:{rule['limit']}"
        fill["size"] = pre.size or (hints.get("imgsz") if mode == "letterbox" else None) or DEFAULT_SIZE[key]
    result = dataclasses.replace(pre, **{k: int(v) for k, v in fill.items()})
    _runtime_check(spec, result)
    return result


def _runtime_check(spec: dict, pre: Preprocess) -> None:
    """The runtime's own checks of the rule against the input (image/place.cc), run on metadata of the two."""
    from ..runtime import native

    doc = {"format_version": int(native.versions()["metadata_format"]), "tvm_version": "", "inputs": [spec],
           "outputs": [], "preprocess": pre.to_json()}
    try:
        native.get_function("tvm_ncnn.check_image_input")(json.dumps(doc))
    except Exception as err:
        raise ModelError(last_line(err).removeprefix("preprocess: ")) from None


def _shape(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _ultralytics(model) -> dict:
    """What an ultralytics ONNX file's metadata or torch module says: {"task", "stride", "imgsz"} (the long side),
    each where said; {} for another model."""
    try:
        if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".onnx"):
            import onnx

            model = onnx.load(os.fspath(model), load_external_data=False)
        if type(model).__name__ == "ModelProto":
            meta = {p.key: p.value for p in model.metadata_props}
            if not (meta.get("author") == "Ultralytics" or {"stride", "imgsz", "names"} <= set(meta)):
                return {}
            imgsz = ast.literal_eval(meta["imgsz"]) if "imgsz" in meta else None
            hints = {"task": meta.get("task"), "stride": int(meta["stride"]) if "stride" in meta else None,
                     "imgsz": max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz}
            return {k: v for k, v in hints.items() if v is not None}
        if hasattr(model, "model") and hasattr(model, "names") and hasattr(model, "task"):
            stride = getattr(model, "stride", None)
            hints = {"task": str(model.task)}
            if stride is not None:
                hints["stride"] = int(max(stride.tolist()) if hasattr(stride, "tolist") else stride)
            return hints
    except Exception:  # reading the file is a convenience: any doubt leaves the flags and defaults
        return {}
    return {}


def _from_model(hints: dict) -> tuple[Preprocess | None, str]:
    task = hints.get("task")
    if task in _ULTRALYTICS_TASKS:
        return ULTRALYTICS_BOXES, f"the model's metadata (ultralytics {task})"
    if task == "classify":
        return ULTRALYTICS_CLASSIFY, "the model's metadata (ultralytics classify)"
    return None, ""
