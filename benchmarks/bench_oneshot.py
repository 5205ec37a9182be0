"""One-shot runs (bench.py --one-shot): what `deploy_app model.so photo.jpg` costs a user who runs it once.

Every measurement is a fresh process that loads the model and runs it once (--repeat 0): load_ms, first_ms, their
sum, the peak RSS (VmHWM: loading included) and the process's whole wall time as seen from here (exec to exit:
dynamic linking, reading the input, writing the output). The runs go in interleaved rounds, every system once per
round in a new random order, as the steady-state benchmark does; ratios to native ncnn are paired by round and
then the median is taken, so load on a shared machine that comes and goes hits every system alike.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import numpy as np

from bench_report import print_rows
from bench_systems import command, run_one

# The systems a one-shot comparison needs by default: the product, its reference and the other runtime.
DEFAULT_ONE_SHOT_SYSTEMS = ["tvm-ncnn", "native-ncnn", "onnxruntime"]
REFERENCE = "native-ncnn"


def one_shot(m: dict, threads: int, systems: list[str], runs: int, env: dict, workdir: Path) -> dict[str, dict]:
    """`runs` interleaved rounds of one fresh process per system; per system the medians and the paired ratios."""
    if env.get("BENCH_WAIT_POLICY") != "libgomp":
        env = {**env, "TVM_NUM_THREADS": str(threads)}
    raw: dict[str, list[dict]] = {s: [] for s in systems}
    failed: dict[str, str] = {}
    for _ in range(runs):
        order = [s for s in systems if s not in failed]
        random.shuffle(order)
        for system in order:
            out = str(workdir / f"oneshot_{system}.npy")
            start = time.perf_counter()
            try:
                r = run_one(command(system, m, threads, 0, out), env)
            except RuntimeError as err:
                failed[system] = str(err).strip().splitlines()[-1]
                print(f"  {system} cannot run {m['name']}: {failed[system]}", flush=True)
                continue
            r["process_ms"] = (time.perf_counter() - start) * 1e3
            r["load_first_ms"] = r["load_ms"] + r["first_ms"]
            ref = m["reference"]
            r["max_rel_err"] = float(np.abs(np.load(out).reshape(ref.shape) - ref).max()
                                     / max(float(np.abs(ref).max()), 1e-12))
            raw[system].append(r)
    stats: dict[str, dict] = {}
    for system, reports in raw.items():
        if system in failed:
            stats[system] = {"error": failed[system]}
            continue
        med = lambda key: statistics.median(r[key] for r in reports)  # noqa: E731
        stats[system] = {"load_ms": med("load_ms"), "first_ms": med("first_ms"), "load_first_ms": med("load_first_ms"),
                         "rss_mb": med("rss_mb"), "process_ms": med("process_ms"), "rounds": len(reports),
                         "max_rel_err": max(r["max_rel_err"] for r in reports),
                         "round_load_first_ms": [r["load_first_ms"] for r in reports],
                         "round_rss_mb": [r["rss_mb"] for r in reports],
                         "round_process_ms": [r["process_ms"] for r in reports]}
    ref = stats.get(REFERENCE)
    if ref and "error" not in ref:
        for system, s in stats.items():
            if "error" in s:
                continue
            for key, name in (("round_load_first_ms", "load_first_ratio"), ("round_rss_mb", "peak_rss_ratio"),
                              ("round_process_ms", "process_ratio")):
                s[name] = statistics.median(a / b for a, b in zip(s[key], ref[key]))
    return stats


def print_one_shot(rows: list[dict]) -> None:
    print_rows(rows, 12, [("load ms", "load_ms", "8.1f"), ("first ms", "first_ms", "8.1f"),
                          ("l+f ms", "load_first_ms", "8.1f"), ("x native", "load_first_ratio", "8.2f"),
                          ("peak MB", "rss_mb", "8.1f"), ("x native", "peak_rss_ratio", "8.2f"),
                          ("proc ms", "process_ms", "8.1f"), ("x native", "process_ratio", "8.2f"),
                          ("rel err", "max_rel_err", "8.1e")])
