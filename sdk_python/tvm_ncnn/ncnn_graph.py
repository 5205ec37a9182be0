"""An ncnn graph under construction: layers, blobs and weights, written out as `.param` text and `.bin` bytes."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

PARAM_MAGIC = 7767517


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)
    # Each weight is (array, tagged): tagged weights carry ncnn's 4-byte storage flag (ModelBin type 0).
    weights: list[tuple[np.ndarray, bool]] = field(default_factory=list)
    # For a Crop of one axis: (ncnn axis, begin, end, axis size), so crops that tile a blob can become a Slice.
    crop_range: tuple[int, int, int, int] | None = None


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
    """Layers are appended in topological order; blob names are unique strings."""

    def __init__(self):
        self.layers: list[Layer] = []
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

    def add_input(self, shape_without_batch: list[int], hint: str = "in") -> str:
        blob = self.new_blob(hint)
        self.layers.append(Layer("Input", f"input_{len(self.layers)}", [], [blob],
                                 shape_params(shape_without_batch)))
        return blob

    def add_constant(self, value: np.ndarray) -> str:
        """A MemoryData layer producing `value` (already without the batch dimension)."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        params = shape_params(list(value.shape))
        if value.ndim == 0:
            params = {0: 1}
            value = value.reshape(1)
        return self.add("MemoryData", [], params, [(value, False)])[0]

    def serialize(self, outputs: list[str]) -> tuple[str, bytes, list[str]]:
        """Return (param text, weights, output blob names). ncnn wants every blob consumed at most once, so
        a blob that feeds several layers (or a layer and a region output) goes through a Split layer first;
        the output names returned are the ones to extract."""
        layers, outputs = self._with_splits(self._crops_to_slices(), outputs)
        blobs = {t for layer in layers for t in layer.tops}
        lines = [str(PARAM_MAGIC), f"{len(layers)} {len(blobs)}"]
        weights = bytearray()
        for layer in layers:
            fields = [layer.type.ljust(16), layer.name.ljust(16), str(len(layer.bottoms)), str(len(layer.tops))]
            fields += layer.bottoms + layer.tops
            fields += [_format_param(k, v) for k, v in sorted(layer.params.items())]
            lines.append(" ".join(fields))
            for array, tagged in layer.weights:
                if tagged:
                    weights += struct.pack("<I", 0)  # flag 0: raw float32 follows
                weights += np.ascontiguousarray(array, dtype="<f4").tobytes()
        return "\n".join(lines) + "\n", bytes(weights), outputs

    def _crops_to_slices(self) -> list[Layer]:
        """Crops that between them tile one axis of a blob (ShuffleNet's channel split) become one Slice: one
        layer and no Split in front, as pnnx writes it."""
        position = {id(layer): i for i, layer in enumerate(self.layers)}
        readers: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.bottoms:
                readers.setdefault(b, []).append(layer)
        replaced: dict[int, Layer | None] = {}  # id of a merged Crop -> the Slice taking its place, or None
        for blob, crops in readers.items():
            if len(crops) < 2 or any(c.type != "Crop" or c.crop_range is None for c in crops):
                continue
            crops = sorted(crops, key=lambda c: c.crop_range)
            axes = {c.crop_range[0] for c in crops}
            bounds = [c.crop_range[1:3] for c in crops]
            tiled = bounds[0][0] == 0 and bounds[-1][1] == crops[0].crop_range[3] and all(
                end == next_begin for (_, end), (next_begin, _) in zip(bounds, bounds[1:]))
            if len(axes) != 1 or not tiled or any(begin == end for begin, end in bounds):
                continue
            merged = Layer("Slice", f"slice_{blob}", [blob], [c.tops[0] for c in crops],
                           {0: [end - begin for begin, end in bounds], 1: axes.pop()})
            first = min(crops, key=lambda c: position[id(c)])
            replaced.update({id(c): merged if c is first else None for c in crops})
        out = []
        for layer in self.layers:
            if id(layer) not in replaced:
                out.append(layer)
            elif replaced[id(layer)] is not None:
                out.append(replaced[id(layer)])
        return out

    @staticmethod
    def _with_splits(graph: list[Layer], outputs: list[str]) -> tuple[list[Layer], list[str]]:
        uses: dict[str, int] = {}
        for b in [b for layer in graph for b in layer.bottoms] + outputs:
            uses[b] = uses.get(b, 0) + 1
        split_names: dict[str, list[str]] = {}  # blob -> the names its readers take, in order

        def take(blob: str) -> str:
            return split_names[blob].pop(0) if blob in split_names else blob

        layers = []
        for layer in graph:
            layers.append(Layer(layer.type, layer.name, [take(b) for b in layer.bottoms], layer.tops,
                                layer.params, layer.weights, layer.crop_range))
            for top in layer.tops:
                if uses.get(top, 0) > 1:
                    names = [f"{top}_{i}" for i in range(uses[top])]
                    layers.append(Layer("Split", f"split_{top}", [top], list(names)))
                    split_names[top] = names
        return layers, [take(b) for b in outputs]


def shape_params(shape: list[int]) -> dict[int, int]:
    """ncnn's w/h/d/c params for a shape without the batch dimension (outermost first)."""
    keys = {1: (0,), 2: (1, 0), 3: (2, 1, 0), 4: (2, 11, 1, 0)}[len(shape)]
    return {k: int(d) for k, d in zip(keys, shape)}
