"""Running what calibration measures: the fp32 model.so with the runtime's probe on (the blobs it asks for, per
input), and one region graph or one layer alone in the runtime's ncnn (fp32 except its int8 layers)."""

from __future__ import annotations

import copy

import numpy as np
import tvm_ffi

from ..ncnn import quantize
from ..ncnn.graph import Layer, NcnnGraph, shape_params
from ..runtime import native


class Probe:
    """The fp32 model.so with the probe on for `keys` ("<symbol>/<blob>")."""

    def __init__(self, model, keys: list[str]):
        self.model, self.keys = model, keys

    def on(self, keys: list[str]) -> "Probe":
        """The same model probing other blobs."""
        return Probe(self.model, keys)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        native.get_function("tvm_ncnn.probe_start")(self.keys)
        try:
            self.model(x)
            taken = native.get_function("tvm_ncnn.probe_take")()
            return {str(k): np.from_dlpack(v).copy() for k, v in taken.items()}
        finally:
            native.get_function("tvm_ncnn.probe_stop")()


def net_run(graph: NcnnGraph, inputs: list[str], samples: list[list[np.ndarray]], outputs: list[str]):
    """One region graph run alone by the runtime's ncnn (fp32 except its int8 layers): per sample, its outputs."""
    param, weights = graph.serialize()
    run = native.get_function("tvm_ncnn.ncnn_net_run")
    tensors = [[tvm_ffi.from_dlpack(np.ascontiguousarray(a)) for a in sample] for sample in samples]
    return [[np.from_dlpack(t).copy() for t in out] for out in run(param, weights, inputs, tensors, outputs, 0)]


def one_layer_graph(layer: Layer, shape, scale: float | None, activation: bool = True) -> NcnnGraph:
    """A graph of `layer` alone, reading blob "in" of `shape` (no batch) and writing "out": int8 with input scale
    `scale` (fp32 when None), without its fused activation when `activation` is False."""
    g = NcnnGraph()
    g.layers.append(Layer("Input", "input", [], ["in"], shape_params(list(shape))))
    clone = copy.deepcopy(layer)
    clone.bottoms, clone.tops = ["in"], ["out"]
    if not activation:
        clone.params.pop(9, None)
        clone.params.pop(10, None)
    if scale is not None:
        quantize.quantize_layer(clone, scale)
    g.layers.append(clone)
    return g
