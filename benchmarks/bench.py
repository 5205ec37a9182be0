"""Latency of tvm-ncnn's model.so against the systems people use today, measured in one run.

For each model and thread count: tvm-ncnn model.so run by deploy_app; native ncnn on the same network
converted by pnnx (the ncnn wheel); TVM alone (--no-offload model.so, same deploy_app); onnxruntime.
Prints p50/p90 and the ratio to native ncnn, and writes benchmarks/results.json. Absolute times drift on
shared machines: compare the ratios.

usage: .venv/bin/python benchmarks/bench.py [--models mobilenetv2,resnet18] [--threads 1,2] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_APP = ROOT / "build" / "host" / "deploy_app"


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 90))


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_deploy_app(model_so: str, x: np.ndarray, threads: int, repeat: int, workdir: str) -> dict:
    inp = os.path.join(workdir, "input.npy")
    np.save(inp, x)
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(DEPLOY_APP), model_so, inp, "--threads",
                           str(threads), "--repeat", str(repeat), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"deploy_app failed: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"p50_ms": report["p50_ms"], "p90_ms": report["p90_ms"], "rss_mb": rss_kb / 1024,
            "load_ms": report["load_ms"], "first_ms": report["first_ms"]}


def bench_native_ncnn(module, x: np.ndarray, threads: int, repeat: int, workdir: str) -> dict:
    """pnnx converts the torch module; the ncnn wheel runs it in this process."""
    import ncnn
    import pnnx
    import torch

    pt = os.path.join(workdir, "native.pt")
    with open(os.devnull, "w") as devnull:  # pnnx prints every pass
        saved = os.dup(1)
        os.dup2(devnull.fileno(), 1)
        try:
            pnnx.export(module, pt, (torch.from_numpy(x),))
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.load_param(pt.replace(".pt", ".ncnn.param"))
    net.load_model(pt.replace(".pt", ".ncnn.bin"))
    mat = ncnn.Mat(np.ascontiguousarray(x[0]))

    def run():
        ex = net.create_extractor()
        ex.input("in0", mat)
        _, out = ex.extract("out0")
        return out

    run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e3)
    p50, p90 = percentiles(samples)
    return {"p50_ms": p50, "p90_ms": p90, "rss_mb": None}


def bench_onnxruntime(onnx_path: str, x: np.ndarray, threads: int, repeat: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    session.run(None, feed)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1e3)
    p50, p90 = percentiles(samples)
    return {"p50_ms": p50, "p90_ms": p90, "rss_mb": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenetv2,resnet18")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-tvm", action="store_true", help="skip TVM alone (slow to run untuned)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args()

    import tvm_ncnn
    from tvm_ncnn import zoo

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            module = zoo.torch_model(name)
            size = zoo.MODELS[name].input_size
            onnx_path = zoo.to_onnx(module, os.path.join(workdir, f"{name}.onnx"), (1, 3, size, size))
            start = time.perf_counter()
            result = tvm_ncnn.export(onnx_path, os.path.join(workdir, f"{name}.so"))
            export_s = time.perf_counter() - start
            reference_so = os.path.join(workdir, f"{name}_tvm.so")
            if not args.no_tvm:
                tvm_ncnn.export(onnx_path, reference_so, offload=False)
            x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
            print(f"{name}: export {export_s:.1f} s, {100 * result.report.ncnn_flops_share:.1f}% of FLOPs "
                  f"in {result.report.regions} ncnn region(s)", flush=True)
            for threads in [int(t) for t in args.threads.split(",")]:
                systems = {
                    "tvm-ncnn": lambda: bench_deploy_app(result.path, x, threads, args.repeat, workdir),
                    "native-ncnn": lambda: bench_native_ncnn(module, x, threads, args.repeat, workdir),
                    "onnxruntime": lambda: bench_onnxruntime(onnx_path, x, threads, args.repeat),
                }
                if not args.no_tvm:
                    systems["tvm-alone"] = lambda: bench_deploy_app(reference_so, x, threads,
                                                                    max(5, args.repeat // 10), workdir)
                measured = {system: run() for system, run in systems.items()}
                native = measured["native-ncnn"]["p50_ms"]
                for system, m in measured.items():
                    row = {"model": name, "threads": threads, "system": system, **m,
                           "ratio_to_native_ncnn": m["p50_ms"] / native}
                    if system == "tvm-ncnn":
                        row["export_s"] = export_s
                    rows.append(row)
                    print(f"  {threads} thread(s)  {system:12s} p50 {m['p50_ms']:8.2f} ms  p90 {m['p90_ms']:8.2f} ms"
                          f"  x{m['p50_ms'] / native:5.2f} native ncnn", flush=True)
    with open(args.output, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
