"""Measuring: interleaved rounds of every system, pooled into one set of statistics per system; RSS growth over
many runs; the machine's load, printed beside every result (absolute times mean little on a shared machine)."""

from __future__ import annotations

import os
import random
import statistics
from pathlib import Path

import numpy as np

from bench_systems import command, run_one


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
            n = tvm_repeat if system == "tvm-alone-unscheduled" else max(1, repeat // rounds)
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
