"""One model from 1, 2 and 4 callers: throughput and RSS of ONE load shared by the callers (one copy of the weights,
an execution context per caller) against N separate loads of the same model.so -- in C++ (concurrency_bench) and
in Python (tvm_ncnn.load() called from threads; tvm_ffi releases the GIL during the run).

    python benchmarks/bench_concurrency.py [--model mobilenetv2] [--rounds 5] [--seconds 3] [--workdir DIR]

Every configuration runs in its own process (RSS is per process), 1 thread per caller; the configurations take
turns round by round (interleaved), so a noisy neighbour slows all of them alike, and the ratios are medians of the
per-round ratios to the round's 1-caller run. "CPUs busy" is the process's CPU time over the wall time: above 1
only when callers really ran at the same time. "runs/CPU-s" is the work done per CPU-second: equal across rows
when sharing a model costs nothing (no lock spinning, no extra copies). On a machine other work keeps busy (with
the kernel's autogroup scheduling a session gets its share of the CPUs however many threads it runs), throughput
cannot scale however parallel the callers are; these two columns still show what each configuration costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [(1, "shared"), (2, "shared"), (2, "separate"), (4, "shared"), (4, "separate")]


def export_model(name: str, workdir: Path) -> Path:
    so = workdir / f"{name}.so"
    if so.exists():
        return so
    import tvm_ncnn
    from tvm_ncnn import zoo

    paths = zoo.write(name, str(workdir))
    spec = zoo.MODELS[name]
    tvm_ncnn.export(paths["model"], so, preprocess=tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std))
    return so


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def python_worker(so: str, callers: int, mode: str, seconds: float) -> dict:
    """The Python side of one configuration (run in a child process: --worker)."""
    import numpy as np

    import tvm_ncnn

    models = [tvm_ncnn.load(so, threads=1)]
    if mode == "separate":
        models += [tvm_ncnn.load(so, threads=1) for _ in range(callers - 1)]
    info = models[0].info["inputs"][0]
    x = np.zeros(info["shape"], dtype=info["dtype"])
    stop, counts = threading.Event(), [0] * callers

    def work(i: int, timed: bool) -> None:
        model = models[0 if mode == "shared" else i]
        while True:
            model(x)
            if not timed:
                return
            counts[i] += 1
            if stop.is_set():
                return

    for timed in (False, True):
        threads = [threading.Thread(target=work, args=(i, timed)) for i in range(callers)]
        start, cpu_start = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        if timed:
            time.sleep(seconds)
            stop.set()
        for t in threads:
            t.join()
    took = time.perf_counter() - start
    return {"callers": callers, "mode": mode, "runs": sum(counts), "seconds": took,
            "runs_per_s": sum(counts) / took, "cpus": (time.process_time() - cpu_start) / took, "rss_mb": rss_mb()}


def run_config(lang: str, so: Path, callers: int, mode: str, seconds: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", TVM_NUM_THREADS="1")
    if lang == "cpp":
        exe = ROOT / "build" / "host" / "benchmarks" / "concurrency_bench"
        cmd = [str(exe), str(so), "--callers", str(callers), "--mode", mode, "--seconds", str(seconds)]
    else:
        cmd = [sys.executable, __file__, "--worker", str(so), str(callers), mode, str(seconds)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mobilenetv2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--workdir", default="/tmp/tvm_ncnn_bench_concurrency")
    p.add_argument("--worker", nargs=4, metavar=("SO", "CALLERS", "MODE", "SECONDS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        so, callers, mode, seconds = a.worker
        print(json.dumps(python_worker(so, int(callers), mode, float(seconds))))
        return
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    so = export_model(a.model, workdir)
    print(f"{a.model}: {so} ({so.stat().st_size / 1e6:.1f} MB); {os.cpu_count()} CPUs; 1 thread per caller; "
          f"{a.rounds} interleaved rounds of {a.seconds:g} s per configuration")
    for lang in ("cpp", "python"):
        ratios = {c: [] for c in CONFIGS}
        rate = {c: [] for c in CONFIGS}
        rss = {c: [] for c in CONFIGS}
        cpus = {c: [] for c in CONFIGS}
        for _ in range(a.rounds):
            base = None
            for c in CONFIGS:
                r = run_config(lang, so, c[0], c[1], a.seconds)
                base = r["runs_per_s"] if c == (1, "shared") else base
                ratios[c].append(r["runs_per_s"] / base)
                rate[c].append(r["runs_per_s"])
                rss[c].append(r["rss_mb"])
                cpus[c].append(r["cpus"])
        print(f"\n{lang}: {'callers':>7} {'mode':>9} {'runs/s':>8} {'x 1 caller':>10} {'(min..max)':>13} {'RSS MB':>7} "
              f"{'CPUs busy':>9} {'runs/CPU-s':>10}")
        for c in CONFIGS:
            print(f"{'':{len(lang) + 1}} {c[0]:>7} {c[1]:>9} {statistics.median(rate[c]):8.1f} "
                  f"{statistics.median(ratios[c]):10.2f} {min(ratios[c]):6.2f}..{max(ratios[c]):<5.2f} "
                  f"{statistics.median(rss[c]):7.1f} {statistics.median(cpus[c]):9.2f} "
                  f"{statistics.median(r / max(u, 1e-9) for r, u in zip(rate[c], cpus[c])):10.1f}")


if __name__ == "__main__":
    main()
