"""Detection end to end (issue 15 item 6; the OBB rows: issue 26): YOLOv8n at 640x640 on a real photo, letterbox + inference +
decode/NMS, model.so (deploy_app) against native ncnn on pnnx's graph of the same model with the SAME
post-processing (build/host/benchmarks/ncnn_detect_bench: tvm_ncnn::Detect on ncnn's output).

    .venv/bin/python benchmarks/bench_detect.py [--rounds 5] [--repeat 10] [--threads 1,2] [--workdir DIR]

Two models, random weights from ultralytics' yaml with the class biases set so that, on the photo, a realistic
number of anchors (--anchors, 100) pass the 0.25 threshold, and so that all 8400 do (the worst case). Rounds
interleave every (threads, case, system) cell, so the machine's drift hits both systems alike; per cell the
median over rounds. Prints ms and the ratios: post-processing's share of inference, (letterbox + post) / inference,
and model.so's pre + inf + post over native's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_measure import machine_load  # noqa: E402
from bench_systems import BUILD, DEPLOY_APP  # noqa: E402

NATIVE = BUILD / "benchmarks" / "ncnn_detect_bench"
PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # 512 x 600
SCORE = 0.25  # ultralytics' default threshold, what the export records


def logit(p):
    return np.log(p / (1 - p))


def letterboxed_photo(size: int = 640) -> np.ndarray:
    """The photo as the model sees it, near enough to choose a bias: PIL resize, 114 border, / 255."""
    from PIL import Image

    im = Image.open(PHOTO).convert("RGB")
    r = min(size / im.width, size / im.height)
    w, h = round(im.width * r), round(im.height * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top:top + h, left:left + w] = np.asarray(im.resize((w, h), Image.BILINEAR))
    return canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255


def yolov8n(anchors: int | None, seed: int = 0):
    """YOLOv8n from yaml, biased (below) for `anchors` passing anchors."""
    from tvm_ncnn.zoo import modern as zoo_modern

    model, _ = zoo_modern.torch_model("yolov8n", seed)  # the zoo's 320x320 input: here 640x640, 8400 anchors
    return biased(model, anchors, seed), (1, 3, 640, 640)


def biased(model, anchors: int | None, seed: int = 0):
    """Every conv re-drawn at unit gain (random BN fades features to constants otherwise), then every class bias
    shifted alike so that `anchors` anchors' best class passes SCORE on the photo (None: all)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    model.eval()
    with torch.no_grad():
        dfl = set(model.model[-1].dfl.modules())
        for conv in model.modules():
            if isinstance(conv, torch.nn.Conv2d) and conv not in dfl:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / conv.weight[0].numel()) ** 0.5)
                if conv.bias is not None:
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        # The class logits themselves (the head's sigmoid saturates in float32): the last conv of each cv3 branch.
        heads, logits = model.model[-1].cv3, []
        hooks = [seq[-1].register_forward_hook(lambda mod, i, o: logits.append(o.flatten(2))) for seq in heads]
        model(torch.from_numpy(letterboxed_photo(640)))
        for h in hooks:
            h.remove()
        best = np.sort(torch.cat(logits, 2)[0].max(0).values.double().numpy())[::-1]  # per anchor, best first
        # The shift puts the threshold halfway between the anchors-th and the next anchor's best logit; for the
        # worst case 1 below the lowest (sigmoid 0.25 -> ~0.5 for the last anchor).
        target = best[-1] - 1.0 if anchors is None else (best[anchors - 1] + best[anchors]) / 2
        for seq in heads:
            seq[-1].bias.add_(float(logit(SCORE) - target))
    return model


