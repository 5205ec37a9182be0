"""int8 calibration (exporter/api.py runs it between an fp32 build for this machine and the int8 build): the fp32
model.so runs every calibration input with the probe on (calibration.py): one activation scale per layer to
quantize; bias correction (bias.py). `keep_fp32` names layers to leave fp32; "auto" (the default when it names
none; "none" for every layer int8) measures, region by region, how much each layer alone costs (ncnn's int8 layer
on the recorded inputs, probe.net_run) and keeps the most sensitive ones fp32 until every region output's cosine
similarity to fp32 is at least `min_cosine`. Mixed precision is the default because one layer can cost most of
the accuracy: EfficientNet-Lite0's first depthwise conv alone took the output's cosine to 0.94; kept fp32 (auto at
0.99 keeps it and nothing else on 4 of 5 folds) the lowest held-out cosine went 0.968 -> 0.976 and top-1
agreement 93.1% -> 100% of 29 photos (issue 14). The result is a ncnn.quantize.Plan: data, handed to the build."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ncnn import quantize
from ..ncnn.codegen import Region
from ..ncnn.graph import NcnnGraph
from . import bias as int8_bias
from . import calibration as cal
from .accuracy import cosine
from .probe import Probe, net_run, one_layer_graph

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
AUTO = "auto"
NONE = "none"  # keep_fp32 entry: every layer int8, no auto mode
AUTO_SAMPLES = 8  # calibration inputs the auto mode measures regions on


@dataclass
class Calibration:
    """export's calibration=: a directory of images (preprocessed as the model's metadata says) or .npy tensors.
    Every 5th file (sorted by name; the last one when fewer than 5) is held out for the accuracy report."""
    data: str
    method: str = "kl"
    # layer keys ("<symbol>/<layer>"), layer names, types, "auto", "none"; empty: "auto"
    keep_fp32: list[str] = field(default_factory=list)
    min_cosine: float = 0.99  # auto mode's bound on each region output
    held_out: list[str] | None = None  # file names to hold out instead of every 5th (benchmarks' folds)
    bias_correction: bool = True  # bias.py: per-channel output mean shift taken off each layer's bias

    def __post_init__(self):
        if self.method not in cal.METHODS:
            raise ModelError(f"calibration method '{self.method}' is not one of {', '.join(cal.METHODS)}")
        if not 0 < self.min_cosine <= 1:
            raise ModelError(f"min_cosine {self.min_cosine} is not in (0, 1]")


def as_calibration(value) -> Calibration:
    return value if isinstance(value, Calibration) else Calibration(os.fspath(value))


def split_files(directory: str, held_out: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """(calibration files, held-out files), or ModelError in one line."""
    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"calibration: {directory} is not a directory")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
    if len(files) < 2:
        raise ModelError(f"calibration: {directory} holds {len(files)} image/.npy file(s); int8 needs at least 2 "
                         f"(one is held out for the accuracy report)")
    held = files[4::5] if len(files) >= 5 else files[-1:]
    if held_out is not None:
        held = [f for f in files if f.name in set(held_out)]
        if not held or len(held) == len(files):
            raise ModelError(f"calibration: held_out must name some but not all files of {directory}")
    return [f for f in files if f not in held], held


def read_input(model, path: Path) -> np.ndarray:
    """One model input from a file: an image preprocessed as the metadata says, or a .npy of the input's shape."""
    if len(model.inputs) != 1:
        raise ModelError("calibration: only models with one input can be calibrated")
    spec = model.inputs[0]
    if path.suffix.lower() != ".npy":
        try:
            return model.load_image(str(path))
        except Exception as err:
            raise ModelError(f"calibration: {path}: {err}".splitlines()[0]) from err
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ModelError(f"calibration: {path} is not a readable .npy ({err})".splitlines()[0]) from err
    if list(x.shape) != list(spec["shape"]) or x.dtype != np.float32:
        raise ModelError(f"calibration: {path} is {x.dtype} {list(x.shape)}, the model takes float32 "
                         f"{list(spec['shape'])}")
    return x


def resolve_keep(names: list[str], regions: dict[str, Region]) -> dict[str, str]:
    """keep_fp32 entries -> the layer keys they name, each with why; an entry naming no layer is an error."""
    layers = [(quantize.key(s, l), l) for s, r in regions.items() for l in r.graph.layers if quantize.quantizable(l)]
    keep = {}
    for name in names:
        if name in (AUTO, NONE):
            continue
        hits = [k for k, l in layers if name in (k, l.name, l.type)]
        if not hits:
            raise ModelError(f"--keep-fp32 {name}: no int8 layer has that name or type "
                             f"(layers: {', '.join(k for k, _ in layers[:6])}{', ...' if len(layers) > 6 else ''})")
        keep.update({k: "--keep-fp32" for k in hits})
    return keep


def auto_keep(regions: dict[str, Region], scales: dict[str, float], keep: dict[str, str], method: str,
              probe: Probe, inputs: list[np.ndarray], min_cosine: float, bias: dict | None = None) -> dict[str, str]:
    """Layers to keep fp32 so that every region output stays at cosine >= min_cosine against fp32 on the
    calibration inputs: each layer's cost measured alone, then the costliest kept fp32 one at a time."""
    keep = dict(keep)
    for symbol, region in regions.items():
        graph, ins, outs = region.graph, region.inputs, region.outputs
        probed = [probe.on([f"{symbol}/{b}" for b in ins + outs])(x) for x in inputs]
        samples = [[p[f"{symbol}/{b}"] for b in ins] for p in probed]
        reference = [[p[f"{symbol}/{b}"] for b in outs] for p in probed]

        def worst(int8_keys: set[str]) -> float:
            g = _quantized_copy(graph, symbol, scales, int8_keys, method, bias or {})
            got = net_run(g, ins, samples, outs)
            return min(cosine(a, b) for r, o in zip(reference, got) for a, b in zip(r, o))

        candidates = [quantize.key(symbol, l) for l in graph.layers
                      if quantize.quantizable(l) and quantize.key(symbol, l) not in keep]
        if not candidates:
            continue
        cost = {k: 1.0 - worst({k}) for k in candidates}
        order = sorted(candidates, key=lambda k: (-cost[k], k))  # ties by name: deterministic
        int8 = set(candidates)
        while int8 and worst(int8) < min_cosine:
            k = next(k for k in order if k in int8)
            int8.discard(k)
            keep[k] = f"auto (alone: cosine {1 - cost[k]:.4f})"
    return keep


