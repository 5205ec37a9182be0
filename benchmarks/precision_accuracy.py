"""fp16 against fp32 on the suite, on real photos: each model exported for the Pi at the default precision (fp16)
runs under qemu-aarch64 -cpu cortex-a76 (fp16 arithmetic emulated exactly, so the numbers are a Pi 5's), and is
compared with the same model exported fp32 and run on this host.

    .venv/bin/python benchmarks/precision_accuracy.py --photos DIR [--models a,b] [--per-model N] [--json F]

Per model: top-1 agreement (same class), top-5 agreement (same five classes, any order), the lowest cosine
similarity of the output vectors, and the largest max|fp16 - fp32| / max|fp32| over the photos. Photos: any
JPEG/PNG (DESIGN.md: matplotlib's, scikit-learn's and scikit-image's sample images), preprocessed by the runtime
as each model's metadata says. Needs `bash cmake/build_aarch64.sh`."""

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
APP = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64")) / "tvm-ncnn-aarch64" / "deploy_app"


def compare(got: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    """Agreement of outputs (one vector of class scores per photo) with their fp32 references."""
    top1 = top5 = 0
    cosines, errors = [], []
    for g, r in zip(got, ref):
        g, r = g.astype(np.float64).ravel(), r.astype(np.float64).ravel()
        top1 += int(np.argmax(g) == np.argmax(r))
        top5 += int(set(np.argsort(-g)[:5]) == set(np.argsort(-r)[:5]))
        cosines.append(float(g @ r / max(np.linalg.norm(g) * np.linalg.norm(r), 1e-30)))
        errors.append(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30)))
    n = len(ref)
    return {"images": n, "top1_agreement": top1 / n, "top5_agreement": top5 / n, "min_cosine": min(cosines),
            "max_rel_error": max(errors), "median_rel_error": float(np.median(errors))}


def run_a76(model_so: str, inputs: list[str], work: Path) -> list[np.ndarray]:
    outs = []
    for i, x in enumerate(inputs):
        out = work / f"out{i}.npy"
        proc = subprocess.run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a76", str(APP), model_so,
                               x, "--threads", "1", "--repeat", "0", "--output", str(out), "--json"],
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            sys.exit(f"precision_accuracy: deploy_app failed: {proc.stderr.strip()}")
        ran = json.loads(proc.stdout)["precision"]
        if ran != "fp16":
            sys.exit(f"precision_accuracy: expected fp16 to run on cortex-a76, ran {ran}")
        outs.append(np.load(out))
    return outs


def main() -> int:
    import tvm_ncnn
    from tvm_ncnn import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="a directory of JPEG/PNG photos")
    parser.add_argument("--models", default="efficientnet-lite0,mobilenetv2,resnet18,squeezenet,shufflenetv2")
    parser.add_argument("--per-model", type=int, default=8, help="photos per random-weight model (the pretrained "
                                                                  "EfficientNet-Lite0 gets all of them)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    photos = sorted(str(p) for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            spec = zoo.MODELS[name]
            onnx_path = zoo.to_onnx(zoo.torch_model(name), str(work / f"{name}.onnx"), (1, 3, 224, 224))
            pre = tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std)
            host_so, pi_so = str(work / f"{name}-host.so"), str(work / f"{name}-rpi5.so")
            tvm_ncnn.export(onnx_path, host_so, preprocess=pre, precision="fp32")
            tvm_ncnn.export(onnx_path, pi_so, target="rpi5", preprocess=pre)  # the default: fp16
            host = tvm_ncnn.load(host_so, threads=1)
            chosen = photos if spec.pretrained else photos[:args.per_model]
            inputs, ref = [], []
            for i, photo in enumerate(chosen):
                x = host.load_image(photo)
                inputs.append(str(work / f"x{i}.npy"))
                np.save(inputs[-1], x)
                ref.append(host.single(x))
            row = {"model": name, "pretrained": spec.pretrained, **compare(run_a76(pi_so, inputs, work), ref)}
            rows.append(row)
            print(f"{name:20s} {row['images']:3d} photos  top-1 {100 * row['top1_agreement']:5.1f}%  "
                  f"top-5 {100 * row['top5_agreement']:5.1f}%  min cosine {row['min_cosine']:.6f}  "
                  f"max err {row['max_rel_error']:.2e} (median {row['median_rel_error']:.2e}) x max|fp32|",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
