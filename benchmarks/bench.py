"""tvm-ncnn against the systems people use today, every system measured in the same run, interleaved.

For each model of the suite and each thread count, in one run:

  tvm-ncnn        the exported model.so, run by deploy_app (C++)
  tvm-ncnn-py     the same model.so through the Python loader, tvm_ncnn.load
  native-ncnn     the same network converted by pnnx, run by benchmarks/ncnn_bench.cc: C++, linked against the
                  SAME vendored ncnn as the runtime, with the runtime's ncnn options and deploy_app's timing
                  loop. The ratio to it is tvm-ncnn's own overhead (ratio_to_native_ncnn).
  native-ncnn-py  the pnnx network in the ncnn PyPI wheel (a second reference: another build of ncnn)
  tvm-alone       model.so exported with --no-offload (everything compiled by TVM), run by deploy_app
  onnxruntime     the ONNX model in onnxruntime (CPU provider)

Every system runs in its own process (no two OpenMP runtimes in one process; the RSS is the system's own) and
gets the same threading environment (--wait-policy). The repeats are split into --rounds; each round runs every
system once, in a new random order, so machine load that comes and goes hits all of them alike. p50/p90 are
over all timed runs of all rounds; the first run after loading is reported apart (first_ms), as is load_ms.
ratio_to_native_ncnn is the median over rounds of (p50 of the system / p50 of native ncnn in that round).
Absolute times drift on a shared machine: compare the ratios, and repeat a run before believing a small one.

Writes benchmarks/results.json (a list of rows: model, threads, system, p50_ms, p90_ms, rss_mb, ratio_to_native_ncnn
and more; see ROW_FIELDS) and a plot (benchmarks/results.png).

  .venv/bin/python benchmarks/bench.py                      # the suite, 1 and 2 threads
  .venv/bin/python benchmarks/bench.py --quick              # CI: two small models, few runs, no timing claims
  .venv/bin/python benchmarks/bench.py --threads-study      # ncnn regions alternating with TVM ops: threading
  .venv/bin/python benchmarks/bench.py --leak-runs 1000     # + RSS growth over 1000 runs (deploy_app, ncnn_bench)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("TVM_NCNN_BUILD_DIR", ROOT / "build" / "host"))
DEPLOY_APP = Path(os.environ.get("TVM_NCNN_DEPLOY_APP", BUILD / "deploy_app"))
NCNN_BENCH_SRC = ROOT / "benchmarks" / "ncnn_bench.cc"
MEASURE_H = ROOT / "deploy_app" / "measure.h"  # shared with deploy_app: both measure the same way
NCNN_BENCH = BUILD / "benchmarks" / "ncnn_bench"

SUITE = ["mobilenetv2", "resnet18", "squeezenet", "shufflenetv2", "efficientnet-lite0", "alexnet"]
QUICK = ["squeezenet", "mobilenetv2"]
SYSTEMS = ["tvm-ncnn", "tvm-ncnn-py", "native-ncnn", "native-ncnn-py", "tvm-alone", "onnxruntime"]
TVM_NCNN_SYSTEMS = ("tvm-ncnn", "tvm-ncnn-py")
# Every row of results.json has these; tvm-ncnn rows also ratio_to_native_ncnn (all rows do, when the
# native-ncnn reference ran).
ROW_FIELDS = ["model", "threads", "system", "p50_ms", "p90_ms", "rss_mb", "steady_rss_mb", "load_ms", "first_ms",
              "runs", "rounds", "max_rel_err", "wait_policy"]
# OpenMP (libgomp) settings per --wait-policy; onnxruntime's own pool is told the same.
DEFAULT_SPINCOUNT = 1000  # GOMP_SPINCOUNT deploy_app sets on x86 (deploy_app/main.cc)
DEFAULT_TVM_SPINCOUNT = 100  # TVM_THREAD_POOL_SPIN_COUNT deploy_app sets
# --wait-policy: the threading environment every system gets (TVM_NUM_THREADS = the thread count, except libgomp).
WAIT_POLICIES = {
    "deploy_app": {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT), "TVM_THREAD_POOL_SPIN_COUNT": str(DEFAULT_TVM_SPINCOUNT)},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"},
    "libgomp": {},  # the OpenMP runtime's and TVM's own defaults (long spins)
}
THREAD_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_THREAD_POOL_SPIN_COUNT")


# ---------------------------------------------------------------------------------------------------------------
# Workers: one process per measurement. Each prints one JSON object:
#   load_ms, first_ms, times_ms (the timed runs), rss_mb (peak), steady_rss_mb (after the runs), cpu_ms (per run)

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


def worker(args) -> int:
    x = np.load(args.input)
    # Imports come before the load timer (tvm_ncnn's pulls in all of TVM); load_ms is loading the model.
    if args.worker == "tvm-ncnn-py":
        import tvm_ncnn

        start = time.perf_counter()
        model = tvm_ncnn.load(args.model, threads=args.threads)
        run = lambda: model(x)  # noqa: E731
    elif args.worker == "native-ncnn-py":
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
    elif args.worker == "onnxruntime":
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
        raise SystemExit(f"unknown worker {args.worker}")
    load_ms = (time.perf_counter() - start) * 1e3
    result = _time_runs(run, args.repeat)
    if args.output:
        np.save(args.output, result["output"])
    print(json.dumps({"load_ms": load_ms, "first_ms": result["first_ms"], "times_ms": result["times_ms"],
                      "cpu_ms": result["cpu_ms"], "rss_mb": _peak_rss_mb(), "steady_rss_mb": _rss_now_mb()}))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Building and preparing

def build_ncnn_bench() -> Path:
    """benchmarks/ncnn_bench.cc against the host build's vendored ncnn (static), rebuilt when any input changes."""
    src_inc = BUILD / "_deps" / "ncnn-src" / "src"
    build_inc = BUILD / "_deps" / "ncnn-build" / "src"
    lib = build_inc / "libncnn.a"
    if not lib.exists():
        raise SystemExit(f"{lib} is missing: build the runtime first (cmake --build {BUILD})")
    newest = max(NCNN_BENCH_SRC.stat().st_mtime, MEASURE_H.stat().st_mtime, lib.stat().st_mtime)
    if NCNN_BENCH.exists() and NCNN_BENCH.stat().st_mtime >= newest:
        return NCNN_BENCH
    NCNN_BENCH.parent.mkdir(parents=True, exist_ok=True)
    cxx = os.environ.get("CXX", "c++")
    tmp = NCNN_BENCH.with_suffix(".tmp")
    # -O2 -fopenmp: how the runtime library is compiled against the same archive.
    cmd = [cxx, "-std=c++17", "-O2", "-fopenmp", f"-I{src_inc}", f"-I{build_inc}", f"-I{MEASURE_H.parent}",
           str(NCNN_BENCH_SRC), str(lib), "-lpthread", "-o", str(tmp)]
    subprocess.run(cmd, check=True)
    os.replace(tmp, NCNN_BENCH)
    return NCNN_BENCH


