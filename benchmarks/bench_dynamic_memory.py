"""bench_dynamic.py's memory rows: one process runs N inferences of YOLOv8n that alternate three sizes (640x640,
384x640, 320x480, H x W), 1 thread, printing VmRSS after 100 runs and after N; model.so through the Python API
(tvm_ncnn.load: TVM's pooled allocator, ncnn's per-call pools) and, as the reference, pnnx's dynamic graph in the
ncnn PyPI wheel the same way (both Python processes; the tvm_ncnn one carries torch, which tvm_ffi imports, so
compare growth, not levels). Then peak RSS at the largest size, C++ against C++: deploy_app on the dynamic and the
fixed model.so against ncnn_bench on pnnx's graph.

    python benchmarks/bench_dynamic_memory.py --worker so|native --model PATH --inputs a.npy,b.npy,c.npy --runs N
(the worker; bench_dynamic.py starts it)"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_measure import machine_load  # noqa: E402
from bench_systems import DEPLOY_APP, NCNN_BENCH  # noqa: E402

CHECKPOINTS = (1, 3, 10, 100, 300, 1000, 3000)


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def runner(kind: str, model: str):
    """A function running one inference on a 1x3xHxW float32 array."""
    if kind == "so":
        import tvm_ncnn

        m = tvm_ncnn.load(model, threads=1)
        return lambda x: m(x)
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.lightmode = True
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    if net.load_param(model + ".param") != 0 or net.load_model(model + ".bin") != 0:
        raise SystemExit(f"cannot load {model}.param/.bin")

    def run(x):
        with net.create_extractor() as ex:
            ex.input("in0", ncnn.Mat(np.ascontiguousarray(x[0])))
            _, out = ex.extract("out0")
            return np.array(out)
    return run


def worker(kind: str, model: str, inputs: list[str], runs: int) -> dict:
    xs = [np.load(p) for p in inputs]
    run = runner(kind, model)
    rss = {"loaded": rss_mb()}
    for i in range(runs):
        run(xs[i % len(xs)])
        if i + 1 in CHECKPOINTS or i + 1 == runs:
            rss[str(i + 1)] = rss_mb()
    rss["peak"] = rss_mb("VmHWM")
    return rss


def start_worker(kind: str, model: str, inputs: list[str], runs: int, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", model, "--inputs", ",".join(inputs),
           "--runs", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(f"bench_dynamic_memory: {kind} worker failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_app(cmd: list, env: dict) -> dict:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"bench_dynamic_memory: {Path(cmd[0]).name} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(m: dict, runs: int, env: dict) -> list[str]:
    d = Path(m["dyn"]).parent
    sizes = ["640x640", "384x640", "320x480"]
    inputs = [str(d / f"x_{s}.npy") for s in sizes]
    lines = [f"\n## memory: YOLOv8n, {runs} runs alternating {', '.join(sizes)} (H x W), 1 thread, one process "
             f"({machine_load()})", "| system | RSS loaded | after 1 | after 3 | after 100 | after "
             f"{runs} | growth 100 -> {runs} | peak (VmHWM) |", "|---|---|---|---|---|---|---|---|"]
    for kind, label, model in (("so", "model.so dynamic (Python API)", m["dyn"]),
                               ("native", "native ncnn, pnnx dynamic graph (ncnn wheel)", m["pnnx"])):
        r = start_worker(kind, model, inputs, runs, env)
        lines.append(f"| {label} | {r['loaded']:.1f} | {r['1']:.1f} | {r['3']:.1f} | {r['100']:.1f} | "
                     f"{r[str(runs)]:.1f} | {r[str(runs)] - r['100']:+.2f} | {r['peak']:.1f} |")
    x = str(d / "x_640x640.npy")
    lines += ["\npeak RSS at 640x640, C++ (deploy_app / ncnn_bench --repeat 20, 1 thread): MB", "| system | peak "
              "| steady | x native ncnn (peak) |", "|---|---|---|---|"]
    got = {"model.so dynamic": run_app([DEPLOY_APP, m["dyn"], x, "--json", "--threads", 1, "--repeat", 20], env),
           "model.so fixed 640x640": run_app([DEPLOY_APP, m["fixed"]["640x640"], x, "--json", "--threads", 1,
                                              "--repeat", 20], env),
           "native ncnn (pnnx dynamic graph)": run_app([NCNN_BENCH, m["pnnx"] + ".param", m["pnnx"] + ".bin", x,
                                                        "--threads", 1, "--repeat", 20], env)}
    native = got["native ncnn (pnnx dynamic graph)"]["rss_mb"]
    for name, r in got.items():
        lines.append(f"| {name} | {r['rss_mb']:.1f} | {r['steady_rss_mb']:.1f} | {r['rss_mb'] / native:.2f} |")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=("so", "native"), required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--runs", type=int, default=1000)
    a = ap.parse_args()
    print(json.dumps(worker(a.worker, a.model, a.inputs.split(","), a.runs)))
