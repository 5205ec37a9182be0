"""int8 layers in the region graphs: ncnn's own int8 form of Convolution, ConvolutionDepthWise, InnerProduct and
Gemm, written where codegen finishes a region (ncnn/codegen.py applies the Plan it is given after the graph
passes, so blob and layer names are final).

An int8 export (exporter/api.py) partitions the model once, takes each region's finished fp32 graph
(ncnn.codegen.region_graphs: the layers to quantize, their input blobs to probe, their weights), calibrates on an
fp32 model.so (int8/calibrate.py), and then builds the int8 model.so with the Plan: activation scales, the layers
kept fp32. Both builds lower the same partitioned module, and a layer that is not where the plan says is an
error, never a guess.

ncnn's int8 layers (src/layer/convolution.cpp etc., load_model): `int8_scale_term` (param 8) = 1, the weights
int8 (ModelBin tag 0x000D4B38, padded to 4 bytes), the bias fp32, then the weight scales (one per output
channel; per group for ConvolutionDepthWise) and the input's scale, raw fp32. The layer quantizes its input
with that scale, accumulates in int32 and writes fp32, so every other layer is untouched. Gemm (param 18
quantize_term) quantizes its input per row at run time and takes one scale for its constant B: no activation
scale. Weight scales are 127 / max|w| of the channel, 31 / max|w| for a 3x3 stride-1 Convolution (ncnn's int8
winograd F(4,3) needs 6-bit weights: its transform would overflow int16 otherwise), as ncnn2table sets them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError
from .graph import Layer, NcnnGraph

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
class Plan:
    """The int8 codegen's instructions, handed to it explicitly (compile/lower.py passes them to relax.ext.ncnn
    as a codegen option). scales: "<symbol>/<layer>" -> the input's int8 scale; keep: keys of layers to leave
    fp32 (key -> why, for the report); method names the weight-scale rule ("kl"/"eq": max|w|, "aciq": ACIQ's
    clip)."""
    scales: dict[str, float]
    keep: dict[str, str] = field(default_factory=dict)
    method: str = "kl"
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)  # overrides (EQ's search)
    bias: dict[str, np.ndarray] = field(default_factory=dict)  # per-channel shifts off the bias (int8/bias.py)

    def apply(self, symbol: str, graph: NcnnGraph) -> None:
        """Rewrite the region's fp32 graph in place: every quantizable layer not kept fp32 becomes int8."""
        for layer in graph.layers:
            k = key(symbol, layer)
            if not quantizable(layer) or k in self.keep:
                continue
            if layer.type == "Gemm":
                quantize_layer(layer, None, self.method, self.weight_scales.get(k))
            elif k not in self.scales:
                raise ModelError(f"int8: layer {k} was not calibrated (the fp32 and int8 exports partitioned the "
                                 f"model differently)")
            else:
                quantize_layer(layer, self.scales[k], self.method, self.weight_scales.get(k), self.bias.get(k))

    def layers(self, graphs: dict[str, NcnnGraph]) -> list[dict]:
        """The per-layer report (inspect's table, metadata "int8"): each quantizable layer, its precision, why
        it stayed fp32 or its input scale."""
        report = []
        for symbol, graph in graphs.items():
            for layer in graph.layers:
                if not quantizable(layer):
                    continue
                k = key(symbol, layer)
                entry = {"layer": k, "type": layer.type, "precision": "int8", "why": ""}
                if k in self.keep:
                    entry.update(precision="fp32", why=self.keep[k])
                elif layer.type != "Gemm":
                    entry["scale"] = float(self.scales[k])
                report.append(entry)
        return report

    def to_json(self) -> str:
        """The plan as codegen option text (float32 values round-trip exactly through JSON's doubles)."""
        arrays = lambda d: {k: np.asarray(v, np.float32).tolist() for k, v in d.items()}  # noqa: E731
        return json.dumps({"scales": {k: float(v) for k, v in self.scales.items()}, "keep": self.keep,
                           "method": self.method, "weight_scales": arrays(self.weight_scales),
                           "bias": arrays(self.bias)})

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        arrays = lambda m: {k: np.asarray(v, np.float32) for k, v in m.items()}  # noqa: E731
        return cls({k: float(np.float32(v)) for k, v in d["scales"].items()}, d["keep"], d["method"],
                   arrays(d["weight_scales"]), arrays(d["bias"]))


def key(symbol: str, layer: Layer) -> str:
    return f"{symbol}/{layer.name}"


# The largest scale written: a weight or activation scale past it (a dead channel or blob, values under ~1e-16)
# would overflow float32, or make ncnn's dequantization scale 1 / (input scale x weight scale) inf or NaN; a
# scale this large already quantizes such values to 0, which is what they contribute.
MAX_SCALE = 1e18


# Layers a blob passes through keeping its values within their range (a clip's bound still holds after them).
RANGE_KEEPING = ("Pooling", "Split", "Reshape", "Flatten", "Dropout", "Noop", "Permute", "Crop", "Slice",
                 "Padding", "Interp")


def bounded_blobs(graph: NcnnGraph) -> set[str]:
    """Blobs a clipping activation bounds: a layer's fused clip (param 9 = 3) or a Clip layer, then through
    RANGE_KEEPING layers. int8/calibration.py scales them by absmax (their values pile up at the bound)."""
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


def aciq_threshold(absmax: float, count: int, bits: int = 8) -> float:
    """ACIQ's clip for a Gaussian of the spread absmax suggests over `count` values (ncnn2table's constants)."""
    alpha = (0, 1.71063519, 2.15159277, 2.55913646, 2.93620062, 3.28691474, 3.6151146, 3.92403714)[bits - 1]
    gaussian_const = (0.5 * 0.35) * (1 + math.sqrt(math.pi * math.log(4)))
    std = (absmax * 2 * gaussian_const) / math.sqrt(2 * math.log(max(count, 2)))
    return alpha * std


def weight_scales(layer: Layer, method: str = "kl") -> np.ndarray:
    """float32 scales, one per channel group: 127 (31 for winograd) over max|w|, or over ACIQ's clip; 0 for a
    dead group, all zero or so small that its scale would pass MAX_SCALE (ncnn then writes 0 for that channel
    before the bias: what those weights contribute)."""
    weight = np.asarray(layer.weights[0][0], dtype=np.float32).reshape(channel_groups(layer), -1)
    absmax = np.abs(weight).max(axis=1).astype(np.float64)
    bits = 6 if winograd_6bit(layer) else 8
    if method == "aciq":
        absmax = np.array([aciq_threshold(a, weight.shape[1], bits) for a in absmax])
    levels = 31.0 if bits == 6 else 127.0
    live = absmax * MAX_SCALE > levels
    scales = np.where(live, levels / np.where(live, absmax, 1.0), 0.0)
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
    bias_shift (bias correction, int8/bias.py) is taken off the bias."""
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
