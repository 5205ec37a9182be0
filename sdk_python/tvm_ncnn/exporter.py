"""export(): import -> partition -> ncnn codegen -> tvm.compile -> one self-contained model.so."""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass

import tvm
from tvm import relax

from . import __version__, batch, codegen, native, runtime_functions, signing, tasks, tvm_schedules  # noqa: F401  (codegen: relax.ext.ncnn)
from . import weights_section
from . import quantize
from .errors import ModelError
from .int8_export import metadata as int8_metadata
from .frontend import Imported, import_model
from .partition import PartitionReport, partition, report
from .precision import check_export
from .preprocess import Preprocess  # noqa: F401  (tvm_ncnn.Preprocess: export's preprocess= argument)
from .targets import DeviceTarget, get_target


class TvmFallbackWarning(UserWarning):
    """Export put real work in TVM (PartitionReport.tvm_warning says which ops)."""


@dataclass
class ExportResult:
    path: str
    target: str
    report: PartitionReport
    seconds: float
    schedules: dict | None = None  # TVM function -> the default schedule it got (tvm_schedules.py)
    signer: str = ""  # fingerprint of the key that signed model.so (sign=), "" when unsigned
    int8: dict | None = None  # precision int8: the calibration, per-layer and accuracy report (int8_export.py)


def export(model, path, target: str = "host", input_shapes: dict | None = None, labels=None,
           preprocess: Preprocess | None = None, offload: bool = True, example_inputs=None,
           precision: str | None = None, task: tasks.Task | str | None = None, sign=None,
           tuning=None, calibration=None) -> ExportResult:
    """Export `model` (see frontend.import_model for what it accepts) to one model.so for `target`.
    precision (precision.py): "fp16" (None, the default: ncnn's fp16 kernels where the CPU has fp16 arithmetic,
    fp32 elsewhere), "fp32", or "int8".
    task (tasks.py): what the outputs mean ("detect", tasks.Task(...)); None: recognised where certain.
    sign: a private key file (tvm-ncnn keygen) whose Ed25519 signature is appended (signing.py, README "Trust").
    tuning: a directory `tvm-ncnn tune` wrote for this target (tuning.py): its tuned schedules replace the defaults."""
    if precision == "int8" and quantize.current() is None:
        # calibration (a directory, or int8_export.Calibration): fp32 export, calibrate, export again with the
        # int8 plan (int8_export.py). locals() is export's own arguments here, whatever they are.
        args = dict(locals())
        from .int8_export import export_int8

        return export_int8(export, args)
    if calibration is not None and precision != "int8":
        raise ModelError(f"calibration is for precision int8, not {precision or 'fp16'}")
    start = time.perf_counter()
    native.library_path()  # fail before the slow steps when the runtime library is missing
    device = get_target(target)
    path = os.fspath(path)
    _check_writable(path)
    precision = check_export(precision)
    if sign is not None:
        signing.read_secret_key(sign)  # a missing or unprotected key fails before the slow steps
    if tuning is not None:
        from .tuning import check_tuning_dir

        tuning = check_tuning_dir(tuning, device)  # a dir tuned for another target fails here, in one line
    labels = _read_labels(labels)
    imported = import_model(model, input_shapes, example_inputs)
    postprocess, labels = tasks.resolve(model, imported, task, labels)  # a detector's labels may come with it
    _check_labels(labels, imported.outputs)
    mod, placement = tvm_part(imported, offload)
    fallback = placement.tvm_warning() if offload else None
    if fallback:
        warnings.warn(fallback, TvmFallbackWarning, stacklevel=2)
    executable, schedules = _compile(mod, device, imported.source, tuning)
    runtime_functions.check(executable, imported.source, native.library_path())  # never a model that cannot run
    metadata = _metadata(imported, device, labels, preprocess or Preprocess(), placement)
    metadata["precision"] = precision  # the runtime applies it (runtime/src/precision.cc)
    if precision == "int8":
        metadata["int8"] = int8_metadata()  # per-layer precision and scales, for inspect (int8_export.py)
    if postprocess:
        metadata["postprocess"] = postprocess  # how Detect reads the outputs (runtime/src/detect/)
    executable.mod.import_module(native.get_function("tvm_ncnn.meta_module_create")(json.dumps(metadata)))
    signer = _write_library(executable, path, device, sign)
    return ExportResult(path, target, placement, time.perf_counter() - start, schedules, signer)


