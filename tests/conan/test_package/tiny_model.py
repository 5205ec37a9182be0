"""The test package's model: a tiny Relax network exported with the tvm-ncnn SDK, and its reference.

    tiny_model.py make OUT_DIR [--target host|aarch64|rpi4|rpi5] [--runtime-lib LIB]
        writes OUT_DIR/model.so, OUT_DIR/input.npy and OUT_DIR/expected.npy
    tiny_model.py check OUTPUT.npy EXPECTED.npy
        exits 0 when the runtime's output matches the reference

Run with the Python that has the SDK (the checkout's .venv/bin/python). The network mixes ncnn regions
with an op left to TVM (erf: ncnn has no layer for it), so the app runs ncnn and TVM-compiled code in one Relax
VM call.
The reference is plain numpy in float64, written here independently of TVM and ncnn.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

SHAPE = (1, 3, 16, 16)


def weights():
    rng = np.random.default_rng(20261020)
    f32 = lambda *s, scale=0.3: (rng.standard_normal(s) * scale).astype("float32")  # noqa: E731
    return {"w1": f32(8, 3, 3, 3), "b1": f32(8), "w2": f32(8, 8, 3, 3), "b2": f32(8),
            "w3": f32(8, 10), "b3": f32(10)}


def relax_module(p):
    """conv3x3+bias+relu -> erf -> conv3x3/2+bias+relu -> global mean -> dense+bias -> softmax."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType(SHAPE, "float32"))
    c = relax.const
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, c(p["w1"]), padding=(1, 1)))
            y = bb.emit(relax.op.nn.relu(relax.op.add(y, c(p["b1"].reshape(1, 8, 1, 1)))))
            y = bb.emit(relax.op.erf(y))
            y = bb.emit(relax.op.nn.conv2d(y, c(p["w2"]), strides=(2, 2), padding=(1, 1)))
            y = bb.emit(relax.op.nn.relu(relax.op.add(y, c(p["b2"].reshape(1, 8, 1, 1)))))
            y = bb.emit(relax.op.mean(y, axis=[2, 3]))
            y = bb.emit(relax.op.add(relax.op.matmul(y, c(p["w3"])), c(p["b3"].reshape(1, 10))))
            out = bb.emit_output(relax.op.nn.softmax(y, axis=-1))
        bb.emit_func_output(out)
    return bb.get()


def conv2d(x, w, b, stride, pad):
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def reference(x, p):
    p = {k: v.astype("float64") for k, v in p.items()}
    y = np.maximum(conv2d(x.astype("float64"), p["w1"], p["b1"], 1, 1), 0)
    y = np.vectorize(math.erf)(y)
    y = np.maximum(conv2d(y, p["w2"], p["b2"], 2, 1), 0)
    y = y.mean(axis=(2, 3)) @ p["w3"] + p["b3"]
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def make(out_dir, target, runtime_lib):
    if runtime_lib:  # the runtime library the SDK loads to write the ncnn modules into model.so
        os.environ["TVM_NCNN_RUNTIME_LIB"] = runtime_lib
    import tvm_ncnn

    os.makedirs(out_dir, exist_ok=True)
    p = weights()
    x = np.random.default_rng(7).uniform(-1, 1, SHAPE).astype("float32")
    result = tvm_ncnn.export(relax_module(p), os.path.join(out_dir, "model.so"), target=target)
    print(result.report.table())
    if result.report.regions < 1:
        sys.exit("tiny_model: the export made no ncnn region, so the test would not exercise ncnn")
    np.save(os.path.join(out_dir, "input.npy"), x)
    np.save(os.path.join(out_dir, "expected.npy"), reference(x, p).astype("float32"))
    print(f"tiny_model: wrote model.so ({target}, {result.report.regions} ncnn region(s)), input.npy, "
          f"expected.npy in {out_dir}")


def check(output, expected):
    got, ref = np.load(output), np.load(expected)
    if got.shape != ref.shape:
        sys.exit(f"tiny_model: output shape {got.shape}, expected {ref.shape}")
    err = float(np.abs(got.astype("float64") - ref).max())
    tol = 1e-4 * float(np.abs(ref).max()) + 1e-6
    print(f"tiny_model: max abs error {err:.3g} (tolerance {tol:.3g}), argmax {int(got.argmax())} "
          f"(expected {int(ref.argmax())})")
    if not err <= tol or got.argmax() != ref.argmax():
        sys.exit("tiny_model: the output does not match the numpy reference")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out_dir")
    m.add_argument("--target", default="host")
    m.add_argument("--runtime-lib", default="")
    c = sub.add_parser("check")
    c.add_argument("output")
    c.add_argument("expected")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.out_dir, a.target, a.runtime_lib)
    else:
        check(a.output, a.expected)


if __name__ == "__main__":
    main()
