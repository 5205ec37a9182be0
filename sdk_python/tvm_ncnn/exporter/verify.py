"""Export checks what it built before it writes model.so: the compiled model (its ncnn regions and TVM code, run
in this process) and an independent reference -- onnxruntime for an ONNX model, torch for a torch model, TVM
without offload otherwise -- run the same random input, and every output must agree. On a mismatch it names the
first ncnn region that computes other values than TVM on the very inputs ncnn got (the runtime's probe copies
each region's inputs and outputs; compile/region_reference.py compiles the regions with TVM), with its ops and
layers, and refuses the export in one line. A converter that is wrong on an architecture nobody tested is then
an error at export, never a silent wrong answer on the device.

The check runs where the model can run: a model for this machine, or the fp32 twin an int8 export builds (the
int8 model itself is held to fp32 by its accuracy report). Its result is recorded in model.so's metadata
("verify", runtime/FORMAT.md) and shown by inspect."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tvm
from tvm import relax

from ..compile.region_reference import RegionRunner, flat
from ..errors import ModelError
from ..ncnn.codegen import region_graphs
from ..partition.regions import for_ncnn
from ..relax_util import calls_in
from ..runtime import native

TOLERANCE = 1e-3  # largest absolute error over max |reference| (fp32 ncnn against fp32 references: ~1e-6)
INTEGER_AGREEMENT = 0.99  # integer outputs (indices, classes): the share that must be equal (ties may flip)
SEED = 20261206
# Ops whose output jumps with the last bit of a tie: outputs after them are not compared on random inputs.
SELECTING = ("relax.topk", "relax.argmax", "relax.argmin", "relax.argsort", "relax.sort", "relax.nonzero",
             "relax.unique")


@dataclass
class Reference:
    name: str
    run: Callable[[list[np.ndarray]], list[np.ndarray]]


def reference_for(model, imported) -> Reference:
    """The independent reference for `model` as export was given it."""
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    if (path and path.endswith(".onnx")) or type(model).__name__ == "ModelProto":
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            data = path if path else model.SerializeToString()
            return Reference("onnxruntime", lambda xs: _onnxruntime(ort, data, xs))
    torch_module = _torch_module(model, path)
    if torch_module is not None:
        return Reference("torch", lambda xs: _torch(torch_module, xs))
    return Reference("TVM without offload", lambda xs: _tvm_alone(imported.mod, xs))


def check(executable, prepared, reference: Reference, precision: str) -> dict:
    """The "verify" record for the metadata, or ModelError in one line when the model computes wrong."""
    if precision == "int8":
        return {"result": "skipped", "why": "int8 is held to fp32 by its accuracy report"}
    if any(np.dtype(s.dtype).kind != "f" for s in prepared.imported.inputs):
        # Integer inputs are indices or divisors whose valid values a random input cannot know, and the check
        # runs in this process: zeros would divide by zero, anything else may index out of range.
        return {"result": "skipped", "why": "integer inputs"}
    imported = prepared.imported
    selecting = sorted({c.op.name for c in calls_in(imported.mod["main"])
                        if isinstance(c.op, tvm.ir.Op) and c.op.name in SELECTING})
    if selecting and imported.sizes:
        return {"result": "skipped", "why": f"it selects ({', '.join(selecting)}): ties on a random input"}
    runnable = _copy(executable)  # the executable itself is written into model.so afterwards
    if selecting:
        # A random input gives a random-weight head near-equal scores: which of them top-k or argmax keeps then
        # turns on the last bit, and two right models disagree on whole rows. What can still be checked is the
        # converter: each ncnn region against TVM on the very inputs it got.
        worst, wrong = _regions_against_tvm(runnable, prepared, random_inputs(imported.inputs))
        if wrong:
            raise ModelError(f"{imported.source}: {wrong}; export with --no-offload, or --no-verify to write it "
                             f"anyway")
        return {"result": "passed", "reference": "TVM, region by region", "inputs": 1, "max_error": worst,
                "why": f"it selects ({', '.join(selecting)}): ties on a random input, so each ncnn region is held "
                       f"to TVM on its own inputs"}
    worst, where, sizes = 0.0, "", []
    # a dynamic model at both of the sizes partition probed (frontend/dynamic.py): two sizes, two shapes
    for k in range(len(imported.probes() or [None])):
        specs = imported.at_probe(k)
        inputs = random_inputs(specs)
        got = run_executable(runnable, inputs)
        try:
            expected = reference.run(inputs)
        except Exception as err:  # noqa: BLE001 -- a reference that cannot run is no evidence either way
            return {"result": "skipped", "why": f"{reference.name} could not run it: {err}".splitlines()[0][:200]}
        if len(expected) != len(got):  # zip would compare a prefix and call it checked
            return {"result": "skipped",
                    "why": f"{reference.name} gives {len(expected)} outputs, the model {len(got)}"}
        sizes.append([list(s.shape) for s in specs])
        for spec, a, b in zip(imported.outputs, got, expected):
            error = output_error(a, b)
            if error > worst:
                worst, where = error, spec.name
        if worst > TOLERANCE:
            culprit = _culprit(runnable, prepared, inputs, expected)
            at = f" at input shape {sizes[-1]}" if imported.sizes else ""
            raise ModelError(f"{imported.source}: model.so's output '{where}' differs from {reference.name}'s by "
                             f"{worst:.3g} x max|ref| on a random input{at}; {culprit}; export with --no-offload, "
                             f"or --no-verify to write it anyway")
    record = {"result": "passed", "reference": reference.name, "inputs": len(sizes), "max_error": worst}
    if imported.sizes:
        record["shapes"] = sizes
    return record


def random_inputs(specs) -> list[np.ndarray]:
    """One standard normal input per (float) model input."""
    rng = np.random.default_rng(SEED)
    return [rng.standard_normal(s.shape).astype(s.dtype) for s in specs]


def run_executable(executable, inputs: list[np.ndarray]) -> list[np.ndarray]:
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return [o.numpy() for o in flat(vm["main"](*(tvm.runtime.tensor(x) for x in inputs)))]


def _copy(executable):
    """A copy of the executable's VM part (its code modules shared) to run, made once per check: a VM started on an
    executable adds an entry per constant to its memory scopes, which model.so would then carry, and TVM logs a
    warning for each, at export and at every load."""
    with tempfile.TemporaryDirectory(prefix="tvm_ncnn_verify_") as tmp:
        path = os.path.join(tmp, "vm.bin")
        executable.mod.write_to_file(path, "")
        fresh = tvm.get_global_func("ffi.Module.load_from_file.relax.VMExecutable")(path)
    for module in executable.mod.imports:
        fresh.import_module(module)
    return tvm.runtime.Executable(fresh)


def output_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest absolute error over max |ref| where the reference is finite (random inputs may take a log or a
    square root out of its domain in both), or the share of integers that differ; inf for another shape."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        return float("inf")
    if ref.dtype.kind != "f":
        disagree = float(np.mean(got != ref)) if ref.size else 0.0
        return 0.0 if disagree <= 1 - INTEGER_AGREEMENT else disagree
    finite = np.isfinite(ref)
    if not finite.any():
        return 0.0
    a, b = got[finite].astype(np.float64), ref[finite].astype(np.float64)
    scale = max(float(np.abs(b).max()), 1e-6)
    return float(np.abs(a - b).max() / scale) if np.isfinite(a).all() else float("inf")


def _culprit(executable, prepared, inputs, expected) -> str:
    """What computes wrong: the value-preserving rewrites before partitioning (the rewritten model alone in TVM
    already differs), or the first ncnn region, in run order, whose outputs differ from TVM's on the inputs ncnn
    got."""
    if prepared.imported.sizes:  # the probe below reads each region at its recorded (static) shapes
        return "export it at fixed sizes (--input NAME:1,3,640,640) to find the ncnn region that differs"
    rewritten = _tvm_alone(for_ncnn(prepared.imported.mod), inputs)
    if max(output_error(a, b) for a, b in zip(rewritten, expected)) > TOLERANCE:
        return ("the Relax rewrites before partitioning (frontend/rewrites.py, unit_batch.py) change its values: "
                "the rewritten model alone in TVM differs too")
    if not prepared.placement.regions:
        return "there is no ncnn region: the difference is TVM's"
    _, wrong = _regions_against_tvm(executable, prepared, inputs)
    return wrong or "every ncnn region matches TVM on its own inputs: the difference is in the part TVM compiles"


def _regions_against_tvm(executable, prepared, inputs) -> tuple[float, str]:
    """(largest error of a region's outputs against TVM on the inputs ncnn got, the first wrong region in run order
    with its ops and layers -- "" when none is)."""
    regions = region_graphs(prepared.mod)
    if not regions:
        return 0.0, ""
    keys = [f"{s}/{b}" for s, r in regions.items() for b in r.inputs + r.outputs]
    native.get_function("tvm_ncnn.probe_start")(keys)
    try:
        run_executable(executable, inputs)
        taken = {str(k): np.from_dlpack(v).copy() for k, v in native.get_function("tvm_ncnn.probe_take")().items()}
    finally:
        native.get_function("tvm_ncnn.probe_stop")()
    tvm_regions = RegionRunner(prepared.mod)
    worst = 0.0
    for symbol in sorted(regions, key=lambda s: int(s.rpartition("_")[2] or 0)):
        region = regions[symbol]
        if any(f"{symbol}/{b}" not in taken for b in region.inputs + region.outputs):
            continue  # not run for this input
        ins = [taken[f"{symbol}/{b}"].reshape(shape) for b, shape in zip(region.inputs, region.input_shapes)]
        expected = tvm_regions(symbol, ins)
        got = [taken[f"{symbol}/{b}"].reshape(np.shape(e)) for b, e in zip(region.outputs, expected)]
        error = max(output_error(g, e) for g, e in zip(got, expected))
        worst = max(worst, error)
        if error > TOLERANCE:
            index = symbol.rpartition("_")[2]
            ops = sorted({o.op for o in prepared.placement.ops if o.place == f"ncnn:{index}"})
            layers = Counter(layer.type for layer in region.graph.layers if layer.type != "Input")
            return worst, (f"ncnn region {symbol} computes other values than TVM on the same inputs ({error:.3g} x "
                           f"max|ref|; ops {', '.join(ops)}; ncnn layers "
                           f"{', '.join(f'{t} x{n}' for t, n in layers.most_common())})")
    return worst, ""


def _onnxruntime(ort, data, inputs: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def _torch_module(model, path: str | None):
    if path and path.endswith(".pt2"):
        import torch

        return torch.export.load(path).module()
    if type(model).__name__ == "ExportedProgram":
        return model.module()
    if hasattr(model, "forward") and hasattr(model, "parameters"):
        return model
    return None


def _torch(module, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in inputs))
    if isinstance(out, dict):
        out = list(out.values())
    items = out if isinstance(out, (list, tuple)) else [out]
    return [t.detach().numpy() if hasattr(t, "detach") else np.asarray(t) for t in flat(items)]


def _tvm_alone(mod, inputs: list[np.ndarray]) -> list[np.ndarray]:
    executable = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    return run_executable(executable, inputs)
