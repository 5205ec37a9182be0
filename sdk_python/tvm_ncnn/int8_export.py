"""export(precision="int8", calibration=...): fp32 export -> calibrate on the data -> int8 export -> accuracy report.

1. The model is exported fp32 for this machine into a temporary file, codegen recording each region's graph
   (quantize.Recorder).
2. That model.so runs every calibration input with the probe on (calibration.py): one activation scale per
   layer to quantize; bias correction (int8_bias.py). `keep_fp32` names layers to leave fp32; "auto" (the
   default when it names none; "none" for every layer int8) measures, region by region, how much each layer
   alone costs (ncnn's int8 layer on the recorded inputs, tvm_ncnn.ncnn_net_run) and keeps the most sensitive
   ones fp32 until every region output's cosine similarity to fp32 is at least `min_cosine`. Mixed precision
   is the default because one layer can cost most of the accuracy: EfficientNet-Lite0's first depthwise conv
   alone took the output's cosine to 0.94; kept fp32 (auto at 0.99 keeps it and nothing else on 4 of 5 folds)
   the lowest held-out cosine went 0.968 -> 0.976 and top-1 agreement 93.1% -> 100% of 29 photos (issue 14).
3. The model is exported again, for the target, with the plan active (quantize.Plan): int8 layers, metadata
   precision "int8" and an "int8" report (the per-layer table, the method, the files, the accuracy).
4. Accuracy against fp32 on the held-out files (never used for calibration): top-1/top-5 agreement when the
   first output is a class vector, cosine similarity and max error per output. Runs a host model.so: the
   exported one, or for another target the same plan exported for the host (ncnn's x86 and ARM int8 kernels
   differ only in rounding)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration as cal
from . import int8_bias, native, quantize
from .errors import ModelError
from .ncnn_graph import NcnnGraph

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
    bias_correction: bool = True  # int8_bias.py: per-channel output mean shift taken off each layer's bias

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


class Probe:
    """The fp32 model.so with the probe on for `keys` ("<symbol>/<blob>")."""

    def __init__(self, model, keys: list[str]):
        self.model, self.keys = model, keys

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        native.get_function("tvm_ncnn.probe_start")(self.keys)
        try:
            self.model(x)
            taken = native.get_function("tvm_ncnn.probe_take")()
            return {str(k): np.from_dlpack(v).copy() for k, v in taken.items()}
        finally:
            native.get_function("tvm_ncnn.probe_stop")()


def net_run(graph: NcnnGraph, inputs: list[str], samples: list[list[np.ndarray]], outputs: list[str]):
    """One region graph run alone by the runtime's ncnn (fp32 except its int8 layers)."""
    import tvm_ffi

    param, weights = graph.serialize()
    run = native.get_function("tvm_ncnn.ncnn_net_run")
    tensors = [[tvm_ffi.from_dlpack(np.ascontiguousarray(a)) for a in sample] for sample in samples]
    return [[np.from_dlpack(t).copy() for t in out] for out in run(param, weights, inputs, tensors, outputs, 0)]


def resolve_keep(names: list[str], recorder: quantize.Recorder) -> dict[str, str]:
    """keep_fp32 entries -> the layer keys they name, each with why; an entry naming no layer is an error."""
    layers = [(quantize.key(s, l), l) for s, g in recorder.graphs.items() for l in g.layers if quantize.quantizable(l)]
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


def auto_keep(recorder: quantize.Recorder, scales: dict[str, float], keep: dict[str, str], method: str,
              probe: Probe, inputs: list[np.ndarray], min_cosine: float, bias: dict | None = None) -> dict[str, str]:
    """Layers to keep fp32 so that every region output stays at cosine >= min_cosine against fp32 on the
    calibration inputs: each layer's cost measured alone, then the costliest kept fp32 one at a time."""
    keep = dict(keep)
    for symbol, graph in recorder.graphs.items():
        ins, outs = recorder.inputs[symbol], recorder.outputs[symbol]
        probed = [probe.__class__(probe.model, [f"{symbol}/{b}" for b in ins + outs])(x) for x in inputs]
        samples = [[p[f"{symbol}/{b}"] for b in ins] for p in probed]
        reference = [[p[f"{symbol}/{b}"] for b in outs] for p in probed]

        def worst(int8_keys: set[str]) -> float:
            g = _quantized_copy(graph, symbol, scales, int8_keys, method, bias or {})
            got = net_run(g, ins, samples, outs)
            return min(cal.cosine(a, b) for r, o in zip(reference, got) for a, b in zip(r, o))

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
    import copy

    g = copy.deepcopy(graph)
    for layer in g.layers:
        k = quantize.key(symbol, layer)
        if quantize.quantizable(layer) and k in int8_keys:
            quantize.quantize_layer(layer, scales.get(k), method, None, (bias or {}).get(k))
    return g


def eq_search(recorder: quantize.Recorder, scales: dict[str, float], probe: Probe, inputs) -> dict[str, float]:
    """calibration.py's eq: per layer, the input scale in [0.5, 2] x kl's that maximizes the mean cosine of the
    layer's own output, the layer run alone in int8 on its probed fp32 input."""
    steps, inputs = 20, inputs[:AUTO_SAMPLES]
    out = dict(scales)
    for symbol, graph in recorder.graphs.items():
        layers = [l for l in graph.layers if l.type in quantize.CALIBRATED_TYPES and quantize.quantizable(l)]
        keys = [f"{symbol}/{b}" for l in layers for b in (l.bottoms[0], l.tops[0])]
        probed = [probe.__class__(probe.model, keys)(x) for x in inputs]
        for layer in layers:
            k = quantize.key(symbol, layer)
            samples = [[p[f"{symbol}/{layer.bottoms[0]}"]] for p in probed]
            reference = [p[f"{symbol}/{layer.tops[0]}"] for p in probed]
            best, best_sim = scales[k], -2.0
            for i in range(steps):
                candidate = float(np.float32(scales[k] * (0.5 + 1.5 * i / (steps - 1))))
                g = _one_layer_graph(layer, samples[0][0].shape[1:], candidate)
                got = net_run(g, ["in"], samples, ["out"])
                sim = float(np.mean([cal.cosine(r, o[0]) for r, o in zip(reference, got)]))
                if sim > best_sim:
                    best, best_sim = candidate, sim
            out[k] = best
    return out


