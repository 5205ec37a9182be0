"""The systems bench.py compares, and how one measurement of each is started.

  tvm-ncnn        the exported model.so, run by deploy_app (C++)
  tvm-ncnn-py     the same model.so through the Python loader, tvm_ncnn.load (bench_worker.py)
  native-ncnn     the pnnx graph of the same network, run by ncnn_bench (C++, the build's `ncnn_bench` target,
                  linked against the same vendored ncnn as the runtime)
  native-ncnn-py  the pnnx graph in the ncnn PyPI wheel (bench_worker.py)
  tvm-alone       model.so exported with --no-offload, run by deploy_app (TVM's code with the default schedules)
  tvm-alone-unscheduled  the same with TVM_NCNN_SCHEDULES=0: TVM's code as tvm.compile makes it (unfused serial
                  loops), to measure what the schedules buy; not run unless named in --systems (slow)
  onnxruntime     the ONNX model in onnxruntime, CPU provider (bench_worker.py)

Each measurement is a process of its own that prints one JSON object (load_ms, first_ms, times_ms, cpu_ms,
rss_mb, steady_rss_mb, ...): no two OpenMP runtimes share a process, and the RSS is the system's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("TVM_NCNN_BUILD_DIR", ROOT / "build" / "host"))
DEPLOY_APP = Path(os.environ.get("TVM_NCNN_DEPLOY_APP", BUILD / "deploy_app"))
NCNN_BENCH = BUILD / "benchmarks" / "ncnn_bench"  # benchmarks/CMakeLists.txt puts it there
WORKER = Path(__file__).resolve().with_name("bench_worker.py")

SYSTEMS = ["tvm-ncnn", "tvm-ncnn-py", "native-ncnn", "native-ncnn-py", "tvm-alone", "onnxruntime",
           "tvm-alone-unscheduled", "tvm-ncnn-int8", "native-ncnn-int8", "onnxruntime-int8"]
DEFAULT_SYSTEMS = SYSTEMS[:-4]
# int8 (bench_int8.py): the int8 forms need calibration photos, so they run when bench.py gets --photos
INT8_SYSTEMS = SYSTEMS[-3:]


def check_built() -> None:
    """deploy_app and ncnn_bench come from the normal build (cmake/bootstrap.sh, or cmake --build)."""
    if not DEPLOY_APP.exists():
        raise SystemExit(f"{DEPLOY_APP} is not built: cmake --build {BUILD}")
    if not NCNN_BENCH.exists():
        # A build directory made before ncnn_bench was a target: building the target re-runs CMake, which adds it.
        print(f"building {NCNN_BENCH}", flush=True)
        if subprocess.run(["cmake", "--build", str(BUILD), "--target", "ncnn_bench"]).returncode != 0:
            raise SystemExit(f"cannot build {NCNN_BENCH}: configure {BUILD} with -DTVM_NCNN_BUILD_BENCHMARKS=ON "
                             f"and run cmake --build {BUILD} --target ncnn_bench")


def command(system: str, m: dict, threads: int, repeat: int, output: str) -> list[str]:
    if system in INT8_SYSTEMS:
        return int8_command(system, m, threads, repeat, output)
    if system in ("tvm-ncnn", "tvm-alone", "tvm-alone-unscheduled"):
        so = {"tvm-ncnn": m["so"], "tvm-alone": m.get("tvm_so"),
              "tvm-alone-unscheduled": m.get("tvm_unscheduled_so")}[system]
        return [str(DEPLOY_APP), so, m["input"], "--threads", str(threads), "--repeat", str(repeat), "--json",
                "--output", output]
    if system == "native-ncnn":
        return [str(NCNN_BENCH), m["param"], m["bin"], m["input"], "--threads", str(threads), "--repeat",
                str(repeat), "--output", output]
    model = {"tvm-ncnn-py": m["so"], "onnxruntime": m["onnx"]}.get(system, "")
    return [sys.executable, str(WORKER), system, "--model", model, "--param",
            m["param"], "--bin", m["bin"], "--input", m["input"], "--threads", str(threads), "--repeat", str(repeat),
            "--output", output]


def int8_command(system: str, m: dict, threads: int, repeat: int, output: str) -> list[str]:
    """The int8 forms of bench_int8.py, run as their fp32 systems are. A RuntimeError (no such form for this model)
    is reported by measure() as the system not running it."""
    if system == "tvm-ncnn-int8":
        return command("tvm-ncnn", {**m, "so": m["int8_so"]}, threads, repeat, output)
    if system == "onnxruntime-int8":
        return command("onnxruntime", {**m, "onnx": m["ort_int8"]}, threads, repeat, output)
    if "int8_param" not in m:
        raise RuntimeError("native-ncnn-int8: the model is not one ncnn region with one input and one output")
    return command("native-ncnn", {**m, "param": m["int8_param"], "bin": m["int8_bin"]}, threads, repeat,
                   output) + ["--in", m["int8_in"], "--out", m["int8_out"]]


def run_one(cmd: list[str], env: dict, timeout: float = 3600) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