def prepare_obb(case: str, anchors: int | None, workdir: Path) -> dict:
    """YOLO11n-obb as ultralytics' own exporter writes it (its metadata gives model.so the task and the
    letterbox, no flags), biased as YOLOv8n; model.so only (native ncnn has no rotated NMS to compare)."""
    import tvm_ncnn

    d = workdir / f"obb_{case}"
    d.mkdir(parents=True, exist_ok=True)
    so = d / "obb.so"
    if not so.exists():
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")
        from ultralytics import YOLO

        cwd = os.getcwd()
        os.chdir(d)  # the exporter writes beside the (yaml) model name
        try:
            yolo = YOLO("yolo11n-obb.yaml")
            biased(yolo.model, anchors)
            onnx_path = yolo.export(format="onnx", imgsz=640, simplify=False)
        finally:
            os.chdir(cwd)
        tvm_ncnn.export(str(d / onnx_path), so)
    m = tvm_ncnn.load(so, threads=1)
    raw = m(m.load_image(str(PHOTO)))[0][0]
    classes = m.info["postprocess"]["classes"]
    passing = int((raw[4:4 + classes].max(axis=0) > SCORE).sum())
    return {"case": f"obb {case}", "so": str(so), "passing": passing, "anchors": raw.shape[1]}


def prepare(case: str, anchors: int | None, workdir: Path) -> dict:
    """model.so (exported from ONNX as users do), pnnx's ncnn graph and the postprocess object, cached by case."""
    import torch

    import tvm_ncnn
    from tvm_ncnn.zoo import modern as zoo_modern

    d = workdir / case
    d.mkdir(parents=True, exist_ok=True)
    so, onnx_path = d / "yolov8n.so", d / "yolov8n.onnx"
    if not so.exists():
        model, shape = yolov8n(anchors)
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(onnx_path), input_names=["images"], opset_version=17, dynamo=False)
        zoo_modern.pnnx_from_onnx(str(onnx_path), shape, d / "pnnx")
        tvm_ncnn.export(str(onnx_path), so, preprocess=tvm_ncnn.Preprocess(std=(255.0,) * 3, resize="letterbox"))
    base = str(next((d / "pnnx").glob("*.ncnn.param"))).removesuffix(".ncnn.param")
    m = tvm_ncnn.load(so, threads=1)
    raw = m(m.load_image(str(PHOTO)))[0][0]
    passing = int((raw[4:].max(axis=0) > SCORE).sum())
    return {"case": case, "so": str(so), "param": base + ".ncnn.param", "bin": base + ".ncnn.bin",
            "post": json.dumps(m.info["postprocess"]), "passing": passing, "anchors": raw.shape[1]}


def thread_env() -> dict:
    """Both systems in deploy_app's threading environment (the runtime's spin counts, as bench.py's default
    --wait-policy): native ncnn would otherwise spin libgomp's long default and the two would not compare."""
    from tvm_ncnn.runtime.native import spin_counts

    gomp, tvm = spin_counts()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TVM_NUM_THREADS",
                                                            "TVM_THREAD_POOL_SPIN_COUNT")}
    env.update(GOMP_SPINCOUNT=str(gomp), TVM_THREAD_POOL_SPIN_COUNT=str(tvm), TVM_NCNN_WAIT_POLICY="inherit")
    return env


ENV = None