def _one_layer_graph(layer, shape, scale: float) -> NcnnGraph:
    import copy

    from .ncnn_graph import Layer, shape_params

    g = NcnnGraph()
    g.layers.append(Layer("Input", "input", [], ["in"], shape_params(list(shape))))
    clone = copy.deepcopy(layer)
    clone.bottoms, clone.tops = ["in"], ["out"]
    quantize.quantize_layer(clone, scale)
    g.layers.append(clone)
    return g


def export_int8(export, args: dict):
    """exporter.export's int8 branch; `args` are export's own arguments (the int8 ones among them)."""
    from .accuracy import compare, report_text
    from .model import load

    if args.get("calibration") is None:
        raise ModelError("precision int8 needs calibration data: --calibration DIR (Python: calibration=DIR), "
                         "images or .npy tensors like the model's inputs")
    c = as_calibration(args["calibration"])
    calibration_files, held = split_files(c.data, c.held_out)
    # The fp32 reference for this machine: no signing or tuning (its TVM part only feeds the regions' inputs).
    plain = {k: v for k, v in args.items() if k not in ("calibration", "sign", "tuning")}
    with tempfile.TemporaryDirectory(prefix="tvm_ncnn_int8_") as tmp:
        recorder = quantize.Recorder()
        fp32_path = os.path.join(tmp, "fp32.so")
        with quantize.active(recorder):
            export(**{**plain, "path": fp32_path, "target": "host", "precision": "fp32"})
        fp32 = load(fp32_path, precision="fp32")
        inputs = [read_input(fp32, f) for f in calibration_files]
        held_inputs = [read_input(fp32, f) for f in held]
        layers = {quantize.key(s, l): f"{s}/{l.bottoms[0]}" for s, g in recorder.graphs.items() for l in g.layers
                  if quantize.quantizable(l) and l.type in quantize.CALIBRATED_TYPES}
        if not any(quantize.quantizable(l) for g in recorder.graphs.values() for l in g.layers):
            raise ModelError("precision int8: no layer of this model runs int8 in ncnn (Convolution, "
                             "ConvolutionDepthWise, InnerProduct, Gemm): export fp16 or fp32")
        probe = Probe(fp32, sorted(set(layers.values())))
        bounded = frozenset(f"{s}/{b}" for s, g in recorder.graphs.items() for b in quantize.bounded_blobs(g))
        blob_scales = cal.collect(probe, probe.keys, inputs, "aciq" if c.method == "aciq" else "kl", bounded)
        scales = {k: blob_scales[b] for k, b in layers.items()}
        if c.method == "eq":
            scales = eq_search(recorder, scales, probe, inputs)
        bias = int8_bias.corrections(recorder, scales, probe, inputs[:AUTO_SAMPLES]) if c.bias_correction else {}
        names = list(c.keep_fp32) or [AUTO]  # mixed precision unless told otherwise
        if NONE in names and len(names) > 1:
            raise ModelError("--keep-fp32 none (every layer int8) cannot be combined with other entries")
        keep = resolve_keep(names, recorder)
        auto = AUTO in names
        if auto:
            keep = auto_keep(recorder, scales, keep, c.method, probe, inputs[:AUTO_SAMPLES], c.min_cosine, bias)
        plan = quantize.Plan(scales, keep, "aciq" if c.method == "aciq" else "kl", bias=bias)
        summary = {"method": c.method, "calibration_files": len(calibration_files), "held_out_files": len(held),
                   "bias_correction": bool(bias),
                   "min_cosine": c.min_cosine if auto else None}
        host_path = args["path"] if args["target"] == "host" else os.path.join(tmp, "int8_host.so")
        if host_path != args["path"]:  # the report runs on this machine: the same plan, exported for it
            plan.written = []
            with quantize.active(plan):
                export(**{**plain, "path": host_path, "target": "host", "precision": "int8"})
        plan.written, plan.summary = [], summary
        with quantize.active(plan):
            result = export(**{**args, "calibration": None, "precision": "int8"})
        accuracy = compare(fp32, load(host_path, precision="fp32"), held_inputs)
    result.int8 = {**summary, "layers": plan.written, "accuracy": accuracy,
                   "text": report_text(accuracy) + "\n" + layers_text(plan.written, summary["min_cosine"])}
    return result


def layers_text(layers: list[dict], min_cosine: float | None = None) -> str:
    int8 = sum(1 for l in layers if l["precision"] == "int8")
    kept = [f"{l['layer']} ({l['why']})" for l in layers if l["precision"] != "int8"]
    mode = (f" (mixed precision: auto keeps the most sensitive layers fp32 until each region output's cosine "
            f"is >= {min_cosine}; --keep-fp32 none for all int8)" if min_cosine is not None else "")
    return (f"int8 layers: {int8} of {len(layers)}{mode}"
            + (f"; kept fp32: {', '.join(kept)}" if kept else ""))


def metadata() -> dict:
    """What the int8 export records in model.so's metadata ("int8"; readers treat it as optional)."""
    plan = quantize.current()
    return {**getattr(plan, "summary", {}), "layers": list(plan.written)}
