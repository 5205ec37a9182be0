"""Partition a Relax module: ncnn takes every maximal run of ops it can execute (one region each), TVM keeps
the rest; and the report that says, op by op, where each runs and why not ncnn."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ncnn.codegen import convert_region
from ..ncnn.ops import ncnn_patterns, why_not
from .placement import OpPlacement, PartitionReport  # noqa: F401  (PartitionReport: re-exported)
from ..errors import ModelError
from ..frontend.dynamic import VIEW_SUFFIX
from ..relax_util import bindings, bound_calls, calls_in, probing, region_ops, shape_of
from ..frontend.rewrites import simplify_for_ncnn
from ..frontend.unit_batch import restore_unit_batch
from . import copy_only


def for_ncnn(mod: tvm.IRModule) -> tvm.IRModule:
    """The value-preserving rewrites partitioning starts with, so that ncnn takes more of the model."""
    return restore_unit_batch(simplify_for_ncnn(mod))


def partition(mod: tvm.IRModule, sizes: list[dict] | None = None) -> tvm.IRModule:
    """sizes: a model with dynamic sizes partitions at its probe sizes (frontend/dynamic.py): an op goes to ncnn
    only when it converts the same way at each (ncnn/ops/size_free.py), and so must every region as a whole.
    The rewrites run before, on the symbolic shapes: a rewrite that needs a static shape leaves such ops be."""
    mod = _isolate_extern_calls(for_ncnn(mod))
    with probing(sizes[0] if sizes else None, sizes):
        mod = relax.transform.FuseOpsByPattern(ncnn_patterns(), bind_constants=True, annotate_codegen=False)(mod)
        mod = relax.transform.MergeCompositeFunctions()(mod)
        mod = _name_regions(copy_only.to_tvm(mod, region_vars(mod)))
    if sizes:
        _check_size_free(mod, sizes)
    return mod


def _check_size_free(mod: tvm.IRModule, sizes: list[dict]) -> None:
    """Each region writes the same ncnn graph at every probe size (its ops each do; a graph pass might not)."""
    for gv in region_vars(mod):
        written = set()
        for values in sizes:
            with probing(values, sizes):
                region = convert_region(mod[gv])
            layers = [layer for layer in region.graph.layers if layer.type != "Input"]
            region.graph.layers = layers
            written.add(region.graph.serialize())
        if len(written) > 1:
            raise ModelError(f"ncnn region {mod[gv].attrs['global_symbol']} writes a different graph at each input "
                             "size (a graph pass fixed a size); export with fixed sizes (--input) and report this")


@relax.expr_functor.mutator
class _ExternCalls(relax.PyExprMutator):
    """Each call of an external function by name (call_dps_packed("f", ...)) moves into a small Relax function
    of its own: TVM's MergeCompositeFunctions cannot visit the ExternFunc such a call takes as an argument."""

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if not any(isinstance(a, relax.ExternFunc) for a in call.args):
            return call
        free = list(relax.analysis.free_vars(call))
        params = {v: relax.Var(v.name, v.ty) for v in free}

        def renamed(arg):
            return relax.Tuple([renamed(f) for f in arg.fields]) if isinstance(arg, relax.Tuple) else params.get(arg, arg)

        body = relax.Call(call.op, [renamed(a) for a in call.args], call.attrs, call.ty_args)
        extern = next(a for a in call.args if isinstance(a, relax.ExternFunc))
        name = f"call_{extern.global_symbol.replace('.', '_')}"  # the builder makes it unique
        func = relax.Function(list(params.values()), body, call.ty, is_pure=True).with_attr("global_symbol", name)
        return relax.Call(self.builder_.add_func(func, name), free)


def _isolate_extern_calls(mod: tvm.IRModule) -> tvm.IRModule:
    mutator = _ExternCalls(mod)
    main = mutator.visit_expr(mod["main"])
    mod = mutator.builder_.get()
    mod["main"] = main
    return mod


def _name_regions(mod: tvm.IRModule) -> tvm.IRModule:
    """Short, ordered symbols (ncnn_region_0, ...) in place of the op-list names TVM generates."""
    for index, gv in enumerate(region_vars(mod)):
        mod.update_func(gv, mod[gv].with_attr("global_symbol", f"ncnn_region_{index}"))
    return mod


def region_vars(mod: tvm.IRModule) -> list:
    """The ncnn regions in the order main calls them."""
    order = []
    for call in calls_in(mod["main"]):
        if isinstance(call.op, tvm.ir.GlobalVar) and _is_region(mod[call.op]) and call.op not in order:
            order.append(call.op)
    return order


def _is_region(func) -> bool:
    return isinstance(func, relax.Function) and func.attrs is not None and "Codegen" in func.attrs \
        and str(func.attrs["Codegen"]) == "ncnn"


# ---------------------------------------------------------------------------------------------- report

def report(partitioned: tvm.IRModule) -> PartitionReport:
    """Placement of every op of main, regions expanded into the ops they hold. A dynamic model's view of its
    input (frontend/dynamic.py) is no op: the build turns it into a shape check."""
    regions = {gv: i for i, gv in enumerate(region_vars(partitioned))}
    result = PartitionReport(regions=len(regions))
    views = {call for var, call in bound_calls(partitioned["main"]).items() if var.name.endswith(VIEW_SUFFIX)}
    bound = bindings(partitioned["main"])
    for call in calls_in(partitioned["main"]):
        if call in views:
            continue
        if isinstance(call.op, tvm.ir.GlobalVar) and call.op in regions:
            region = partitioned[call.op]
            for inner in region_ops(region):
                result.ops.append(_placement(inner, f"ncnn:{regions[call.op]}", ""))
        elif isinstance(call.op, tvm.ir.Op):
            # a data-movement op left in TVM because its region would only have moved TVM's values
            moved = copy_only.moves_tvm_data(call, bound, regions.__contains__)
            reason = why_not(call) or (copy_only.REASON if moved
                                       else "supported alone, but no ncnn pattern took it here")
            result.ops.append(_placement(call, "tvm", reason))
        else:
            result.ops.append(OpPlacement(str(getattr(call.op, "name_hint", call.op)), shape_of(call),
                                          "tvm", why_not(call), 0))
    return result


def _placement(call, place: str, reason: str) -> OpPlacement:
    return OpPlacement(getattr(call.op, "name", None) or call.op.name_hint, shape_of(call), place, reason, flops(call))


def flops(call) -> int:
    """Multiply-adds count twice; elementwise ops count one per output element."""
    out = shape_of(call)
    if out is None:
        return 0
    elems = int(np.prod(out))
    name = getattr(call.op, "name", None)
    if name == "relax.nn.conv2d":
        w = shape_of(call.args[1])
        return 2 * elems * w[1] * w[2] * w[3]
    if name == "relax.matmul":
        k = shape_of(call.args[0])[-1]
        return 2 * elems * k
    if name in ("relax.nn.max_pool2d", "relax.nn.avg_pool2d"):
        return elems * int(np.prod([int(k) for k in call.attrs.pool_size]))
    if name in ("relax.mean", "relax.nn.adaptive_avg_pool2d"):
        return int(np.prod(shape_of(call.args[0])))
    if name == "relax.reshape":
        return 0
    return elems
