"""From an imported module to the module tvm.compile gets: the ncnn regions partitioned out (partition/), once per
image for a batch whose images stay apart (partition/batch.py), and generated (ncnn/codegen.py, through
RunCodegen) into calls of external modules; the rest stays Relax for the schedules (compile/schedules.py)."""

from __future__ import annotations

import warnings

import tvm
from tvm import relax

from ..frontend.dynamic import as_shape_checks
from ..frontend.importer import Imported
from ..ncnn import codegen  # registers relax.ext.ncnn, which RunCodegen calls
from ..ncnn.quantize import Plan
from ..partition import batch
from ..partition.placement import PartitionReport
from ..partition.regions import partition, report
from ..relax_util import probing


class TvmFallbackWarning(UserWarning):
    """Export put real work in TVM (PartitionReport.tvm_warning says which ops)."""


def partitioned(imported: Imported, offload: bool = True) -> tuple[tvm.IRModule, PartitionReport]:
    """The module with its ncnn regions as functions annotated Codegen="ncnn" (none with offload off), and the
    placement report. ncnn regions run one image: a batch N model whose images stay apart is partitioned at
    batch 1 and run once per image (batch.py); any other keeps its batch, in TVM, and a warning says why."""
    if not offload:
        return imported.mod, report(imported.mod)
    sizes = imported.probes()
    if sizes:  # dynamic sizes: batch 1, and shapes read at the first probe size (frontend/dynamic.py)
        mod = partition(imported.mod, sizes)
        with probing(sizes[0], sizes):
            return mod, report(mod)
    n = batch.batch_of([s.shape for s in imported.inputs])
    if n > 1:
        at_1 = batch.at_batch_one(imported.mod, n)
        mixed = batch.why_images_mix(imported.mod, at_1, n) if at_1 else "it does not compile at batch 1"
        if mixed is None:
            mod = partition(at_1)
            placement = report(mod)
            if placement.regions:  # without ncnn regions, looping buys nothing: TVM runs batch N at once
                placement.batch_loop = n
                return batch.run_per_image(mod, n), placement
        else:
            warnings.warn(f"batch {n} runs in TVM, not once per image in ncnn: {mixed}", TvmFallbackWarning,
                          stacklevel=3)
    mod = partition(imported.mod)
    return mod, report(mod)


def generated(mod: tvm.IRModule, int8: Plan | None = None, sizes: list[dict] | None = None) -> tvm.IRModule:
    """RunCodegen: each region becomes an ncnn module (its layers int8 where the plan says). RunCodegen also
    records the regions' weights for a const_loader module; ours carry their weights in their own bytes, so
    that would be a second copy (model.so twice the size, the weights resident twice). sizes: a dynamic
    model's probe sizes; its regions are written at the first (partition checked they are the same at each)."""
    options = {codegen.CODEGEN: {"int8_plan": int8.to_json()}} if int8 is not None else None
    with probing(sizes[0] if sizes else None, sizes):
        mod = relax.transform.RunCodegen(options)(mod)
    return as_shape_checks(mod.without_attr("const_name_to_constant"))


def tvm_part(imported: Imported, offload: bool = True) -> tuple[tvm.IRModule, PartitionReport]:
    """The module tvm.compile gets for an fp32/fp16 export. `tvm-ncnn tune` tunes exactly this module's TIR, so
    its database matches at export."""
    mod, placement = partitioned(imported, offload)
    return generated(mod, sizes=imported.probes()), placement
