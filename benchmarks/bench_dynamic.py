"""Dynamic input sizes (issue 23): what one model.so serving every size costs against a model.so exported at that
size, and against native ncnn on pnnx's dynamic graph; and what the rect letterbox it allows saves end to end.

    .venv/bin/python benchmarks/bench_dynamic.py [--rounds 7] [--repeat 20] [--threads 1,2] [--workdir DIR]
                                                 [--memory-runs 1000] [--arm] [--skip-speed]

1. speed: YOLOv8n (ultralytics' own ONNX, dynamic=True) at 640x640 and 640x384 (H x W: 640x640, 384x640) and
   timm's mobilenetv2_100 (ONNX with dynamic H, W) at 224x224 and 320x256: deploy_app on the dynamic model.so
   (`tvm-ncnn export m.onnx -o dyn.so`) and on one exported at that size (`--input NAME:1,3,H,W`), and
   ncnn_bench on pnnx's graph of the same torch model (`inputshape=` and `inputshape2=`: shape expressions), the
   same .npy input; 1 and 2 threads.
2. end to end (decode + letterbox + inference + decode/NMS), YOLOv8n on a 16:9 photo through deploy_app: rect (the
   dynamic model letterboxes it to 640x384) against square (the 640x640 model.so letterboxes it to 640x640).
3. (--arm) the ARM proxy of the rect/square pair: guest instructions per inference under qemu-aarch64 -cpu
   cortex-a76 (bench_dynamic_arm.py; needs cmake/build_aarch64.sh).
4. memory: RSS of one process running 1000 inferences that alternate three sizes (bench_dynamic_memory.py), and
   peak RSS against native ncnn at the largest size.

Every cell of 1 and 2 runs once per round, rounds in a new random order each, so the machine's drift hits all
systems alike; ratios are per round (p50 over p50 of the same round), then the median over rounds. The machine's
load is printed with every table: on a shared machine absolute times mean little."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_detect import thread_env  # noqa: E402
from bench_measure import machine_load  # noqa: E402
from bench_systems import DEPLOY_APP, NCNN_BENCH  # noqa: E402
import dynamic_models  # noqa: E402

SPEED_SYSTEMS = ("dynamic", "fixed", "native")


def run_json(cmd: list[str], env: dict) -> dict:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench_dynamic: {Path(cmd[0]).name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def npy(m: dict, size: str) -> str:
    return str(Path(m["dyn"]).parent / f"x_{size}.npy")


def command(cell: tuple, m: dict, photo: Path, repeat: int, output: str | None = None) -> list:
    kind, _, size, threads, system = cell
    common = ["--threads", threads, "--repeat", repeat] + (["--output", output] if output else [])
    if kind == "e2e":  # the photo, letterboxed as each model.so's metadata says
        so = m["dyn"] if size == "rect" else m["fixed"]["640x640"]
        return [DEPLOY_APP, so, photo, "--json", *common]
    if system == "native":
        return [NCNN_BENCH, m["pnnx"] + ".param", m["pnnx"] + ".bin", npy(m, size), *common]
    so = m["dyn"] if system == "dynamic" else m["fixed"][size]
    return [DEPLOY_APP, so, npy(m, size), "--json", *common]


def cells_for(models: dict, threads: list[int]) -> list[tuple]:
    cells = [("speed", name, f"{h}x{w}", t, s) for name, m in models.items() for h, w in m["sizes"]
             for t in threads for s in SPEED_SYSTEMS]
    if "yolov8n" in models:
        cells += [("e2e", "yolov8n", shape, t, "model.so") for shape in ("rect", "square") for t in threads]
    return cells


def check_outputs(models: dict, photo: Path, env: dict, work: Path) -> list[str]:
    """One run of every speed cell with --output: dynamic against fixed and native at the same size."""
    lines = []
    for name, m in models.items():
        for h, w in m["sizes"]:
            size, outs = f"{h}x{w}", {}
            for s in SPEED_SYSTEMS:
                outs[s] = str(work / f"{name}_{size}_{s}.npy")
                run_json(command(("speed", name, size, 1, s), m, photo, 1, outs[s]), env)
            got = {s: np.load(p) for s, p in outs.items()}
            if name == "yolov8n":  # native's rows 0-3 are box distances (dynamic_models.torch_yolo): scores only
                got = {s: v.reshape(84, -1)[4:] for s, v in got.items()}
            scale = float(np.abs(got["fixed"]).max()) or 1.0
            errs = {s: float(np.abs(got["dynamic"].ravel() - got[s].ravel()).max()) / scale
                    for s in ("fixed", "native")}
            what = " (class scores)" if name == "yolov8n" else ""
            lines.append(f"  {name} {size}: dynamic vs fixed max|diff|/max|ref| {errs['fixed']:.1e}, "
                         f"vs native ncnn{what} {errs['native']:.1e}")
    return lines


def measure(cells: list[tuple], models: dict, photo: Path, rounds: int, repeat: int, env: dict) -> dict:
    got = {c: [] for c in cells}
    rng = random.Random(0)
    order = list(cells)
    for r in range(rounds):
        rng.shuffle(order)
        for c in order:
            rep = run_json(command(c, models[c[1]], photo, repeat), env)
            row = {"p50": rep["p50_ms"], "cpu": rep["cpu_ms"]}
            if c[0] == "e2e":
                row.update(pre=rep["preprocess_ms"], post=rep["postprocess_ms"], found=len(rep["detections"]),
                           shape=rep["input"]["shape"], total=rep["preprocess_ms"] + rep["p50_ms"] +
                           rep["postprocess_ms"])
            got[c].append(row)
        print(f"# round {r + 1}/{rounds} done ({machine_load()})", flush=True)
    return got


def ratio(got: dict, a: tuple, b: tuple, key: str = "p50") -> float:
    """Median over rounds of a's figure over b's in the same round."""
    return statistics.median(x[key] / y[key] for x, y in zip(got[a], got[b]))


def med(got: dict, c: tuple, key: str = "p50") -> float:
    return statistics.median(x[key] for x in got[c])


def speed_table(got: dict, models: dict, threads: list[int]) -> list[str]:
    lines = ["| model | H x W | threads | dynamic ms | fixed ms | native ncnn ms | dynamic / fixed | dynamic / native "
             "| (CPU time: / fixed, / native) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        for h, w in m["sizes"]:
            for t in threads:
                c = {s: ("speed", name, f"{h}x{w}", t, s) for s in SPEED_SYSTEMS}
                lines.append(
                    f"| {name} | {h}x{w} | {t} | {med(got, c['dynamic']):.2f} | {med(got, c['fixed']):.2f} | "
                    f"{med(got, c['native']):.2f} | {ratio(got, c['dynamic'], c['fixed']):.3f} | "
                    f"{ratio(got, c['dynamic'], c['native']):.3f} | {ratio(got, c['dynamic'], c['fixed'], 'cpu'):.3f}"
                    f", {ratio(got, c['dynamic'], c['native'], 'cpu'):.3f} |")
    return lines


def e2e_table(got: dict, threads: list[int]) -> list[str]:
    lines = ["| threads | letterbox | input | found | decode+letterbox ms | inference ms | decode+NMS ms | total ms "
             "| rect / square (total) | (inference) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for t in threads:
        c = {s: ("e2e", "yolov8n", s, t, "model.so") for s in ("rect", "square")}
        for s in ("rect", "square"):
            rows = got[c[s]]
            shape = "x".join(map(str, rows[0]["shape"][2:]))
            rel = (f"{ratio(got, c['rect'], c['square'], 'total'):.3f} | {ratio(got, c['rect'], c['square']):.3f}"
                   if s == "rect" else "1 | 1")
            lines.append(f"| {t} | {s} | {shape} | {rows[0]['found']} | {med(got, c[s], 'pre'):.2f} | "
                         f"{med(got, c[s]):.2f} | {med(got, c[s], 'post'):.2f} | {med(got, c[s], 'total'):.2f} | "
                         f"{rel} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per cell and round")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(dynamic_models.MODELS))
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tvm_ncnn_bench_dynamic"))
    ap.add_argument("--memory-runs", type=int, default=1000, help="0: no memory rows")
    ap.add_argument("--arm", action="store_true", help="the ARM proxy rows (qemu; needs build/aarch64)")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    for exe in (DEPLOY_APP, NCNN_BENCH):
        if not exe.exists():
            sys.exit(f"bench_dynamic: {exe} is missing; build first (cmake --build build/host)")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    models = {n: dynamic_models.prepare(n, workdir) for n in args.models.split(",")}
    photo = dynamic_models.photo_16x9(workdir)
    threads = [int(t) for t in args.threads.split(",")]
    env = thread_env()
    out = []
    if not args.skip_speed:
        print(f"# start: {machine_load()}", flush=True)
        checks = check_outputs(models, photo, env, workdir)
        cells = cells_for(models, threads)
        got = measure(cells, models, photo, args.rounds, args.repeat, env)
        (workdir / "rounds.json").write_text(json.dumps([[list(c), rows] for c, rows in got.items()]))
        out += [f"\n## speed: p50 ms (median over {args.rounds} rounds of --repeat {args.repeat}); ratios per round, "
                f"median ({machine_load()} at the end)", *speed_table(got, models, threads)]
        out += ["\noutputs (1 thread, one run each):", *checks]
        if "yolov8n" in models:
            out += [f"\n## end to end, YOLOv8n on {photo.name} ({photo_size(photo)}), deploy_app --json: "
                    "preprocess_ms + p50_ms + postprocess_ms", *e2e_table(got, threads)]
        print("\n".join(out), flush=True)
    if args.memory_runs:
        import bench_dynamic_memory

        print("\n".join(bench_dynamic_memory.report(models["yolov8n"], args.memory_runs, env)), flush=True)
    if args.arm:
        import bench_dynamic_arm

        print("\n".join(bench_dynamic_arm.report(models["yolov8n"], photo, workdir)), flush=True)


def photo_size(photo: Path) -> str:
    from PIL import Image

    with Image.open(photo) as im:
        return f"{im.width}x{im.height}"


if __name__ == "__main__":
    main()
