"""The threading study (bench.py --threads-study): a model whose ncnn regions alternate with a parallel TVM op,
run by deploy_app under OpenMP (ncnn) and TVM thread-pool settings, with and without busy processes beside it.
It is how deploy_app's default spin counts were chosen (README: Threads)."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench_measure import machine_load, percentile
from bench_systems import DEPLOY_APP, run_one


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


def threads_study(args, env_base: dict, workdir: Path, gomp_spin: int, tvm_spin: int) -> list[dict]:
    """ncnn regions alternating with a parallel TVM op: latency and CPU time per run under OpenMP (ncnn) and TVM
    thread-pool settings, with and without other busy processes on the machine, interleaved. gomp_spin and
    tvm_spin: deploy_app's default GOMP_SPINCOUNT and TVM_THREAD_POOL_SPIN_COUNT (bench.py owns them)."""
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
        f"GOMP_SPINCOUNT={gomp_spin} only": {"GOMP_SPINCOUNT": str(gomp_spin)},
        "GOMP_SPINCOUNT=10000, TVM spin 1000": {"GOMP_SPINCOUNT": "10000", "TVM_THREAD_POOL_SPIN_COUNT": "1000"},
        f"GOMP_SPINCOUNT={gomp_spin}, TVM spin {tvm_spin}":
            {"GOMP_SPINCOUNT": str(gomp_spin), "TVM_THREAD_POOL_SPIN_COUNT": str(tvm_spin)},
        f"as above, TVM pool 1 thread": {"GOMP_SPINCOUNT": str(gomp_spin),
                                         "TVM_THREAD_POOL_SPIN_COUNT": str(tvm_spin),
                                         "TVM_NUM_THREADS": "1"},
        # no variables: what deploy_app picks by itself -- one pool, TVM's loops on ncnn's OpenMP threads
        "deploy_app default": {},
        f"one pool, GOMP_SPINCOUNT={gomp_spin}": {"GOMP_SPINCOUNT": str(gomp_spin)},
    }
    one_pool = ("deploy_app default", f"one pool, GOMP_SPINCOUNT={gomp_spin}")
    ours = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS", "TVM_THREAD_POOL_SPIN_COUNT",
            "TVM_NCNN_WAIT_POLICY", "TVM_NCNN_TVM_POOL")
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
                        if c not in one_pool:  # TVM's own pool (as before), as big as ncnn's, as on a Pi
                            env.setdefault("TVM_NUM_THREADS", str(threads))
                            env["TVM_NCNN_TVM_POOL"] = "tvm"
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

