"""export(): import -> partition -> ncnn codegen -> tvm.compile -> one self-contained model.so. Everything a user can
get wrong is checked before the slow steps; int8 calibrates on an fp32 build first (int8/calibrate.py) and hands
the plan to the one build step (build.py)."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass

from ..compile.lower import TvmFallbackWarning, partitioned
from ..compile.targets import DeviceTarget, get_target
from ..compile.tuning_db import check_tuning_dir
from ..errors import ModelError
from ..format import signing
from ..frontend.importer import import_model
from ..int8 import calibrate
from ..int8.accuracy import compare, report_text
from ..meta.postprocess import Task
from ..meta.precision import check_export
from ..meta.preprocess import Preprocess
from ..ncnn.codegen import region_graphs
from ..partition.placement import PartitionReport
from ..runtime import native
from ..runtime.model import load
from . import preprocessing, tasks
from .build import Prepared, build
from .verify import reference_for

__all__ = ["export", "ExportResult", "Preprocess", "TvmFallbackWarning"]


@dataclass
class ExportResult:
    path: str
    target: str
    report: PartitionReport
    seconds: float
    schedules: dict | None = None  # TVM function -> the default schedule it got (compile/schedules.py)
    signer: str = ""  # fingerprint of the key that signed model.so (sign=), "" when unsigned
    int8: dict | None = None  # precision int8: the calibration, per-layer and accuracy report (int8/calibrate.py)
    recorded: dict | None = None  # {"preprocess": ..., "postprocess": ..., "sources": ...} as model.so records them


def export(model, path, target: str = "host", input_shapes: dict | None = None, labels=None,
           preprocess: Preprocess | None = None, offload: bool = True, example_inputs=None,
           precision: str | None = None, task: Task | str | None = None, sign=None,
           tuning=None, calibration=None, verify: bool = True) -> ExportResult:
    """Export `model` (see frontend.importer.import_model for what it accepts) to one model.so for `target`.
    precision (meta/precision.py): "fp16" (None, the default: ncnn's fp16 kernels where the CPU has fp16
    arithmetic, fp32 elsewhere), "fp32", or "int8" with calibration= (a directory, or calibrate.Calibration).
    task (meta/postprocess.py): what the outputs mean ("detect", Task(...)); None: recognised where certain.
    sign: a private key file (tvm-ncnn keygen) whose Ed25519 signature is appended (format/signing.py).
    tuning: a directory `tvm-ncnn tune` wrote for this target: its tuned schedules replace the defaults.
    verify: check the build against onnxruntime / torch / TVM alone on a random input and refuse a model that
    computes other values (exporter/verify.py); False writes it unchecked, and the metadata says so."""
    start = time.perf_counter()
    precision = check_export(precision)
    if calibration is not None and precision != "int8":
        raise ModelError(f"calibration is for precision int8, not {precision}")
    if precision == "int8" and calibration is None:
        raise ModelError("precision int8 needs calibration data: --calibration DIR (Python: calibration=DIR), "
                         "images or .npy tensors like the model's inputs")
    native.library_path()  # fail before the slow steps when the runtime library is missing
    device = get_target(target)
    path = os.fspath(path)
    _check_writable(path)
    if sign is not None:
        signing.read_secret_key(sign)  # a missing or unprotected key fails before the slow steps
    if tuning is not None:
        tuning = check_tuning_dir(tuning, device)  # a dir tuned for another target fails here, in one line
    calibration = calibrate.as_calibration(calibration) if calibration is not None else None
    labels = _read_labels(labels)
    imported = import_model(model, input_shapes, example_inputs)
    if imported.sizes and calibration is not None:
        names = ", ".join(f"{d.input}:{d.name}" for d in imported.sizes.dims)
        raise ModelError(f"{imported.source}: int8 calibrates at fixed sizes, and {names} are dynamic: export int8 "
                         f"with fixed sizes (--input NAME:1,3,640,640)")
    postprocess, labels, post_source = tasks.resolve(model, imported, task, labels)  # labels may come with it
    # An ultralytics model says its own; a dynamic input's rule gets its sizes (the inputs' "dynamic" metadata).
    preprocess, sources = preprocessing.resolve(model, preprocess, [s.to_json() for s in imported.inputs])
    if postprocess:
        sources["postprocess"] = post_source
    _check_labels(labels, imported.outputs)
    mod, placement = partitioned(imported, offload)
    fallback = placement.tvm_warning() if offload else None
    if fallback:
        warnings.warn(fallback, TvmFallbackWarning, stacklevel=2)
    reference = reference_for(model, imported) if verify else None
    prepared = Prepared(imported, mod, placement, labels, preprocess, postprocess, sources, reference)
    recorded = {"preprocess": preprocess.to_json(), "postprocess": postprocess, "sources": sources}
    if calibration is not None:
        result = _export_int8(prepared, device, path, calibration, tuning, sign, start)
    else:
        signer, schedules = build(prepared, device, path, precision, tuning=tuning, sign=sign)
        result = ExportResult(path, target, placement, time.perf_counter() - start, schedules, signer)
    result.recorded = recorded
    return result


def _export_int8(prepared: Prepared, device: DeviceTarget, path: str, c: calibrate.Calibration, tuning, sign,
                 start: float) -> ExportResult:
    """fp32 build for this machine -> calibrate on it -> the int8 build -> accuracy against fp32 on the held-out
    files, run here: the exported model.so, or for another target the same plan built for this machine (ncnn's
    x86 and ARM int8 kernels differ only in rounding)."""
    files, held = calibrate.split_files(c.data, c.held_out)
    regions = region_graphs(prepared.mod)
    host = get_target("host")
    with tempfile.TemporaryDirectory(prefix="tvm_ncnn_int8_") as tmp:
        fp32_path = os.path.join(tmp, "fp32.so")
        build(prepared, host, fp32_path, "fp32")  # the reference: no signing or tuning
        fp32 = load(fp32_path, precision="fp32")
        plan, summary = calibrate.calibrate(c, regions, fp32, files, len(held))
        record = {**summary, "layers": plan.layers({s: r.graph for s, r in regions.items()})}
        signer, schedules = build(prepared, device, path, "int8", plan, record, tuning, sign)
        host_path = path
        if device.name != "host":
            host_path = os.path.join(tmp, "int8_host.so")
            build(prepared, host, host_path, "int8", plan, record)
        held_inputs = [calibrate.read_input(fp32, f) for f in held]
        accuracy = compare(fp32, load(host_path, precision="fp32"), held_inputs)
    text = report_text(accuracy) + "\n" + calibrate.layers_text(record["layers"], summary["min_cosine"])
    return ExportResult(path, device.name, prepared.placement, time.perf_counter() - start, schedules, signer,
                        {**record, "accuracy": accuracy, "text": text})


def _check_writable(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory; give the output file name, e.g. {path.rstrip('/')}/model.so")
    if not os.path.isdir(directory):
        raise ModelError(f"{path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ModelError(f"{path}: cannot write in {directory} (permission denied)")


def _read_labels(labels) -> list[str]:
    if labels is None:
        return []
    if isinstance(labels, (str, os.PathLike)):
        try:
            with open(labels, encoding="utf-8") as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except OSError as err:
            raise ModelError(f"{labels}: cannot read labels ({err.strerror})") from None
    return [str(label) for label in labels]


def _check_labels(labels: list[str], outputs) -> None:
    """Labels name the classes of the first output, the one deploy_app and `tvm-ncnn run` score: a count that
    differs would print blank names for every class. Checked where that output is a vector of classes ([1, N],
    [1, N, 1, 1]); other outputs (a detector's boxes and scores) keep their labels for the application."""
    if not labels or not outputs:
        return
    shape = list(outputs[0].shape)
    dims = shape[1:] if len(shape) > 1 else shape
    if sum(d != 1 for d in dims) > 1:
        return
    classes = int(max(dims, default=1))
    if len(labels) != classes:
        raise ModelError(f"{len(labels)} labels, but output '{outputs[0].name}' "
                         f"[{','.join(map(str, shape))}] has {classes} classes: give one label per class, one a line")
