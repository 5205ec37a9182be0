"""int8 layers in the region graphs: ncnn's own int8 form of Convolution, ConvolutionDepthWise, InnerProduct and
Gemm, written where codegen finishes a region (codegen.convert_region calls `rewrite` after the graph passes,
so blob and layer names are final).

An int8 export runs codegen twice (int8_export.py): once for the fp32 model.so that calibration runs, with a
Recorder active (it keeps each region's finished fp32 graph: the layers to quantize, their input blobs to probe,
their weights), then for the int8 model.so with a Plan active (activation scales from calibration.py, the layers
kept fp32). Without either, `rewrite` does nothing. The two runs see the same regions: partition does not depend
on the target or the precision, and a layer that is not where the plan says is an error, never a guess.

ncnn's int8 layers (src/layer/convolution.cpp etc., load_model): `int8_scale_term` (param 8) = 1, the weights
int8 (ModelBin tag 0x000D4B38, padded to 4 bytes), the bias fp32, then the weight scales (one per output
channel; per group for ConvolutionDepthWise) and the input's scale, raw fp32. The layer quantizes its input
with that scale, accumulates in int32 and writes fp32, so every other layer is untouched. Gemm (param 18
quantize_term) quantizes its input per row at run time and takes one scale for its constant B: no activation
scale. Weight scales are 127 / max|w| of the channel, 31 / max|w| for a 3x3 stride-1 Convolution (ncnn's int8
winograd F(4,3) needs 6-bit weights: its transform would overflow int16 otherwise), as ncnn2table sets them."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError
from .ncnn_graph import Layer, NcnnGraph

# The ncnn layer types this module writes in int8; Gemm only with a constant B (a Linear on tokens).
INT8_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct", "Gemm")
# Layers whose int8 form needs the scale of their input (calibrated); Gemm quantizes its input per row itself.
CALIBRATED_TYPES = ("Convolution", "ConvolutionDepthWise", "InnerProduct")


def quantizable(layer: Layer) -> bool:
    if layer.type == "Gemm":
        p = layer.params
        return p.get(5) == 1 and p.get(4, 0) == 0 and p.get(3) == 1  # constant B stored (N, K), A an input
    if layer.type == "ConvolutionDepthWise" and not depthwise(layer):
        # A grouped (not depthwise) convolution: this ncnn's x86 int8 path for it computed garbage (NaN) from
        # int8-stored weights and other values than the ncnn wheel from fp32-stored ones; it stays fp32.
        return False
    return layer.type in CALIBRATED_TYPES and bool(layer.weights) and layer.params.get(8, 0) == 0


def depthwise(layer: Layer) -> bool:
    """One input channel per group and one output per group (group == channels in == channels out)."""
    p = layer.params
    group, out = int(p.get(7, 1)), int(p[0])
    taps = int(p.get(1, 1)) * int(p.get(11, p.get(1, 1)))
    return group == out and int(p[6]) == out * taps


@dataclass
class Recorder:
    """What the fp32 codegen run leaves for calibration: symbol -> (a copy of) the region's finished graph,
    its input blobs and output blobs."""
    graphs: dict[str, NcnnGraph] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Plan:
    """The int8 codegen run's instructions. scales: "<symbol>/<layer>" -> the input's int8 scale; keep: keys of
    layers to leave fp32 (why, for the report: key -> reason); method names the weight-scale rule ("kl"/"eq":
    max|w|, "aciq": ACIQ's clip)."""
    scales: dict[str, float]
    keep: dict[str, str] = field(default_factory=dict)
    method: str = "kl"
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)  # overrides (EQ's search)
    bias: dict[str, np.ndarray] = field(default_factory=dict)  # per-channel shifts off the bias (int8_bias.py)
    written: list[dict] = field(default_factory=list)  # per-layer report of the last codegen run


_active: Recorder | Plan | None = None


@contextlib.contextmanager
def active(state: Recorder | Plan):
    global _active
    previous, _active = _active, state
    try:
        yield state
    finally:
        _active = previous


def current() -> Recorder | Plan | None:
    return _active


def rewrite(symbol: str, graph: NcnnGraph, inputs: list[str], outputs: list[str]) -> None:
    """codegen's hook: record the fp32 graph, or quantize it as the active plan says."""
    if isinstance(_active, Recorder):
        _active.graphs[symbol] = copy.deepcopy(graph)
        _active.inputs[symbol], _active.outputs[symbol] = list(inputs), list(outputs)
    elif isinstance(_active, Plan):
        apply_plan(symbol, graph, _active)


def key(symbol: str, layer: Layer) -> str:
    return f"{symbol}/{layer.name}"


