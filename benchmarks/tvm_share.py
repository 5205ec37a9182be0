"""Models that keep real ops in TVM (ops ncnn has no layer for): how much of model.so's time those TVM
functions take (deploy_app --profile), and model.so against onnxruntime, measured in the same interleaved rounds.

  .venv/bin/python benchmarks/tvm_share.py                 # every net, 1 and 2 threads
  .venv/bin/python benchmarks/tvm_share.py --nets topk_head --threads 1 --rounds 3

The nets are CNNs of realistic size with the kinds of ops that stay in TVM: a cumulative sum (an integral
image), a top-k head, a gather with computed indices, cyclic shifts (which ncnn takes, as slices and a concat)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_APP = ROOT / "build" / "host" / "deploy_app"


def _backbone() -> nn.Sequential:
    layers, c = [], 3
    for out, stride in ((32, 2), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)):
        layers += [nn.Conv2d(c, out, 3, stride, 1), nn.BatchNorm2d(out), nn.ReLU()]
        c = out
    return nn.Sequential(*layers)


class CumsumNet(nn.Module):
    """An integral image of the features (cumulative sums along H and W) between conv stages."""

    def __init__(self):
        super().__init__()
        self.stem, self.head = _backbone(), nn.Conv2d(256, 64, 1)

    def forward(self, x):
        y = self.head(self.stem(x))
        return y.cumsum(2).cumsum(3)


class TopkHead(nn.Module):
    """A classifier that returns its five best classes and their scores."""

    def __init__(self):
        super().__init__()
        self.stem, self.fc = _backbone(), nn.Linear(256, 1000)

    def forward(self, x):
        scores = self.fc(self.stem(x).mean((2, 3))).softmax(1)
        return torch.topk(scores, 5, dim=1)


class GatherNet(nn.Module):
    """Per pixel, the feature of the channel with the highest score: indices computed by the model."""

    def __init__(self):
        super().__init__()
        self.stem, self.score = _backbone(), nn.Conv2d(256, 8, 1)

    def forward(self, x):
        y = self.stem(x)
        index = self.score(y).argmax(1, keepdim=True)
        return torch.gather(y[:, :8], 1, index)


class ShiftNet(nn.Module):
    """Cyclic shifts between conv blocks (torch.roll: slices and a concat, which ncnn runs)."""

    def __init__(self):
        super().__init__()
        self.stem, self.mix = _backbone(), nn.Conv2d(256, 256, 3, 1, 1)

    def forward(self, x):
        y = self.stem(x)
        return self.mix(torch.roll(y, 1, 3) + torch.roll(y, -1, 2))


NETS = {"cumsum_net": CumsumNet, "topk_head": TopkHead, "gather_net": GatherNet, "shift_net": ShiftNet}


def _export(name: str, work: Path):
    import tvm_ncnn
    from tvm_ncnn import zoo

    torch.manual_seed(0)
    net = NETS[name]().eval()
    onnx_path = zoo.to_onnx(net, str(work / f"{name}.onnx"), (1, 3, 224, 224))
    result = tvm_ncnn.export(onnx_path, work / f"{name}.so")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    np.save(work / f"{name}.npy", x)
    return onnx_path, result


def _deploy_app(so: Path, npy: Path, threads: int, repeat: int, profile: bool = False) -> dict:
    cmd = [str(DEPLOY_APP), str(so), str(npy), "--threads", str(threads), "--repeat", str(repeat), "--json"]
    out = subprocess.run(cmd + (["--profile"] if profile else []), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _onnxruntime_p50(onnx_path: str, x: np.ndarray, threads: int, repeat: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    session.run(None, {"input": x})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, {"input": x})
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per system per round")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tvm_ncnn_share_"))
    print(f"{'net':12s} {'thr':>3s} {'model.so ms':>11s} {'ort ms':>8s} {'x ort':>6s} {'TVM share':>9s}  "
          f"{'ncnn regions':>12s}  ops left to TVM")
    for name in args.nets.split(","):
        onnx_path, result = _export(name, work)
        x = np.load(work / f"{name}.npy")
        left = sorted({o.op.removeprefix("relax.") for o in result.report.ops if o.place == "tvm"})
        for threads in [int(t) for t in args.threads.split(",")]:
            ours, theirs = [], []
            for _ in range(args.rounds):  # interleaved: a burst of load moves one round of both, not one system
                ours.append(_deploy_app(Path(result.path), work / f"{name}.npy", threads, args.repeat)["p50_ms"])
                theirs.append(_onnxruntime_p50(onnx_path, x, threads, args.repeat))
            profile = _deploy_app(Path(result.path), work / f"{name}.npy", threads, args.repeat, profile=True)
            tvm = sum(row["share"] for row in profile["profile"] if row["kind"] == "tvm")
            ratio = statistics.median(a / b for a, b in zip(ours, theirs))
            print(f"{name:12s} {threads:3d} {statistics.median(ours):11.2f} {statistics.median(theirs):8.2f} "
                  f"{ratio:6.2f} {100 * tvm:8.1f}%  {result.report.regions:12d}  {', '.join(left) or '-'}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
