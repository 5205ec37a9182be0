"""bench_dynamic.py --arm: the ARM proxy of the rect/square pair, guest instructions per inference of YOLOv8n under
qemu-aarch64 -cpu cortex-a76 (arm_insns.py's plugin and counting), 1 thread, default precision (fp16 on the A76):
model.so exported for the Pi 5 (`--target rpi5`) dynamic at 384x640 (rect) and at 640x640, the fixed 640x640
model.so, and native ncnn (ncnn_bench --fp16) on pnnx's dynamic graph at both sizes. Needs `bash cmake/build_aarch64.sh`
and its ncnn_bench, which that script configures off: `cmake -S . -B build/aarch64 -DTVM_NCNN_BUILD_BENCHMARKS=ON &&
cmake --build build/aarch64 --target ncnn_bench`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import arm_insns  # noqa: E402
from bench_measure import machine_load  # noqa: E402

CPU = "cortex-a76"


def exports(m: dict) -> dict:
    """The Pi 5 model.so files, made once beside the host ones."""
    import tvm_ncnn

    d = Path(m["dyn"]).parent
    out = {"dyn": d / "dyn_rpi5.so", "fixed": d / "fixed_640x640_rpi5.so"}
    if not out["dyn"].exists():
        tvm_ncnn.export(m["onnx"], str(out["dyn"]), target="rpi5")
    if not out["fixed"].exists():
        tvm_ncnn.export(m["onnx"], str(out["fixed"]), target="rpi5", input_shapes={m["input"]: [1, 3, 640, 640]})
    return {k: str(v) for k, v in out.items()}


def report(m: dict, photo: Path, workdir: Path) -> list[str]:
    if not arm_insns.APP.exists() or not arm_insns.NCNN_BENCH.exists():
        return [f"\n## ARM proxy: not measured ({arm_insns.APP} or {arm_insns.NCNN_BENCH} missing: "
                "bash cmake/build_aarch64.sh, then build/aarch64's ncnn_bench target with "
                "-DTVM_NCNN_BUILD_BENCHMARKS=ON)"]
    so = exports(m)
    d = Path(m["dyn"]).parent
    x = {s: str(d / f"x_{s}.npy") for s in ("384x640", "640x640")}
    app = [str(arm_insns.APP), "--threads", "1"]
    native = [str(arm_insns.NCNN_BENCH), m["pnnx"] + ".param", m["pnnx"] + ".bin"]
    systems = {
        "model.so dynamic, rect 384x640": app + [so["dyn"], x["384x640"]],
        "model.so dynamic, square 640x640": app + [so["dyn"], x["640x640"]],
        "model.so fixed 640x640": app + [so["fixed"], x["640x640"]],
        "native ncnn (pnnx dynamic graph), 384x640": native + [x["384x640"], "--threads", "1", "--fp16"],
        "native ncnn (pnnx dynamic graph), 640x640": native + [x["640x640"], "--threads", "1", "--fp16"],
    }
    counts = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        work = Path(tmp)
        plugin = arm_insns.build_plugin(work)
        for name, argv in systems.items():
            counts[name] = arm_insns.per_inference(plugin, CPU, argv, work)
            print(f"# {name}: {counts[name] / 1e6:.0f} M", flush=True)
    square = counts["model.so fixed 640x640"]
    lines = [f"\n## ARM proxy: YOLOv8n, guest instructions per inference, qemu-aarch64 -cpu {CPU}, 1 thread, "
             f"fp16 ({machine_load()})", "| system | M instructions | x model.so fixed 640x640 | x native at the same "
             "size |", "|---|---|---|---|"]
    nat = {"384x640": counts["native ncnn (pnnx dynamic graph), 384x640"],
           "640x640": counts["native ncnn (pnnx dynamic graph), 640x640"]}
    for name, n in counts.items():
        size = "384x640" if "384x640" in name else "640x640"
        lines.append(f"| {name} | {n / 1e6:.0f} | {n / square:.3f} | {n / nat[size]:.3f} |")
    return lines
