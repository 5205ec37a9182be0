"""int8 forms of a bench model (bench.py --photos DIR), beside the fp32 ones bench_models.prepare makes:

  tvm-ncnn-int8     model.so exported --precision int8, calibrated on the photos (KL, as export does by default),
                    preprocessed as the zoo says the model was trained; run by deploy_app
  native-ncnn-int8  that export's int8 ncnn graph (the region's .param/.bin, int8_scale_term 1 as ncnn/quantize.py
                    writes it) run by ncnn_bench, the same vendored ncnn: ncnn as anyone would run the graph. Only
                    for a model that is one ncnn region with one input and one output (what ncnn_bench takes).
                    The difference to tvm-ncnn-int8 is the runtime's own int8 handling (int8_chain.h) plus its
                    overhead. (pnnx + ncnn2table/ncnn2int8 would be ncnn's own route; their tools are not built.)
  onnxruntime-int8  onnxruntime's static quantization of the same ONNX (quantize_static: QDQ, per-channel int8
                    weights, int8 activations, MinMax calibration on the same photos, preprocessed by model.so's
                    own load_image so both see the same tensors); run by onnxruntime's CPU provider

Each int8 system's speed is printed against its own fp32 system measured in the same rounds (tvm-ncnn,
native-ncnn: the pnnx fp32 graph; onnxruntime): the median over rounds of fp32 p50 / int8 p50."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from bench_report import cell

# int8 system -> the fp32 system its speed-up is measured against
INT8_SYSTEMS = {"tvm-ncnn-int8": "tvm-ncnn", "native-ncnn-int8": "native-ncnn", "onnxruntime-int8": "onnxruntime"}
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@contextlib.contextmanager
def regions_written():
    """The ncnn regions codegen writes while inside, by symbol (the last write wins: an int8 export runs codegen
    for the fp32 calibration model first, then for the int8 one)."""
    from tvm_ncnn.ncnn import codegen

    seen: dict = {}
    original = codegen.region_module

    def recording(region):
        seen[region.symbol] = region
        return original(region)

    codegen.region_module = recording
    try:
        yield seen
    finally:
        codegen.region_module = original


def photos_in(directory: str) -> list[Path]:
    photos = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if len(photos) < 2:
        raise SystemExit(f"--photos {directory}: needs at least two JPEG/PNG photos")
    return photos


def prepare_int8(m: dict, photos: str, workdir: Path) -> None:
    """Adds int8_so, (int8_param, int8_bin, int8_in, int8_out) and ort_int8 to the model dict of
    bench_models.prepare."""
    import tvm_ncnn
    from tvm_ncnn import zoo
    from tvm_ncnn.int8.calibrate import Calibration

    spec = zoo.MODELS[m["name"]]
    safe = m["name"].replace("-", "_")
    pre = tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std)
    start = time.perf_counter()
    with regions_written() as regions:
        result = tvm_ncnn.export(m["onnx"], str(workdir / f"{safe}_int8.so"), preprocess=pre, precision="int8",
                                 calibration=Calibration(photos))
    m["int8_export_s"] = time.perf_counter() - start
    m["int8_so"] = result.path
    layers = result.int8["layers"]
    m["int8_layers"] = f"{sum(1 for l in layers if l['precision'] == 'int8')}/{len(layers)}"
    if len(regions) == 1 and m["regions"] == 1:
        region = next(iter(regions.values()))
        if len(region.inputs) == 1 and len(region.outputs) == 1 and " 8=1" in region.param:
            m["int8_param"] = str(workdir / f"{safe}_int8.param")
            m["int8_bin"] = str(workdir / f"{safe}_int8.bin")
            Path(m["int8_param"]).write_text(region.param)
            Path(m["int8_bin"]).write_bytes(bytes(region.graph.serialize()[1]))
            m["int8_in"], m["int8_out"] = region.inputs[0], region.outputs[0]

    # The same photos as tensors, as model.so preprocesses them, for onnxruntime's calibration.
    model = tvm_ncnn.load(m["int8_so"], threads=1)
    tensors = [model.load_image(str(p)) for p in photos_in(photos)]
    m["ort_int8"] = str(workdir / f"{safe}_ort_int8.onnx")
    start = time.perf_counter()
    quantize_onnxruntime(m["onnx"], m["ort_int8"], tensors)
    m["ort_int8_s"] = time.perf_counter() - start


def quantize_onnxruntime(onnx_path: str, out_path: str, tensors: list[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load(onnx_path, load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = iter(tensors)

        def get_next(self):
            x = next(self.left, None)
            return None if x is None else {name: x}

    quantize_static(onnx_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)


def add_speedups(rows: list[dict], stats: dict) -> None:
    """int8_speedup on each int8 row: fp32 p50 / int8 p50 of the same round, median over rounds."""
    import statistics

    for row in rows:
        fp32 = INT8_SYSTEMS.get(row["system"])
        if fp32 is None or "error" in row or not stats.get(fp32, {}).get("round_p50_ms"):
            continue
        row["int8_speedup"] = statistics.median(
            a / b for a, b in zip(stats[fp32]["round_p50_ms"], row["round_p50_ms"]))
        row["int8_reference"] = fp32
        # CPU time per run (all threads; medians over rounds): on a loaded machine the wall clock also counts the
        # time other processes held the core, CPU time does not.
        if row.get("cpu_ms") and stats[fp32].get("cpu_ms"):
            row["int8_cpu_speedup"] = stats[fp32]["cpu_ms"] / row["cpu_ms"]


def print_speedups(rows: list[dict]) -> None:
    shown = [r for r in rows if "int8_speedup" in r]
    if not shown:
        return
    print(f"{'model':18s} {'thr':>3s} {'int8 system':18s} {'int8 ms':>8s} {'fp32 system':12s} {'fp32 ms':>8s} "
          f"{'fp32/int8':>9s} {'int8 cpu':>8s} {'fp32 cpu':>8s} {'cpu ratio':>9s}")
    for r in shown:
        fp32 = next((x for x in rows if x["model"] == r["model"] and x["threads"] == r["threads"]
                     and x["system"] == r["int8_reference"]), {})
        print(f"{r['model']:18s} {r['threads']:3d} {r['system']:18s} {r['p50_ms']:8.2f} {r['int8_reference']:12s} "
              f"{cell(fp32, 'p50_ms', '8.2f')} {r['int8_speedup']:8.2f}x {cell(r, 'cpu_ms', '8.2f')} "
              f"{cell(fp32, 'cpu_ms', '8.2f')} {cell(r, 'int8_cpu_speedup', '8.2f')}x")