def _quantized_copy(graph: NcnnGraph, symbol: str, scales, int8_keys: set[str], method: str,
                    bias: dict | None = None) -> NcnnGraph:
    g = copy.deepcopy(graph)
    for layer in g.layers:
        k = quantize.key(symbol, layer)
        if quantize.quantizable(layer) and k in int8_keys:
            quantize.quantize_layer(layer, scales.get(k), method, None, (bias or {}).get(k))
    return g


def eq_search(regions: dict[str, Region], scales: dict[str, float], probe: Probe, inputs) -> dict[str, float]:
    """calibration.py's eq: per layer, the input scale in [0.5, 2] x kl's that maximizes the mean cosine of the
    layer's own output, the layer run alone in int8 on its probed fp32 input."""
    steps, inputs = 20, inputs[:AUTO_SAMPLES]
    out = dict(scales)
    for symbol, region in regions.items():
        layers = [l for l in region.graph.layers if l.type in quantize.CALIBRATED_TYPES and quantize.quantizable(l)]
        keys = [f"{symbol}/{b}" for l in layers for b in (l.bottoms[0], l.tops[0])]
        probed = [probe.on(keys)(x) for x in inputs]
        for layer in layers:
            k = quantize.key(symbol, layer)
            samples = [[p[f"{symbol}/{layer.bottoms[0]}"]] for p in probed]
            reference = [p[f"{symbol}/{layer.tops[0]}"] for p in probed]
            best, best_sim = scales[k], -2.0
            for i in range(steps):
                candidate = float(np.float32(scales[k] * (0.5 + 1.5 * i / (steps - 1))))
                g = one_layer_graph(layer, samples[0][0].shape[1:], candidate)
                got = net_run(g, ["in"], samples, ["out"])
                sim = float(np.mean([cosine(r, o[0]) for r, o in zip(reference, got)]))
                if sim > best_sim:
                    best, best_sim = candidate, sim
            out[k] = best
    return out


def calibrate(c: Calibration, regions: dict[str, Region], fp32, files: list[Path],
              held_out: int) -> tuple[quantize.Plan, dict]:
    """The int8 plan for the regions' fp32 graphs, measured on `fp32` (the fp32 model.so for this machine,
    loaded) running the calibration files, and its summary for the report (held_out: files kept for it)."""
    inputs = [read_input(fp32, f) for f in files]
    layers = {quantize.key(s, l): f"{s}/{l.bottoms[0]}" for s, r in regions.items() for l in r.graph.layers
              if quantize.quantizable(l) and l.type in quantize.CALIBRATED_TYPES}
    if not any(quantize.quantizable(l) for r in regions.values() for l in r.graph.layers):
        raise ModelError("precision int8: no layer of this model runs int8 in ncnn (Convolution, "
                         "ConvolutionDepthWise, InnerProduct, Gemm): export fp16 or fp32")
    probe = Probe(fp32, sorted(set(layers.values())))
    bounded = frozenset(f"{s}/{b}" for s, r in regions.items() for b in quantize.bounded_blobs(r.graph))
    blob_scales = cal.collect(probe, probe.keys, inputs, "aciq" if c.method == "aciq" else "kl", bounded)
    scales = {k: blob_scales[b] for k, b in layers.items()}
    if c.method == "eq":
        scales = eq_search(regions, scales, probe, inputs)
    bias = int8_bias.corrections(regions, scales, probe, inputs[:AUTO_SAMPLES]) if c.bias_correction else {}
    names = list(c.keep_fp32) or [AUTO]  # mixed precision unless told otherwise
    if NONE in names and len(names) > 1:
        raise ModelError("--keep-fp32 none (every layer int8) cannot be combined with other entries")
    keep = resolve_keep(names, regions)
    auto = AUTO in names
    if auto:
        keep = auto_keep(regions, scales, keep, c.method, probe, inputs[:AUTO_SAMPLES], c.min_cosine, bias)
    plan = quantize.Plan(scales, keep, "aciq" if c.method == "aciq" else "kl", bias=bias)
    summary = {"method": c.method, "calibration_files": len(files), "held_out_files": held_out,
               "bias_correction": bool(bias),
               "min_cosine": c.min_cosine if auto else None}
    return plan, summary


def layers_text(layers: list[dict], min_cosine: float | None = None) -> str:
    int8 = sum(1 for l in layers if l["precision"] == "int8")
    kept = [f"{l['layer']} ({l['why']})" for l in layers if l["precision"] != "int8"]
    mode = (f" (mixed precision: auto keeps the most sensitive layers fp32 until each region output's cosine "
            f"is >= {min_cosine}; --keep-fp32 none for all int8)" if min_cosine is not None else "")
    return (f"int8 layers: {int8} of {len(layers)}{mode}"
            + (f"; kept fp32: {', '.join(kept)}" if kept else ""))