@contextlib.contextmanager
def quiet(*streams):
    """pnnx and TVM print from C++: silence the file descriptors themselves (sys.stdout, sys.stderr)."""
    saved = []
    for stream in streams:
        stream.flush()
        saved.append((stream, os.dup(stream.fileno())))
    with open(os.devnull, "w") as devnull:
        for stream, _ in saved:
            os.dup2(devnull.fileno(), stream.fileno())
        try:
            yield
        finally:
            for stream, fd in saved:
                stream.flush()
                os.dup2(fd, stream.fileno())
                os.close(fd)


def prepare(name: str, workdir: Path, tvm_alone: bool) -> dict:
    """ONNX, model.so (+ the --no-offload one), the pnnx ncnn graph, the input; export times."""
    import torch

    import tvm_ncnn
    from tvm_ncnn import zoo

    safe = name.replace("-", "_")  # pnnx rewrites '-' in file names
    module = zoo.torch_model(name)
    size = zoo.MODELS[name].input_size
    shape = (1, 3, size, size)
    onnx_path = str(workdir / f"{safe}.onnx")
    with quiet(sys.stdout):
        zoo.to_onnx(module, onnx_path, shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(workdir / f"{safe}_input.npy", x)
    m = {"name": name, "onnx": onnx_path, "input": str(workdir / f"{safe}_input.npy"), "x": x}

    start = time.perf_counter()
    result = tvm_ncnn.export(onnx_path, str(workdir / f"{safe}.so"))
    m["export_s"] = time.perf_counter() - start
    m["so"] = result.path
    m["regions"] = result.report.regions
    m["ncnn_flops_share"] = result.report.ncnn_flops_share
    m["so_mb"] = os.path.getsize(result.path) / 2**20
    if tvm_alone:
        start = time.perf_counter()
        m["tvm_so"] = tvm_ncnn.export(onnx_path, str(workdir / f"{safe}_tvm.so"), offload=False).path
        m["tvm_export_s"] = time.perf_counter() - start

    import pnnx

    pt = str(workdir / f"{safe}_pnnx.pt")
    start = time.perf_counter()
    with quiet(sys.stdout, sys.stderr):
        # fp16=False: the .bin keeps fp32 weights, as model.so does (outputs compare bit-close).
        pnnx.export(module, pt, (torch.from_numpy(x),), fp16=False)
    m["pnnx_s"] = time.perf_counter() - start
    m["param"], m["bin"] = pt.replace(".pt", ".ncnn.param"), pt.replace(".pt", ".ncnn.bin")

    import onnxruntime as ort

    m["reference"] = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return m


# ---------------------------------------------------------------------------------------------------------------
# Measuring

def command(system: str, m: dict, threads: int, repeat: int, output: str) -> list[str]:
    if system in ("tvm-ncnn", "tvm-alone"):
        so = m["so"] if system == "tvm-ncnn" else m["tvm_so"]
        return [str(DEPLOY_APP), so, m["input"], "--threads", str(threads), "--repeat", str(repeat), "--json",
                "--output", output]
    if system == "native-ncnn":
        return [str(NCNN_BENCH), m["param"], m["bin"], m["input"], "--threads", str(threads), "--repeat",
                str(repeat), "--output", output]
    model = {"tvm-ncnn-py": m["so"], "onnxruntime": m["onnx"]}.get(system, "")
    return [sys.executable, str(Path(__file__).resolve()), "--worker", system, "--model", model, "--param",
            m["param"], "--bin", m["bin"], "--input", m["input"], "--threads", str(threads), "--repeat", str(repeat),
            "--output", output]


def run_one(cmd: list[str], env: dict, timeout: float = 3600) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def measure(m: dict, threads: int, systems: list[str], repeat: int, rounds: int, env: dict, workdir: Path,
            tvm_repeat: int) -> dict[str, dict]:
    """Interleaved rounds; returns per system the pooled statistics."""
    if env.get("BENCH_WAIT_POLICY") != "libgomp":
        env = {**env, "TVM_NUM_THREADS": str(threads)}  # TVM's pool as big as ncnn's, as deploy_app sets it
    raw = {s: [] for s in systems}
    failed = {}
    for _ in range(rounds):
        order = [s for s in systems if s not in failed]
        random.shuffle(order)
        for system in order:
            n = tvm_repeat if system == "tvm-alone" else max(1, repeat // rounds)
            out = str(workdir / f"out_{system}.npy")
            try:
                report = run_one(command(system, m, threads, n, out), env)
            except RuntimeError as err:  # e.g. pnnx emitted a layer the lean vendored ncnn was built without
                failed[system] = str(err).strip().splitlines()[-1]
                print(f"  {system} cannot run {m['name']}: {failed[system]}", flush=True)
                continue
            report["max_rel_err"] = float(np.abs(np.load(out).reshape(m["reference"].shape) - m["reference"]).max()
                                          / max(float(np.abs(m["reference"]).max()), 1e-12))
            raw[system].append(report)
    stats = {}
    for system, reports in raw.items():
        if system in failed:
            stats[system] = {"error": failed[system]}
            continue
        times = [t for r in reports for t in r["times_ms"]]
        p50s = [statistics.median(r["times_ms"]) for r in reports]
        stats[system] = {
            "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
            "rss_mb": max(r["rss_mb"] for r in reports),
            "steady_rss_mb": statistics.median(r["steady_rss_mb"] for r in reports),
            "load_ms": statistics.median(r["load_ms"] for r in reports),
            "first_ms": statistics.median(r["first_ms"] for r in reports),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in reports) if all("cpu_ms" in r for r in reports)
            else None,
            "runs": len(times), "rounds": len(reports), "round_p50_ms": p50s,
            "max_rel_err": max(r["max_rel_err"] for r in reports),
        }
    return stats


def leak_check(m: dict, runs: int, env: dict, workdir: Path) -> dict[str, dict]:
    """RSS after 10 runs and after `runs` runs, in one process, for deploy_app and the native C++ reference,
    1 thread. (ncnn's pool allocator settles during the first runs, natively too: compare after that.)"""
    out = {}
    for system in ("tvm-ncnn", "native-ncnn"):
        try:
            r = run_one(command(system, m, 1, runs, str(workdir / "leak.npy")), env)
        except RuntimeError as err:
            print(f"  leak check: {system} cannot run {m['name']}: {str(err).splitlines()[-1]}", flush=True)
            continue
        out[system] = {"leak_runs": runs, "rss_after_10_mb": r["warm_rss_mb"], f"rss_after_{runs}_mb": r["steady_rss_mb"],
                       "rss_growth_mb": r["steady_rss_mb"] - r["warm_rss_mb"]}
        print(f"  {system}: RSS {r['warm_rss_mb']:.2f} MB after 10 runs, {r['steady_rss_mb']:.2f} MB after {runs}",
              flush=True)
    return out


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------------------------------------------------------
# Threads: ncnn regions alternating with TVM ops

def alternating_model(channels: int = 64, blocks: int = 6, size: int = 112):
    """A Relax IRModule whose conv blocks (ncnn regions) alternate with a TVM op that runs on TVM's thread pool:
    an elementwise sin with its channel loop parallel, as a scheduled (tuned) TVM op would be. (ncnn has no
    converter for it, so every block boundary is an ncnn -> TVM -> ncnn switch.)"""
    from tvm import relax
    from tvm.script import tirx as T

    c, h = channels, size // 2

    @T.prim_func(private=True, check_well_formed=False)
    def parallel_sin(x: T.Buffer((1, c, h, h), "float32"), y: T.Buffer((1, c, h, h), "float32")):
        with T.sblock("root"):
            for ci in T.parallel(c):
                for hi, wi in T.grid(h, h):
                    with T.sblock("y"):
                        vc, vh, vw = T.axis.remap("SSS", [ci, hi, wi])
                        y[0, vc, vh, vw] = T.sin(x[0, vc, vh, vw])

    rng = np.random.default_rng(0)

    def const(*shape, scale=0.05):
        return relax.const((rng.standard_normal(shape) * scale).astype("float32"))

    bb = relax.BlockBuilder()
    sin = bb.add_func(parallel_sin, "parallel_sin")
    x = relax.Var("input", relax.TensorType((1, 3, size, size), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, const(c, 3, 3, 3), strides=2, padding=1))
            y = bb.emit(relax.op.nn.relu(relax.op.add(y, const(1, c, 1, 1))))
            for _ in range(blocks):
                y = bb.emit(relax.op.nn.conv2d(y, const(c, c, 3, 3), padding=1))
                y = bb.emit(relax.op.nn.relu(relax.op.add(y, const(1, c, 1, 1))))
                y = bb.emit(relax.op.nn.conv2d(y, const(c, c, 3, 3), padding=1))
                y = bb.emit(relax.op.add(y, const(1, c, 1, 1)))
                y = bb.emit(relax.call_tir(sin, [y], relax.TensorType((1, c, h, h), "float32")))
            y = bb.emit(relax.op.mean(y, axis=[2, 3]))
            out = bb.emit_output(relax.op.add(relax.op.matmul(y, const(c, 10)), const(1, 10)))
        bb.emit_func_output(out)
    return bb.get(), (1, 3, size, size)


def threads_study(args, env_base: dict, workdir: Path) -> list[dict]:
    """ncnn regions alternating with a parallel TVM op: latency and CPU time per run under OpenMP (ncnn) and TVM
    thread-pool settings, with and without other busy processes on the machine, interleaved."""
    import tvm_ncnn

    mod, shape = alternating_model()
    result = tvm_ncnn.export(mod, str(workdir / "alternating.so"))
    tvm_ops = sum(1 for op in result.report.to_json()["ops"] if op["place"] == "tvm")
    print(f"alternating model: {result.report.regions} ncnn regions, {tvm_ops} parallel TVM ops between them "
          f"({machine_load()})", flush=True)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    inp = str(workdir / "alternating_input.npy")
    np.save(inp, x)
    configs = {
        # Nobody coordinates: libgomp's default (idle threads spin 300000 pause loops, ~8 ms here, before
        # sleeping) and TVM's (its pool as big as the machine -- TVM halves the count on x86 for hyper-threads,
        # a Pi gets every core, so it is set here -- and 300000 sched_yield spins).
        "uncoordinated defaults": {"TVM_NCNN_WAIT_POLICY": "inherit"},
        "OMP_WAIT_POLICY=PASSIVE, TVM spin 0": {"OMP_WAIT_POLICY": "PASSIVE", "TVM_THREAD_POOL_SPIN_COUNT": "0"},
        f"GOMP_SPINCOUNT={DEFAULT_SPINCOUNT} only": {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT)},
        "GOMP_SPINCOUNT=10000, TVM spin 1000": {"GOMP_SPINCOUNT": "10000", "TVM_THREAD_POOL_SPIN_COUNT": "1000"},
        f"GOMP_SPINCOUNT={DEFAULT_SPINCOUNT}, TVM spin {DEFAULT_TVM_SPINCOUNT}":
            {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT), "TVM_THREAD_POOL_SPIN_COUNT": str(DEFAULT_TVM_SPINCOUNT)},
        f"as above, TVM pool 1 thread": {"GOMP_SPINCOUNT": str(DEFAULT_SPINCOUNT),
                                         "TVM_THREAD_POOL_SPIN_COUNT": str(DEFAULT_TVM_SPINCOUNT),
                                         "TVM_NUM_THREADS": "1"},
        "deploy_app default": {},  # no variables: what deploy_app picks by itself
    }
    ours = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_THREAD_POOL_SPIN_COUNT",
            "TVM_NCNN_WAIT_POLICY")
    base = {k: v for k, v in env_base.items() if k not in ours}
    rows = []
    for hogs in [int(h) for h in args.contention.split(",")]:
        # Contention: busy processes at normal priority, as other work on the device would be.
        hog_procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
        try:
            for threads in [int(t) for t in args.threads.split(",")]:
                raw = {c: [] for c in configs}
                for _ in range(args.rounds):
                    order = list(configs)
                    random.shuffle(order)
                    for c in order:
                        cmd = [str(DEPLOY_APP), result.path, inp, "--threads", str(threads), "--repeat",
                               str(max(1, args.repeat // args.rounds)), "--json"]
                        env = {**base, **configs[c]}
                        if c != "deploy_app default":  # TVM's pool as big as ncnn's, as on a Pi
                            env.setdefault("TVM_NUM_THREADS", str(threads))
                        raw[c].append(run_one(cmd, env))
                for c, reports in raw.items():
                    times = [t for r in reports for t in r["times_ms"]]
                    row = {"model": "alternating", "threads": threads, "contention": hogs, "system": "tvm-ncnn",
                           "config": c, "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
                           "cpu_ms": statistics.median(r["cpu_ms"] for r in reports),
                           "rss_mb": max(r["rss_mb"] for r in reports),
                           "round_p50_ms": [statistics.median(r["times_ms"]) for r in reports]}
                    rows.append(row)
                    print(f"  {hogs} busy, {threads} thread(s)  {c:38s} p50 {row['p50_ms']:8.2f} ms  "
                          f"p90 {row['p90_ms']:8.2f} ms  CPU {row['cpu_ms']:7.2f} ms/run  "
                          f"rounds {[round(v, 1) for v in row['round_p50_ms']]}", flush=True)
                print(f"  ({machine_load()})", flush=True)
        finally:
            for h in hog_procs:
                h.kill()
                h.wait()
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Output

def print_table(rows: list[dict]) -> None:
    header = (f"{'model':18s} {'thr':>3s} {'system':15s} {'p50 ms':>9s} {'p90 ms':>9s} {'x native':>8s} "
              f"{'x wheel':>7s} {'peak MB':>8s} {'steady MB':>9s} {'load ms':>8s} {'first ms':>8s} {'rel err':>8s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:18s} {r['threads']:3d} {r['system']:15s} cannot run: {r['error'][:80]}")
            continue

        def f(key, fmt):
            v = r.get(key)
            return format(v, fmt) if isinstance(v, (int, float)) and v == v else "-".rjust(len(format(0, fmt)))
        print(f"{r['model']:18s} {r['threads']:3d} {r['system']:15s} {f('p50_ms', '9.2f')} {f('p90_ms', '9.2f')} "
              f"{f('ratio_to_native_ncnn', '8.3f')} {f('ratio_to_ncnn_wheel', '7.3f')} {f('rss_mb', '8.1f')} "
              f"{f('steady_rss_mb', '9.1f')} {f('load_ms', '8.1f')} {f('first_ms', '8.1f')} "
              f"{f('max_rel_err', '8.1e')}")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    threads = sorted({r["threads"] for r in rows})
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    panels = [("p50_ms", "p50 latency (ms)", systems, True),
              ("ratio_to_native_ncnn", "p50 / native ncnn (C++; the wheel where C++ cannot run it)",
               [s for s in systems if s != "tvm-alone"], False),
              ("steady_rss_mb", "steady RSS (MB)", systems, True)]
    fig, axes = plt.subplots(len(panels), len(threads), figsize=(6.5 * len(threads), 12), squeeze=False)
    colors = {s: f"C{i}" for i, s in enumerate(SYSTEMS)}
    for col, t in enumerate(threads):
        for row_i, (key, title, shown, log) in enumerate(panels):
            ax = axes[row_i][col]
            width = 0.8 / len(shown)
            for i, s in enumerate(shown):
                vals = [next((r.get(key) for r in rows if r["model"] == m and r["threads"] == t and r["system"] == s),
                             None) for m in models]
                xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(models))]
                ax.bar(xs, [v if v else 0 for v in vals], width, label=s, color=colors[s])
            if key == "ratio_to_native_ncnn":
                ax.axhline(1.0, color="k", linewidth=0.6)
                ax.axhline(1.03, color="k", linestyle="--", linewidth=0.8, label="1.03")
                ax.set_ylim(0.5, 1.5)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=20, fontsize=8)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{title}, {t} thread{'s' if t > 1 else ''}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if col == 0:
                ax.legend(fontsize=7, ncol=2)
    fig.suptitle("tvm-ncnn vs native ncnn, TVM alone and onnxruntime (one run, interleaved rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(SUITE))
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeat", type=int, default=100, help="timed runs per system, split over the rounds")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--tvm-repeat", type=int, default=1, help="timed runs of tvm-alone per round (slow)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--no-tvm", action="store_true", help="skip tvm-alone (untuned TVM is slow)")
    parser.add_argument("--wait-policy", choices=sorted(WAIT_POLICIES), default="deploy_app",
                        help="threading environment for every system (default: what deploy_app sets by itself)")
    parser.add_argument("--leak-runs", type=int, default=0, help="also measure RSS growth over this many runs")
    parser.add_argument("--quick", action="store_true", help="CI: two small models, 1 thread, few runs")
    parser.add_argument("--threads-study", action="store_true", help="only the threading study")
    parser.add_argument("--contention", default="0,1",
                        help="threading study: busy processes running alongside, per scenario (default 0,1)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--plot", default=None, help="PNG path (default: next to --output, .png)")
    parser.add_argument("--keep", default=None, help="keep the exported models in this directory")
    # worker mode (internal)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--param", help=argparse.SUPPRESS)
    parser.add_argument("--bin", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        return worker(args)

    if args.quick:
        args.models, args.threads, args.repeat, args.rounds = ",".join(QUICK), "1", 4, 2
    if not DEPLOY_APP.exists():
        raise SystemExit(f"{DEPLOY_APP} is not built: cmake --build {BUILD}")
    build_ncnn_bench()
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(WAIT_POLICIES[args.wait_policy])
    env["TVM_NCNN_WAIT_POLICY"] = "inherit"  # deploy_app: use exactly the environment given (no default of its own)
    env["BENCH_WAIT_POLICY"] = args.wait_policy
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT / "sdk_python")]))

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tvm_ncnn_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.threads_study:
            rows = threads_study(args, env, workdir)
            out = Path(args.output).with_name("threads.json") if not args.output.endswith("threads.json") \
                else Path(args.output)
            out.write_text(json.dumps({"machine": machine_load(), "rows": rows}, indent=1) + "\n")
            print(f"wrote {out}")
            return 0
        return suite(args, env, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def suite(args, env: dict, workdir: Path) -> int:
    systems = [s for s in args.systems.split(",") if s]
    if args.no_tvm and "tvm-alone" in systems:
        systems.remove("tvm-alone")
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)}; choose from {SYSTEMS}")
    print(f"machine: {machine_load()}; threading environment '{args.wait_policy}' "
          f"({WAIT_POLICIES[args.wait_policy] or 'runtime defaults'}); {args.rounds} rounds", flush=True)
    rows = []
    for name in args.models.split(","):
        m = prepare(name, workdir, "tvm-alone" in systems)
        print(f"{name}: export {m['export_s']:.1f} s ({m['so_mb']:.0f} MB; {100 * m['ncnn_flops_share']:.1f}% of "
              f"FLOPs in {m['regions']} ncnn region(s)), --no-offload export {m.get('tvm_export_s', 0):.1f} s, "
              f"pnnx {m['pnnx_s']:.1f} s", flush=True)
        leaks = leak_check(m, args.leak_runs, env, workdir) if args.leak_runs else {}
        for threads in [int(t) for t in args.threads.split(",")]:
            stats = measure(m, threads, systems, args.repeat, args.rounds, env, workdir, args.tvm_repeat)
            wheel = stats.get("native-ncnn-py", {}).get("p50_ms")
            # The reference: native ncnn in C++ on the same vendored ncnn; the wheel where that cannot run.
            reference = next((r for r in ("native-ncnn", "native-ncnn-py") if stats.get(r, {}).get("p50_ms")), None)
            native = stats[reference]["p50_ms"] if reference else None
            for system in systems:
                s = stats[system]
                row = {"model": name, "threads": threads, "system": system, **s, "wait_policy": args.wait_policy}
                if "error" in s:
                    rows.append(row)
                    continue
                if native:
                    # Paired by round (measured minutes apart at most), then the median: a burst of load on the
                    # machine during one system's turn moves one round ratio, not the result.
                    row["round_ratios"] = [a / b for a, b in zip(s["round_p50_ms"], stats[reference]["round_p50_ms"])]
                    row["ratio_to_native_ncnn"] = statistics.median(row["round_ratios"])
                    row["ratio_of_pooled_p50"] = s["p50_ms"] / native
                    row["native_reference"] = reference
                if wheel:
                    row["ratio_to_ncnn_wheel"] = s["p50_ms"] / wheel
                if system == reference and stats.get("tvm-ncnn", {}).get("steady_rss_mb"):
                    row["tvm_ncnn_steady_rss_ratio"] = stats["tvm-ncnn"]["steady_rss_mb"] / s["steady_rss_mb"]
                if system == "tvm-ncnn":
                    row.update(export_s=m["export_s"], so_mb=m["so_mb"], ncnn_regions=m["regions"],
                               ncnn_flops_share=m["ncnn_flops_share"])
                if system == "tvm-alone":
                    row["export_s"] = m["tvm_export_s"]
                if system == "native-ncnn":
                    row["export_s"] = m["pnnx_s"]  # pnnx conversion
                if threads == 1 and system in leaks:
                    row.update(leaks[system])
                rows.append(row)
            print_table([r for r in rows if r["model"] == name and r["threads"] == threads])
            print(f"  ({machine_load()})", flush=True)
            Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")  # partial results survive a failure
    print()
    print_table(rows)
    Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")
    png = args.plot or str(Path(args.output).with_suffix(".png"))
    plot(rows, png)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