def run_json(cmd: list[str]) -> dict:
    global ENV
    ENV = ENV or thread_env()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    if proc.returncode != 0:
        sys.exit(f"bench_detect: {Path(cmd[0]).name} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def measure_once(system: str, m: dict, threads: int, repeat: int) -> dict:
    if system == "model.so":
        r = run_json([str(DEPLOY_APP), m["so"], str(PHOTO), "--json", "--threads", str(threads),
                      "--repeat", str(repeat)])
        return {"pre": r["preprocess_ms"], "inf": r["p50_ms"], "post": r["postprocess_ms"],
                "found": len(r["detections"])}
    r = run_json([str(NATIVE), m["param"], m["bin"], str(PHOTO), "--post", m["post"], "--threads", str(threads),
                  "--repeat", str(repeat)])
    return {"pre": r["preprocess_ms"], "inf": r["p50_ms"], "post": r["postprocess_ms"], "found": r["detections"],
            "lb_ncnn": r["letterbox_ms"], "lb_runtime": r["runtime_letterbox_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10, help="timed inference runs per call")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--anchors", type=int, default=100, help="anchors passing 0.25 in the realistic case")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tvm_ncnn_bench_detect"))
    args = ap.parse_args()
    for exe in (DEPLOY_APP, NATIVE):
        if not exe.exists():
            sys.exit(f"bench_detect: {exe} is missing; build first (cmake --build build/host)")
    workdir = Path(args.workdir)
    models = [prepare("realistic", args.anchors, workdir), prepare("worst", None, workdir)]
    obb = [prepare_obb("realistic", args.anchors, workdir), prepare_obb("worst", None, workdir)]
    threads = [int(t) for t in args.threads.split(",")]
    cells = [(t, m, s) for t in threads for m in models for s in ("model.so", "native")]
    cells += [(t, m, "model.so") for t in threads for m in obb]
    got: dict[tuple, list[dict]] = {(t, m["case"], s): [] for t, m, s in cells}
    print(f"# {machine_load()}; {args.rounds} rounds x {len(cells)} cells, --repeat {args.repeat}", flush=True)
    rng = random.Random(0)
    for r in range(args.rounds):
        rng.shuffle(cells)  # a different order each round: no cell always runs right after a busy one
        for t, m, s in cells:
            got[(t, m["case"], s)].append(measure_once(s, m, t, args.repeat))
        print(f"# round {r + 1}/{args.rounds} done", flush=True)

    def med(key, t, case, system):
        return statistics.median(x[key] for x in got[(t, case, system)])

    print(f"\nYOLOv8n 640x640, {PHOTO.name} ({machine_load()}); ms are medians over {args.rounds} rounds")
    print("pre: decode + letterbox (one call per run, as deploy_app times it); inf: p50 of the runs; post: "
          "decode + NMS + mapping (median)")
    head = (f"{'thr':>3} {'case':<10} {'pass':>5} {'found':>5} | {'so pre':>7} {'inf':>7} {'post':>6} | "
            f"{'nat pre':>7} {'inf':>7} {'post':>6} | {'post/inf':>8} {'(lb+post)/inf':>13} {'so/native':>9}")
    print(head)
    print("-" * len(head))
    for t in threads:
        for m in models:
            c = m["case"]
            so = [med(k, t, c, "model.so") for k in ("pre", "inf", "post")]
            nat = [med(k, t, c, "native") for k in ("pre", "inf", "post")]
            lb = med("lb_runtime", t, c, "native")
            found = got[(t, c, "model.so")][0]["found"]
            print(f"{t:>3} {c:<10} {m['passing']:>5} {found:>5} | {so[0]:7.2f} {so[1]:7.2f} {so[2]:6.2f} | "
                  f"{nat[0]:7.2f} {nat[1]:7.2f} {nat[2]:6.2f} | {so[2] / so[1]:8.2%} {(lb + so[2]) / so[1]:13.2%} "
                  f"{sum(so) / sum(nat):9.3f}")
    print("\nYOLO11n-obb 640x640 (ultralytics' own ONNX, no flags), model.so: decode + rotated NMS (ProbIoU) + "
          "mapping")
    for t in threads:
        for m in obb:
            so = [med(k, t, m["case"], "model.so") for k in ("pre", "inf", "post")]
            found = got[(t, m["case"], "model.so")][0]["found"]
            print(f"{t:>3} {m['case']:<14} {m['passing']:>5} {found:>5} | pre {so[0]:6.2f}  inf {so[1]:7.2f}  "
                  f"post {so[2]:6.2f} | post/inf {so[2] / so[1]:6.2%}")
    print("\nletterbox alone (decoding apart), median ms: runtime PreprocessImage vs ncnn from_pixels_resize + "
          "copy_make_border + normalize")
    for t in threads:
        lbr = statistics.median(x["lb_runtime"] for m in models for x in got[(t, m["case"], "native")])
        lbn = statistics.median(x["lb_ncnn"] for m in models for x in got[(t, m["case"], "native")])
        print(f"  {t} thread(s): runtime {lbr:.2f}, ncnn {lbn:.2f} (x{lbr / lbn:.2f})")
    print("pass: anchors whose best class passes 0.25; found: detections after NMS (max 300). so/native: "
          "(pre + inf + post) of model.so over native ncnn's, same photo, same Detect.")


if __name__ == "__main__":
    main()
