"""One build of an export: the partitioned module -> ncnn modules (int8 where a plan says) -> tvm.compile with the
default schedules (tuned ones where a database says) -> metadata -> one sealed (and signed) model.so. export()
(exporter/api.py) runs it once, or for int8 also for the fp32 model calibration runs on."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import tvm

from .. import __version__
from ..compile import runtime_functions, schedules
from ..compile.direct import direct_region
from ..compile.lower import generated
from ..compile.targets import DeviceTarget
from ..errors import ModelError
from ..format import signing
from ..frontend.importer import Imported
from ..meta.preprocess import Preprocess
from ..ncnn.quantize import Plan
from ..partition.placement import PartitionReport
from ..runtime import native
from . import verify, weights_section


@dataclass
class Prepared:
    """What every build of one export shares: the model imported and partitioned once, and what model.so
    records about it."""
    imported: Imported
    mod: tvm.IRModule  # ncnn regions partitioned out, not generated yet
    placement: PartitionReport
    labels: list[str]
    preprocess: Preprocess
    postprocess: dict | None  # how Detect reads the outputs (runtime/src/detect/)
    sources: dict | None = None  # where preprocess and postprocess came from (exporter/preprocessing.py), for inspect
    reference: verify.Reference | None = None  # what the build is checked against; None: not checked


def build(prepared: Prepared, device: DeviceTarget, path: str, precision: str, int8: Plan | None = None,
          int8_record: dict | None = None, tuning: str | None = None, sign=None) -> tuple[str, dict | None]:
    """Write model.so at `path`: (the signer's fingerprint or "", each TVM function's schedule)."""
    mod = generated(prepared.mod, int8, prepared.imported.probes())
    try:  # fused and scheduled (never worse than unscheduled); tuned where the tuning database says
        executable, report = schedules.build(mod, device.tvm_target(), tuning)
    except Exception as err:
        raise ModelError(f"{prepared.imported.source}: TVM could not compile the part left to it: "
                         f"{err}".splitlines()[0]) from err
    # never a model that cannot run, nor one that computes wrong
    runtime_functions.check(executable, prepared.imported.source, native.library_path())
    if prepared.reference is None:
        checked = {"result": "skipped", "why": "--no-verify"}
    elif device.cross:
        checked = {"result": "skipped", "why": f"a {device.name} model does not run here"}
    else:
        checked = verify.check(executable, prepared, prepared.reference, precision)
    metadata = _metadata(prepared, device, precision, int8_record)
    direct = direct_region(mod)
    if direct is not None:  # the runtime calls this region without the VM (FORMAT.md)
        metadata["direct_region"] = direct
    metadata["verify"] = checked
    executable.mod.import_module(native.get_function("tvm_ncnn.meta_module_create")(json.dumps(metadata)))
    return _write_library(executable, path, device, sign), report


def _metadata(prepared: Prepared, device: DeviceTarget, precision: str, int8_record: dict | None) -> dict:
    versions = native.versions()
    metadata = {
        "format_version": int(versions["metadata_format"]),  # the runtime reads this format, and owns it
        "sdk_version": __version__,
        "tvm_version": tvm.__version__,
        "ncnn_version": versions["ncnn"],
        "target": device.name,
        "triple": device.triple,
        "inputs": [s.to_json() for s in prepared.imported.inputs],
        "outputs": [s.to_json() for s in prepared.imported.outputs],
        "preprocess": prepared.preprocess.to_json(),  # mean, std, color, resize (and crop_pct or pad)
        "labels": prepared.labels,
        "ncnn_regions": prepared.placement.regions,
        "partition": prepared.placement.to_json(),
        "precision": precision,  # the runtime applies it (runtime/src/precision.cc)
    }
    if int8_record is not None:
        metadata["int8"] = int8_record  # per-layer precision and scales, for inspect (int8/calibrate.py)
    if prepared.postprocess:
        metadata["postprocess"] = prepared.postprocess
    if prepared.sources:
        metadata["sources"] = prepared.sources  # a report: the runtime does not read it
    return metadata


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