def apply_plan(symbol: str, graph: NcnnGraph, plan: Plan) -> None:
    for layer in graph.layers:
        if not quantizable(layer):
            continue
        k = key(symbol, layer)
        entry = {"layer": k, "type": layer.type, "precision": "int8", "why": ""}
        if k in plan.keep:
            entry.update(precision="fp32", why=plan.keep[k])
        elif layer.type == "Gemm":
            quantize_layer(layer, None, plan.method, plan.weight_scales.get(k))
        elif k not in plan.scales:
            raise ModelError(f"int8: layer {k} was not calibrated (the fp32 and int8 exports partitioned the model "
                             f"differently)")
        else:
            entry["scale"] = float(plan.scales[k])
            quantize_layer(layer, plan.scales[k], plan.method, plan.weight_scales.get(k), plan.bias.get(k))
        plan.written.append(entry)


# Layers a blob passes through keeping its values within their range (a clip's bound still holds after them).
RANGE_KEEPING = ("Pooling", "Split", "Reshape", "Flatten", "Dropout", "Noop", "Permute", "Crop", "Slice",
                 "Padding", "Interp")


def bounded_blobs(graph: NcnnGraph) -> set[str]:
    """Blobs a clipping activation bounds: a layer's fused clip (param 9 = 3) or a Clip layer, then through
    RANGE_KEEPING layers. calibration.py scales them by absmax (their values pile up at the bound)."""
    out = set()
    for layer in graph.layers:  # ncnn graphs are in topological order
        clipped = (layer.type == "Clip" or (layer.type in INT8_TYPES and layer.params.get(9) == 3))
        kept = layer.type in RANGE_KEEPING and layer.bottoms and all(b in out for b in layer.bottoms)
        if clipped or kept:
            out.update(layer.tops)
    return out


def channel_groups(layer: Layer) -> int:
    """How many weight scales the layer takes: per output channel, per group for ConvolutionDepthWise, one for
    Gemm's B."""
    if layer.type == "ConvolutionDepthWise":
        return int(layer.params[7])
    if layer.type == "Gemm":
        return 1
    return int(layer.params[0])


def winograd_6bit(layer: Layer) -> bool:
    p = layer.params
    return (layer.type == "Convolution" and p.get(1) == 3 and p.get(11, p.get(1)) == 3 and p.get(2, 1) == 1
            and p.get(12, p.get(2, 1)) == 1 and p.get(3, 1) == 1 and p.get(13, p.get(3, 1)) == 1)


def weight_scales(layer: Layer, method: str = "kl") -> np.ndarray:
    """float32 scales, one per channel group: 127 (31 for winograd) over max|w|, or over ACIQ's clip; 0 for an
    all-zero group (ncnn then writes 0 for that channel before the bias)."""
    from .calibration import aciq_threshold

    weight = np.asarray(layer.weights[0][0], dtype=np.float32).reshape(channel_groups(layer), -1)
    absmax = np.abs(weight).max(axis=1).astype(np.float64)
    bits = 6 if winograd_6bit(layer) else 8
    if method == "aciq":
        absmax = np.array([aciq_threshold(a, weight.shape[1], bits) for a in absmax])
    levels = 31.0 if bits == 6 else 127.0
    with np.errstate(divide="ignore"):
        scales = np.where(absmax > 0, levels / np.where(absmax > 0, absmax, 1.0), 0.0)
    return scales.astype(np.float32)


def to_int8(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """ncnn's float2int8 per channel group: round half away from zero, clamp to [-127, 127]."""
    groups = scales.shape[0]
    scaled = values.astype(np.float32).reshape(groups, -1) * scales.reshape(groups, 1)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded, -127, 127).astype(np.int8).reshape(values.shape)


def quantize_layer(layer: Layer, input_scale: float | None, method: str = "kl",
                   scales: np.ndarray | None = None, bias_shift: np.ndarray | None = None) -> None:
    """Rewrite one fp32 layer into ncnn's int8 form, in place (params and weights in load_model's order);
    bias_shift (bias correction, int8_bias.py) is taken off the bias."""
    scales = weight_scales(layer, method) if scales is None else np.asarray(scales, np.float32)
    weight = np.asarray(layer.weights[0][0], dtype=np.float32)
    quantized = to_int8(weight.reshape(-1), scales)
    rest = list(layer.weights[1:])  # bias (untagged) or Gemm's C (tagged): unchanged but for bias_shift
    if bias_shift is not None:
        bias, tagged = rest[0]
        rest[0] = (np.asarray(bias, np.float32) - np.asarray(bias_shift, np.float32), tagged)
    if layer.type == "Gemm":
        layer.params[18] = 2  # int8, the input quantized per row at run time
        layer.weights = [(quantized, True), *rest, (scales.reshape(1), False)]
        return
    layer.params[8] = 1
    layer.weights = [(quantized, True), *rest, (scales, False),
                     (np.array([input_scale], dtype=np.float32), False)]