def tvm_part(imported: Imported, offload: bool = True) -> tuple[tvm.IRModule, PartitionReport]:
    """The module tvm.compile gets: ncnn regions partitioned out and generated (calls of external modules), the
    rest Relax. `tvm-ncnn tune` tunes exactly this module's TIR, so its database matches at export."""
    mod, placement = _partition(imported) if offload else (imported.mod, report(imported.mod))
    mod = relax.transform.RunCodegen()(mod)
    # RunCodegen also records the regions' weights for a const_loader module; ours carry their weights in
    # their own bytes, so that would be a second copy (model.so twice the size, the weights resident twice).
    return mod.without_attr("const_name_to_constant"), placement


def _partition(imported: Imported) -> tuple[tvm.IRModule, PartitionReport]:
    """ncnn regions run one image: a batch N model whose images stay apart is partitioned at batch 1 and run
    once per image (batch.py); any other keeps its batch, in TVM, and export says why."""
    n = batch.batch_of([s.shape for s in imported.inputs])
    if n > 1:
        at_1 = batch.at_batch_one(imported.mod, n)
        mixed = batch.why_images_mix(imported.mod, at_1, n) if at_1 else "it does not compile at batch 1"
        if mixed is None:
            partitioned = partition(at_1)
            placement = report(partitioned)
            if placement.regions:  # without ncnn regions, looping buys nothing: TVM runs batch N at once
                placement.batch_loop = n
                return batch.run_per_image(partitioned, n), placement
        else:
            warnings.warn(f"batch {n} runs in TVM, not once per image in ncnn: {mixed}", TvmFallbackWarning,
                          stacklevel=3)
    partitioned = partition(imported.mod)
    return partitioned, report(partitioned)


def _compile(mod: tvm.IRModule, device: DeviceTarget, source: str, tuning: str | None = None):
    try:  # fused and scheduled (never worse than unscheduled); tuned where the tuning database says
        return tvm_schedules.build(mod, device.tvm_target(), tuning)
    except Exception as err:
        raise ModelError(f"{source}: TVM could not compile the part left to it: {err}".splitlines()[0]) from err


def _write_library(executable, path: str, device: DeviceTarget, sign=None) -> str:
    """Write next to the destination, then rename: a failed export never leaves a half-written model.so."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(fd)
        fcompile = device.linker()
        with tempfile.TemporaryDirectory() as workdir:  # the weights, linked as a section of their own
            addons = weights_section.addons(executable, workdir)
            if fcompile is None:
                executable.export_library(tmp, addons=addons)
            else:
                executable.export_library(tmp, fcompile=fcompile, addons=addons)
        # A checksum of every byte, checked at load: TVM never checks its own code and bytecode in model.so
        native.seal(tmp)
        signer = signing.sign(tmp, sign) if sign is not None else ""  # over the sealed file, before the rename
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o755 & ~umask)  # mkstemp creates 0600; a library is normally world-readable
        os.replace(tmp, path)
        return signer
    except OSError as err:
        raise ModelError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


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


def _metadata(imported: Imported, device: DeviceTarget, labels: list[str], pre: Preprocess,
              placement: PartitionReport) -> dict:
    versions = native.versions()
    return {
        "format_version": int(versions["metadata_format"]),  # the runtime reads this format, and owns it
        "sdk_version": __version__,
        "tvm_version": tvm.__version__,
        "ncnn_version": versions["ncnn"],
        "target": device.name,
        "triple": device.triple,
        "inputs": [s.to_json() for s in imported.inputs],
        "outputs": [s.to_json() for s in imported.outputs],
        "preprocess": pre.to_json(),  # mean, std, color, resize (and crop_pct or pad)
        "labels": labels,
        "ncnn_regions": placement.regions,
        "partition": placement.to_json(),
    }
