"""A model of the suite in every form the systems take: ONNX, model.so (and the --no-offload one), the pnnx ncnn
graph, a fixed random input and onnxruntime's output for it (the reference every system's output is held to)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def quiet(*streams):
    """pnnx and TVM print from C++: silence the file descriptors themselves (sys.stdout, sys.stderr)."""
    saved = []
    for stream in streams:
        stream.flush()
        saved.append((stream, os.dup(stream.fileno())))
    with open(os.devnull, "w") as devnull:
        for stream, _ in saved:
            os.dup2(devnull.fileno(), stream.fileno())
        try:
            yield
        finally:
            for stream, fd in saved:
                stream.flush()
                os.dup2(fd, stream.fileno())
                os.close(fd)


def prepare(name: str, workdir: Path, tvm_alone: bool, tvm_unscheduled: bool = False) -> dict:
    """ONNX, model.so (+ the --no-offload one, + the same without schedules), the pnnx ncnn graph, the input;
    export times."""
    import torch

    import tvm_ncnn
    from tvm_ncnn import zoo

    safe = name.replace("-", "_")  # pnnx rewrites '-' in file names
    onnx_path = str(workdir / f"{safe}.onnx")
    if name in zoo.MODELS:
        module = zoo.torch_model(name)
        size = zoo.MODELS[name].input_size
        shape = (1, 3, size, size)
        with quiet(sys.stdout):
            zoo.to_onnx(module, onnx_path, shape)
    else:  # the modern families (timm, ultralytics)
        from tvm_ncnn.zoo import modern as zoo_modern

        module, shape = zoo_modern.torch_model(name)
        with quiet(sys.stdout):
            zoo_modern.to_onnx(name, onnx_path)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(workdir / f"{safe}_input.npy", x)
    m = {"name": name, "onnx": onnx_path, "input": str(workdir / f"{safe}_input.npy"), "x": x}

    start = time.perf_counter()
    result = tvm_ncnn.export(onnx_path, str(workdir / f"{safe}.so"))
    m["export_s"] = time.perf_counter() - start
    m["so"] = result.path
    m["regions"] = result.report.regions
    m["ncnn_flops_share"] = result.report.ncnn_flops_share
    m["so_mb"] = os.path.getsize(result.path) / 2**20
    if tvm_alone:
        start = time.perf_counter()
        m["tvm_so"] = tvm_ncnn.export(onnx_path, str(workdir / f"{safe}_tvm.so"), offload=False).path
        m["tvm_export_s"] = time.perf_counter() - start
    if tvm_unscheduled:
        from tvm_ncnn.compile import schedules as tvm_schedules

        start = time.perf_counter()
        saved = os.environ.get(tvm_schedules.ENV)
        os.environ[tvm_schedules.ENV] = "0"  # compile as tvm.compile does, unfused and unscheduled
        try:
            m["tvm_unscheduled_so"] = tvm_ncnn.export(onnx_path, str(workdir / f"{safe}_tvm_unscheduled.so"),
                                                      offload=False).path
        finally:
            if saved is None:
                del os.environ[tvm_schedules.ENV]
            else:
                os.environ[tvm_schedules.ENV] = saved
        m["tvm_unscheduled_export_s"] = time.perf_counter() - start

    start = time.perf_counter()
    if name in zoo.MODELS:
        import pnnx

        pt = str(workdir / f"{safe}_pnnx.pt")
        with quiet(sys.stdout, sys.stderr):
            # fp16=False: the .bin keeps fp32 weights, as model.so does (outputs compare bit-close).
            pnnx.export(module, pt, (torch.from_numpy(x),), fp16=False)
        base = pt[:-len(".pt")]
    else:  # pnnx's torch tracing fails on several of these (YOLO heads); its ONNX route converts them all
        base = zoo_modern.pnnx_from_onnx(onnx_path, shape, workdir / f"{safe}_pnnx")
    m["pnnx_s"] = time.perf_counter() - start
    m["param"], m["bin"] = base + ".ncnn.param", base + ".ncnn.bin"

    import onnxruntime as ort

    m["reference"] = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return m
