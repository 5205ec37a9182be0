"""ARM proxy without a board: guest instructions per inference under qemu-aarch64 (a TCG plugin counts them),
for native ncnn (benchmarks/ncnn_bench.cc, cross-built) and model.so (the aarch64 deploy_app), 1 thread.

    .venv/bin/python benchmarks/arm_insns.py [--model mobilenet_v1] [--cpus cortex-a76,cortex-a72] [--json F]

Per inference = (count at --repeat 3 - count at --repeat 1) / 2, so loading and the first run cancel out.
Instructions are not time (qemu timings mean nothing), but they show what differs on the ARM path: fp16
kernels on the A76, extra layers, copies. Needs `bash cmake/build_aarch64.sh` (deploy bundle and ncnn_bench)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64"))
APP = BUILD / "tvm-ncnn-aarch64" / "deploy_app"
NCNN_BENCH = BUILD / "benchmarks" / "ncnn_bench"
SYSROOT = "/usr/aarch64-linux-gnu"


def build_plugin(work: Path) -> Path:
    lib = work / "insn_count.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(ROOT / "benchmarks" / "insn_count_plugin.c"),
                    "-Wl,--unresolved-symbols=ignore-all"], check=True)
    return lib


def count(plugin: Path, cpu: str, argv: list[str], work: Path) -> int:
    """Guest instructions of one whole run of argv under qemu."""
    out = work / "count.txt"
    env = dict(os.environ, INSN_COUNT_FILE=str(out), OMP_NUM_THREADS="1")
    proc = subprocess.run(["qemu-aarch64", "-L", SYSROOT, "-cpu", cpu, "-plugin", str(plugin), *argv],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"arm_insns: {argv[0]} failed on {cpu}: {proc.stderr.strip().splitlines()[-1:]}")
    return int(out.read_text().split()[1])


def per_inference(plugin: Path, cpu: str, argv: list[str], work: Path) -> float:
    return (count(plugin, cpu, argv + ["--repeat", "3"], work) - count(plugin, cpu, argv + ["--repeat", "1"], work)) / 2


def mobilenet_v1():
    """pytorchcv's MobileNet (v1, width 1): 13 depthwise-separable blocks, random weights."""
    from pytorchcv.models.mobilenet import mobilenet_w1

    return mobilenet_w1().eval(), (1, 3, 224, 224)


def prepare(name: str, work: Path) -> dict:
    """ONNX, model.so for the Pi at the default precision (fp16) and fp32, and pnnx's ncnn graph (native)."""
    import pnnx
    import torch

    import tvm_ncnn
    from tvm_ncnn import zoo

    torch.manual_seed(0)
    module, shape = mobilenet_v1() if name == "mobilenet_v1" else (zoo.torch_model(name), (1, 3, 224, 224))
    onnx_path = zoo.to_onnx(module, str(work / f"{name}.onnx"), shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(work / "x.npy", x)
    m = {"input": str(work / "x.npy")}
    for precision in ("fp16", "fp32"):
        m[precision] = str(work / f"{name}-{precision}.so")
        tvm_ncnn.export(onnx_path, m[precision], target="rpi5", precision=precision)
    pt = str(work / f"{name}_pnnx.pt")
    pnnx.export(module, pt, (torch.from_numpy(x),), fp16=False)
    m["param"], m["bin"] = pt[:-3] + ".ncnn.param", pt[:-3] + ".ncnn.bin"
    return m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1", help="mobilenet_v1 or a tvm_ncnn.zoo name")
    parser.add_argument("--cpus", default="cortex-a76,cortex-a72")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plugin = build_plugin(work)
        m = prepare(args.model, work)
        native = [str(NCNN_BENCH), m["param"], m["bin"], m["input"], "--threads", "1"]
        app = [str(APP), "--threads", "1"]
        # native ncnn's default is fp16 storage + arithmetic (used where the CPU has it): ncnn_bench --fp16
        systems = {"native ncnn (default: fp16)": native + ["--fp16"], "native ncnn fp32": native,
                   "model.so (default: fp16)": app + [m["fp16"], m["input"]],
                   "model.so fp32": app + [m["fp32"], m["input"]]}
        rows = []
        for cpu in args.cpus.split(","):
            for system, argv in systems.items():
                n = per_inference(plugin, cpu, argv, work)
                rows.append({"model": args.model, "cpu": cpu, "system": system, "insns_per_inference": n})
                print(f"{args.model:14s} {cpu:11s} {system:28s} {n / 1e6:9.1f} M", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
