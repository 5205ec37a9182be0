"""What a model's outputs mean (model.so's metadata "postprocess", runtime/FORMAT.md): the tasks and the detector
families' output layouts. This table is the Python side's one list of both; runtime/src/meta/ holds the C++ one
(with each layout's decoder), and a test holds them equal. A new detector family is one row here, one in C++, and
its decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import ModelError

TASKS = ("classify", "detect", "segment", "pose", "obb")
DETECTOR_TASKS = ("detect", "segment", "pose", "obb")  # outputs decoded into boxes by the runtime's Detect


def _channels_last(outputs: list[list[int]], extra: int) -> int:
    """[1, anchors, 5 + classes]: boxes, objectness, classes."""
    first = outputs[0] if outputs else []
    return first[2] - 5 if len(first) == 3 else 0


def _channels_first(outputs: list[list[int]], extra: int) -> int:
    """[1, 4 + classes + extra, anchors]: boxes, classes, then mask coefficients or keypoints."""
    first = outputs[0] if outputs else []
    return first[1] - 4 - extra if len(first) == 3 else 0


def _score_outputs(outputs: list[list[int]], extra: int) -> int:
    """A score and a box output per stride: the classes are the narrower of each pair."""
    return min(o[2] for o in outputs) if outputs and all(len(o) == 3 for o in outputs) else 0


def _named_classes(outputs: list[list[int]], extra: int) -> int:
    """[1, detections, 6] rows carry a class index, not a channel per class: the count is the model's names'."""
    return 0


@dataclass(frozen=True)
class Layout:
    """A detector family's raw outputs. score and iou are the family's own defaults (ultralytics predict: conf
    0.25, iou 0.7; YOLOv5 and YOLOX demos: 0.25 / 0.45; PaddleDetection PicoDet as rapid-layout runs it: 0.5 /
    0.5); strides, where the decoder needs them; classes counts the classes from the output shapes."""
    name: str
    score: float
    iou: float
    classes: Callable[[list[list[int]], int], int]
    strides: tuple[int, ...] = ()
    tasks: tuple[str, ...] = ("detect",)


LAYOUT_TABLE = (
    Layout("yolov8", 0.25, 0.7, _channels_first, tasks=DETECTOR_TASKS),
    Layout("yolov5", 0.25, 0.45, _channels_last),
    Layout("yolox", 0.25, 0.45, _channels_last, strides=(8, 16, 32)),
    Layout("picodet", 0.5, 0.5, _score_outputs, strides=(8, 16, 32, 64)),
    Layout("end2end", 0.25, 0.7, _named_classes),  # NMS-free heads (YOLOv10, YOLO26): iou is not used
)
LAYOUTS = tuple(layout.name for layout in LAYOUT_TABLE)


def layout_of(name: str) -> Layout:
    for layout in LAYOUT_TABLE:
        if layout.name == name:
            return layout
    raise ModelError(f"layout '{name}' is not one of {', '.join(LAYOUTS)}")


@dataclass
class Task:
    """export(task=...): what the outputs mean. Fields left None are recognised from the model or take the
    layout's defaults; a field the model contradicts is refused at export."""

    task: str = "detect"
    layout: str | None = None
    score: float | None = None
    iou: float | None = None
    strides: list[int] | None = None
    keypoints: tuple[int, int] | None = None  # pose: (count, 2 or 3)
    max_detections: int = 300
    labels: list[str] = field(default_factory=list)  # found in the model (ultralytics names), if any
    source: str = "flags"  # where it was recognised (exporter/tasks.py), for export's output and inspect

    def __post_init__(self):
        if self.task not in TASKS:
            raise ModelError(f"task '{self.task}' is not one of {', '.join(TASKS)}")
        if self.layout is not None:
            layout_of(self.layout)
        for name in ("score", "iou"):
            v = getattr(self, name)
            if v is not None and not 0 <= float(v) <= 1:
                raise ModelError(f"{name} threshold {v} is not in 0..1")


def parse_strides(text: str) -> list[int]:
    try:
        strides = [int(s) for s in str(text).split(",")]
    except ValueError:
        strides = []
    if not strides or any(s < 1 for s in strides):
        raise ModelError(f"strides '{text}' are not whole numbers like 8,16,32")
    return strides
