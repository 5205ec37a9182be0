"""One measurement of a Python-side system, in a process of its own (bench.py starts it; not run by hand).

    python bench_worker.py SYSTEM --model M --param P --bin B --input X.npy --threads N --repeat N [--output O]

SYSTEM is tvm-ncnn-py (model.so through tvm_ncnn.load), native-ncnn-py (the pnnx graph in the ncnn wheel) or
onnxruntime. Prints one JSON object, the fields deploy_app --json and ncnn_bench print too: load_ms, first_ms,
times_ms (the timed runs), cpu_ms (per run), rss_mb (peak), steady_rss_mb (after the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return float(line.split()[1]) / 1024
    return float("nan")


def _rss_now_mb() -> float:
    return _status_mb("VmRSS:")


def _peak_rss_mb() -> float:
    """VmHWM: getrusage's ru_maxrss would carry the parent's (this script's, with torch) peak across fork+exec."""
    return _status_mb("VmHWM:")


def _cpu_ms() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * 1e3


def _time_runs(run, repeat: int) -> dict:
    start = time.perf_counter()
    out = run()
    first_ms = (time.perf_counter() - start) * 1e3
    times = []
    cpu0 = _cpu_ms()
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return {"first_ms": first_ms, "times_ms": times, "cpu_ms": (_cpu_ms() - cpu0) / max(repeat, 1),
            "output": np.asarray(out, dtype=np.float32)}


def run_worker(args) -> int:
    x = np.load(args.input)
    # Imports come before the load timer (tvm_ncnn's pulls in all of TVM); load_ms is loading the model.
    if args.system == "tvm-ncnn-py":
        import tvm_ncnn

        start = time.perf_counter()
        model = tvm_ncnn.load(args.model, threads=args.threads)
        run = lambda: model(x)  # noqa: E731
    elif args.system == "native-ncnn-py":
        import ncnn

        start = time.perf_counter()
        net = ncnn.Net()
        net.opt.num_threads = args.threads
        # The options the tvm-ncnn runtime sets (fp32 throughout: the suite compares outputs).
        net.opt.lightmode = True
        net.opt.use_packing_layout = net.opt.use_winograd_convolution = net.opt.use_sgemm_convolution = True
        net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
        if net.load_param(args.param) != 0 or net.load_model(args.bin) != 0:
            raise SystemExit(f"ncnn wheel cannot load {args.param}")
        mat = ncnn.Mat(np.ascontiguousarray(x[0]))

        def run():
            ex = net.create_extractor()
            ex.input("in0", mat)
            _, out = ex.extract("out0")
            return np.array(out)[None]
    elif args.system == "onnxruntime":
        import onnxruntime as ort

        start = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":  # the policy OpenMP gets, as far as it goes
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        run = lambda: session.run(None, feed)[0]  # noqa: E731
    else:
        raise SystemExit(f"unknown system {args.system}")
    load_ms = (time.perf_counter() - start) * 1e3
    result = _time_runs(run, args.repeat)
    if args.output:
        np.save(args.output, result["output"])
    print(json.dumps({"load_ms": load_ms, "first_ms": result["first_ms"], "times_ms": result["times_ms"],
                      "cpu_ms": result["cpu_ms"], "rss_mb": _peak_rss_mb(), "steady_rss_mb": _rss_now_mb()}))
    return 0



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", choices=["tvm-ncnn-py", "native-ncnn-py", "onnxruntime"])
    parser.add_argument("--model", default="", help="model.so (tvm-ncnn-py) or .onnx (onnxruntime)")
    parser.add_argument("--param", help="pnnx .param (native-ncnn-py)")
    parser.add_argument("--bin", help="pnnx .bin (native-ncnn-py)")
    parser.add_argument("--input", required=True, help=".npy input")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeat", type=int, required=True, help="timed runs after the first")
    parser.add_argument("--output", help="save the output here (.npy)")
    return run_worker(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
