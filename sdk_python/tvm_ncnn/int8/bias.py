"""Bias correction for int8 layers: each layer's int8 form shifts the mean of its outputs, per output channel,
away from fp32's; the shift, measured on the calibration inputs, is taken off the layer's fp32 bias.

Why: on a depthwise/ReLU6 net (EfficientNet-Lite0) activation scales are per tensor (one per ncnn int8 layer's
input), so a channel whose values span a few of the tensor's int8 steps quantizes with a systematic error, not
noise: its mean moves, and later layers (batch norm folded in: large weights) amplify it. Measured there, all
layers int8: mean output cosine to fp32 0.974 -> 0.982 (held out 0.965 -> 0.981); with calibration.py's bound
rule 0.993 (issue 14). This is the empirical bias correction of Nagel et al., "Data-Free Quantization" (2019).

Each layer is measured alone on its probed fp32 input (ncnn's own int8 layer against its fp32 form, both with
the fused activation taken off so the shift is the one before it): one-layer runs, a few seconds at export.
Correcting layer by layer on the int8 path's inputs instead measured no better (mean cosine 0.994 vs 0.993)
and costs a full-network run per layer. Float64 means in a fixed order: the same inputs give the same bias."""

from __future__ import annotations

import numpy as np

from ..ncnn import quantize
from .probe import net_run, one_layer_graph


def correctable(layer) -> bool:
    """A calibrated int8 layer with a bias to correct (Gemm quantizes its input per row: not measured here)."""
    return (quantize.quantizable(layer) and layer.type in quantize.CALIBRATED_TYPES
            and int(layer.params.get(5, 0)) == 1 and len(layer.weights) > 1)


def corrections(regions: dict, scales: dict[str, float], probe, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """layer key -> float32 per-channel shift (int8 mean - fp32 mean, before the activation). regions: symbol ->
    ncnn.codegen.Region (its fp32 graph)."""
    out = {}
    for symbol, region in regions.items():
        layers = [l for l in region.graph.layers if correctable(l) and quantize.key(symbol, l) in scales]
        if not layers:
            continue
        keys = sorted({f"{symbol}/{l.bottoms[0]}" for l in layers})
        probed = [probe.on(keys)(x) for x in inputs]
        for layer in layers:
            k = quantize.key(symbol, layer)
            samples = [[p[f"{symbol}/{layer.bottoms[0]}"]] for p in probed]
            shape = samples[0][0].shape[1:]
            int8 = net_run(one_layer_graph(layer, shape, scales[k], activation=False), ["in"], samples, ["out"])
            fp32 = net_run(one_layer_graph(layer, shape, None, activation=False), ["in"], samples, ["out"])
            channels = int(layer.params[0])
            shift = np.zeros(channels, dtype=np.float64)
            for a, b in zip(int8, fp32):
                shift += (a[0].astype(np.float64) - b[0]).reshape(channels, -1).mean(axis=1)
            out[k] = (shift / len(samples)).astype(np.float32)
    return out
