"""ARM proxy without a board: guest instructions per inference under qemu-aarch64 (a TCG plugin counts them),
for native ncnn (benchmarks/ncnn_bench.cc, cross-built) and model.so (the aarch64 deploy_app), 1 thread.

    .venv/bin/python benchmarks/arm_insns.py [--model mobilenet_v1] [--cpus cortex-a76,cortex-a72] [--json F]
                                             [--photos DIR]

With --photos (calibration photos, JPEG/PNG) also int8: model.so exported --precision int8 for the Pi, and as
native ncnn that export's own int8 ncnn graph (the region's .param/.bin, as ncnn/quantize.py writes it) in ncnn_bench
-- the same int8 layers without the runtime's int8 chains (runtime/src/ncnn/int8_chain.h). The int8 rows end
with their ratio to the fp32 row of the same system and CPU (fp32 / int8 instructions; > 1: fewer).

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
# qemu CPUs with armv8.2 fp16 arithmetic (where model.so runs its non-int8 layers in fp16)
FP16_ARITHMETIC = ("cortex-a76", "cortex-a55", "cortex-a78ae", "neoverse-n1")


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
        raise RuntimeError(f"{Path(argv[0]).name} failed on {cpu}: {proc.stderr.strip().splitlines()[-1:]}")
    return int(out.read_text().split()[1])


def per_inference(plugin: Path, cpu: str, argv: list[str], work: Path) -> float:
    return (count(plugin, cpu, argv + ["--repeat", "3"], work) - count(plugin, cpu, argv + ["--repeat", "1"], work)) / 2


def mobilenet_v1():
    """pytorchcv's MobileNet (v1, width 1): 13 depthwise-separable blocks, random weights."""
    from pytorchcv.models.mobilenet import mobilenet_w1

    return mobilenet_w1().eval(), (1, 3, 224, 224)


def prepare(name: str, work: Path, photos: str | None) -> dict:
    """ONNX, model.so for the Pi at the default precision (fp16) and fp32 (and int8, calibrated on `photos`), and
    pnnx's ncnn graph (native)."""
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
    if photos:
        m.update(prepare_int8(name, onnx_path, photos, work))
    pt = str(work / f"{name}_pnnx.pt")
    pnnx.export(module, pt, (torch.from_numpy(x),), fp16=False)
    m["param"], m["bin"] = pt[:-3] + ".ncnn.param", pt[:-3] + ".ncnn.bin"
    return m


def prepare_int8(name: str, onnx_path: str, photos: str, work: Path) -> dict:
    """model.so int8 for the Pi (calibrated on the photos, preprocessed as the zoo says, else ImageNet's mean/std)
    and its ncnn region's int8 .param/.bin when the model is one region (bench_int8.regions_written)."""
    import tvm_ncnn
    from tvm_ncnn import zoo
    from tvm_ncnn.int8.calibrate import Calibration

    from bench_int8 import regions_written

    spec = zoo.MODELS.get(name)
    mean, std = (spec.mean, spec.std) if spec else ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    m = {"int8": str(work / f"{name}-int8.so")}
    with regions_written() as regions:
        tvm_ncnn.export(onnx_path, m["int8"], target="rpi5", precision="int8", calibration=Calibration(photos),
                        preprocess=tvm_ncnn.Preprocess(mean=mean, std=std))
    if len(regions) == 1:
        region = next(iter(regions.values()))
        if len(region.inputs) == 1 and len(region.outputs) == 1:
            m["int8_param"], m["int8_bin"] = str(work / f"{name}-int8.param"), str(work / f"{name}-int8.bin")
            Path(m["int8_param"]).write_text(region.param)
            Path(m["int8_bin"]).write_bytes(bytes(region.graph.serialize()[1]))
            m["int8_blobs"] = ["--in", region.inputs[0], "--out", region.outputs[0]]
    return m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1", help="mobilenet_v1 or a tvm_ncnn.zoo name")
    parser.add_argument("--cpus", default="cortex-a76,cortex-a72")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--photos", help="calibration photos: adds the int8 rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plugin = build_plugin(work)
        m = prepare(args.model, work, args.photos)
        native = [str(NCNN_BENCH), m["param"], m["bin"], m["input"], "--threads", "1"]
        app = [str(APP), "--threads", "1"]
        # native ncnn's default is fp16 storage + arithmetic (used where the CPU has it): ncnn_bench --fp16
        systems = {"native ncnn (default: fp16)": native + ["--fp16"], "native ncnn fp32": native,
                   "model.so (default: fp16)": app + [m["fp16"], m["input"]],
                   "model.so fp32": app + [m["fp32"], m["input"]]}
        # int8 -> the fp32 row it is compared with. model.so int8 runs its other layers as the default does (fp16
        # where the CPU has fp16 arithmetic, fp32 elsewhere); native int8 likewise (--fp16 only on those CPUs).
        int8_of = {}
        if "int8" in m:
            systems["model.so int8"] = app + [m["int8"], m["input"]]
            int8_of["model.so int8"] = "model.so fp32"
        if "int8_param" in m:
            systems["native ncnn int8 (same graph)"] = [str(NCNN_BENCH), m["int8_param"], m["int8_bin"], m["input"],
                                                        "--threads", "1", "--fp16", *m["int8_blobs"]]
            int8_of["native ncnn int8 (same graph)"] = "native ncnn fp32"
        rows = []
        for cpu in args.cpus.split(","):
            counts = {}
            for system, argv in systems.items():
                if system.startswith("native ncnn int8") and cpu not in FP16_ARITHMETIC:
                    argv = [a for a in argv if a != "--fp16"]
                try:
                    n = counts[system] = per_inference(plugin, cpu, argv, work)
                except RuntimeError as err:
                    if not system.startswith("native"):
                        sys.exit(f"arm_insns: {err}")
                    # pnnx may emit a layer the lean vendored ncnn is built without: native cannot run the model
                    print(f"{args.model:14s} {cpu:11s} {system:30s} cannot run: {err}", flush=True)
                    continue
                row = {"model": args.model, "cpu": cpu, "system": system, "insns_per_inference": n}
                ratio = ""
                if system in int8_of and int8_of[system] in counts:
                    row["fp32_over_int8"] = counts[int8_of[system]] / n
                    ratio = f"  fp32/int8 {row['fp32_over_int8']:.2f}x"
                rows.append(row)
                print(f"{args.model:14s} {cpu:11s} {system:30s} {n / 1e6:9.1f} M{ratio}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
