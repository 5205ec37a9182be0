"""Regions that would only move data TVM computed go back to TVM.

An ncnn region costs a copy of its inputs into ncnn Mats and of its outputs back. A region of reshapes and
concats between TVM ops computes nothing: ncnn would copy TVM's values in and out to rearrange them, where TVM
reshapes for free (a view) and concatenates a few hundred values in one pass. YOLOv10's NMS-free head left two
such regions among its top-k and gather-elements (a reshape between the two top-ks, the final concat). A region
fed by a model input, or holding any op that computes, stays in ncnn.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..relax_util import bindings, bound_calls, plain_region, region_ops

MOVES = {"relax.reshape", "relax.expand_dims", "relax.squeeze", "relax.flatten", "relax.concat",
         "relax.split", "relax.permute_dims"}
REASON = "only moves data TVM computed: an ncnn region would copy it in and out"


def computed_by_tvm(arg, bound: dict, is_region) -> bool:
    """arg is a value main computes in TVM: bound to an op call or a tuple item of one, not an ncnn region's
    output, a model input or a constant."""
    value = bound.get(arg)
    if isinstance(value, relax.TupleGetItem):
        value = bound.get(value.tuple_value)
    return isinstance(value, relax.Call) and not (isinstance(value.op, tvm.ir.GlobalVar) and is_region(value.op))


def moves_tvm_data(call: relax.Call, bound: dict, is_region) -> bool:
    """call is a data-movement op whose every input variable (a concat's tuple fields too) TVM computed: what a
    copy-only region left behind, for the report."""
    if getattr(call.op, "name", "") not in MOVES:
        return False
    inputs = [f for a in call.args for f in (a.fields if isinstance(a, relax.Tuple) else [a])
              if isinstance(f, relax.Var)]
    return bool(inputs) and all(computed_by_tvm(v, bound, is_region) for v in inputs)


def copy_only_regions(mod: tvm.IRModule, regions: list) -> set:
    """The regions (of `regions`, global vars) that only move data TVM computed."""
    bound = bindings(mod["main"])
    region_set = set(regions)
    found = set()
    for call in bound_calls(mod["main"]).values():
        if call.op not in region_set:
            continue
        ops = region_ops(mod[call.op])
        if ops and all(getattr(o.op, "name", "") in MOVES for o in ops) \
                and all(computed_by_tvm(a, bound, region_set.__contains__) for a in call.args):
            found.add(call.op)
    return found


def to_tvm(mod: tvm.IRModule, regions: list) -> tvm.IRModule:
    """mod with its copy-only regions inlined into main as plain Relax ops (TVM runs them): each becomes a private
    plain function, which InlinePrivateFunctions inlines (the other regions keep their symbols, so stay calls)."""
    demoted = copy_only_regions(mod, regions)
    if not demoted:
        return mod
    bb = relax.BlockBuilder(mod)
    for gv in demoted:
        bb.update_func(gv, plain_region(bb, mod[gv], gv.name_hint))
    inlined = relax.transform.InlinePrivateFunctions()(bb.get())
    return relax.transform.DeadCodeElimination(["main"])(inlined)
