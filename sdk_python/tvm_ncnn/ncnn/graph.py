"""An ncnn graph under construction: layers, blobs and weights, written out as `.param` text and `.bin` bytes."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

PARAM_MAGIC = 7767517
MAX_RANK = 5  # the largest tensor rank an ncnn blob holds: batch + ncnn's w, h, d, c
INT8_TAG = 0x000D4B38  # ModelBin: int8 values follow (src/modelbin.cpp)


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)
    # Each weight is (array, tagged): tagged weights carry ncnn's 4-byte storage flag (ModelBin type 0).
    weights: list[tuple[np.ndarray, bool]] = field(default_factory=list)


def _format_param(key: int, value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        # Array params use the key -23300 - key and a leading element count.
        return f"{-23300 - key}={len(values)}," + ",".join(_format_scalar(v) for v in values)
    return f"{key}={_format_scalar(value)}"


def _format_scalar(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = repr(float(value))
    if text in ("inf", "-inf"):
        # ncnn parses floats with %f; use the largest finite float instead of inf.
        return ("-" if text.startswith("-") else "") + "3.402823e+38"
    return text if ("e" in text or "." in text) else text + ".0"


class NcnnGraph:
    """Layers are appended in topological order; blob names are unique strings. `shapes` holds each blob's shape
    without the batch dimension where the converter knew it (graph passes read it)."""

    def __init__(self):
        self.layers: list[Layer] = []
        self.shapes: dict[str, list[int]] = {}
        self._counter = 0

    def new_blob(self, hint: str = "t") -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    def add(self, type: str, bottoms: list[str], params=None, weights=None, n_tops: int = 1,
            top_hint: str = "t") -> list[str]:
        tops = [self.new_blob(top_hint) for _ in range(n_tops)]
        name = f"{type.lower()}_{len(self.layers)}"
        self.layers.append(Layer(type, name, list(bottoms), tops, dict(params or {}), list(weights or [])))
        return tops

    def add_input(self, shape_without_batch: list[int], hint: str = "in", dynamic: list[int] = ()) -> str:
        """dynamic: the axes (batch first) whose size changes from run to run: 0 in the Input's params, as ncnn
        writes an unknown size; `shapes` keeps the probe size the converters worked at."""
        blob = self.new_blob(hint)
        self.shapes[blob] = list(shape_without_batch)
        written = [0 if i + 1 in dynamic else d for i, d in enumerate(shape_without_batch)]
        self.layers.append(Layer("Input", f"input_{len(self.layers)}", [], [blob], shape_params(written)))
        return blob

    def add_constant(self, value: np.ndarray) -> str:
        """A MemoryData layer producing `value` (already without the batch dimension)."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.ndim == 0:
            value = value.reshape(1)
        top = self.add("MemoryData", [], shape_params(list(value.shape)), [(value, False)])[0]
        self.shapes[top] = list(value.shape)
        return top

    def serialize(self) -> tuple[str, bytes]:
        """(param text, weights) of the graph as it stands: run passes.run_passes first."""
        blobs = {t for layer in self.layers for t in layer.tops}
        lines = [str(PARAM_MAGIC), f"{len(self.layers)} {len(blobs)}"]
        weights = bytearray()
        for layer in self.layers:
            fields = [layer.type.ljust(16), layer.name.ljust(16), str(len(layer.bottoms)), str(len(layer.tops))]
            fields += layer.bottoms + layer.tops
            fields += [_format_param(k, v) for k, v in sorted(layer.params.items())]
            lines.append(" ".join(fields))
            for array, tagged in layer.weights:
                if tagged and array.dtype == np.int8:  # int8 weights (ncnn/quantize.py): ncnn's int8 tag, 4-byte padded
                    weights += struct.pack("<I", INT8_TAG) + array.tobytes() + bytes(-array.size % 4)
                    continue
                if tagged:
                    weights += struct.pack("<I", 0)  # flag 0: raw float32 follows
                weights += np.ascontiguousarray(array, dtype="<f4").tobytes()
        return "\n".join(lines) + "\n", bytes(weights)

    def readers(self) -> dict[str, list[Layer]]:
        """Blob -> the layers reading it, in graph order."""
        found: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.bottoms:
                found.setdefault(b, []).append(layer)
        return found


def shape_params(shape: list[int]) -> dict[int, int]:
    """ncnn's w/h/d/c params for a shape without the batch dimension (outermost first)."""
    keys = {1: (0,), 2: (1, 0), 3: (2, 1, 0), 4: (2, 11, 1, 0)}[len(shape)]
    return {k: int(d) for k, d in zip(keys, shape)}
