"""A held-out sweep of architecture families (issue 24 item 7): models of families nobody developed on, random
weights, exported to ONNX as zoo.to_onnx does, then through tvm_ncnn.export (its own verification on) and
model.so compared with onnxruntime on every output. Prints one row per model: regions, ncnn FLOPs share, the
worst output error relative to max|ref|, export's own check (a model that selects with top-k, where near ties
may order differently, is checked region by region), and the ops left in TVM with their reasons.

  PYTHONPATH=sdk_python .venv/bin/python benchmarks/held_out_sweep.py               # every family
  PYTHONPATH=sdk_python .venv/bin/python benchmarks/held_out_sweep.py --models pvt_v2_b0 yolov10n
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

# family -> (model, input size): names of zoo/modern.py's TIMM and YOLO tables; sizes small enough to be quick
# that every layer accepts (window/patch sizes, strides).
FAMILIES = {
    "spatial-reduction attention": ("pvt_v2_b0", 160),
    "cross-covariance attention": ("xcit_nano_12_p16_224", 160),
    "separable self-attention": ("mobilevitv2_075", 192),
    "GRN": ("convnextv2_atto", 160),
    "star blocks": ("starnet_s050", 160),
    "gated CNN blocks": ("mambaout_femto", 160),
    "area attention": ("yolo12n", 256),
    "NMS-free head (default export)": ("yolov10n", 256),
    "NMS-free head (nms=False)": ("yolov10n-e2e", 256),
    "oriented boxes": ("yolo11n-obb", 256),
}


def onnxruntime_outputs(onnx_path: str, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def worst_error(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """max over outputs of max|got - ref| / max|ref| (the suite's 1e-4 bar)."""
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs, onnxruntime has {len(ref)}")
    worst = 0.0
    for g, r in zip(got, ref):
        if g.shape != r.shape:
            raise ValueError(f"output shape {g.shape} != onnxruntime {r.shape}")
        worst = max(worst, float(np.abs(g.astype(np.float64) - r).max() / max(np.abs(r).max(), 1e-12)))
    return worst


def tvm_ops(report) -> str:
    """The relax ops left in TVM, counted by (op, reason)."""
    counts: dict[tuple[str, str], int] = {}
    for o in report.ops:
        if o.place == "tvm" and o.op.startswith("relax."):
            key = (o.op.removeprefix("relax."), o.reason)
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{n}x {op} ({why})" for (op, why), n in sorted(counts.items(), key=lambda kv: -kv[1]))


def sweep_one(name: str, size: int, directory: Path) -> dict:
    import tvm_ncnn
    from tvm_ncnn.zoo import modern

    row = {"model": name, "size": size}
    start = time.time()
    try:
        onnx_path, _ = modern.to_onnx(name, str(directory / f"{name}.onnx"), size=size)
        result = tvm_ncnn.export(onnx_path, str(directory / f"{name}.so"))  # verify=True
        report = result.report
        row.update(regions=report.regions, share=report.ncnn_flops_share, tvm=tvm_ops(report),
                   verify=tvm_ncnn.read_metadata(str(directory / f"{name}.so"))["verify"]["result"])
        x = np.random.default_rng(1).standard_normal((1, 3, size, size)).astype(np.float32)
        got = tvm_ncnn.load(str(directory / f"{name}.so"), threads=1)(x)
        row["error"] = worst_error([np.asarray(g) for g in got], onnxruntime_outputs(onnx_path, x))
    except Exception as e:  # a row says what failed; the sweep goes on
        row["failure"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        traceback.print_exc(file=sys.stderr)
    row["seconds"] = time.time() - start
    return row


def print_table(rows: list[dict]) -> None:
    print(f"{'family':30} {'model':22} {'size':>4} {'regions':>7} {'ncnn FLOPs':>10} {'max err':>9} {'verify':>8}  "
          "TVM ops / failure")
    family_of = {m: f for f, (m, _) in FAMILIES.items()}
    for r in rows:
        share = f"{100 * r['share']:.2f}%" if "share" in r else "-"
        error = f"{r['error']:.1e}" if "error" in r else "-"
        print(f"{family_of.get(r['model'], ''):30} {r['model']:22} {r['size']:>4} {r.get('regions', '-'):>7} "
              f"{share:>10} {error:>9} {r.get('verify', '-'):>8}  {r.get('failure') or r.get('tvm') or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model names (default: every family)")
    args = parser.parse_args()
    chosen = [(m, s) for m, s in FAMILIES.values() if not args.models or m in args.models]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in chosen:
            rows.append(sweep_one(name, size, Path(tmp)))
            print(f"# {name}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
