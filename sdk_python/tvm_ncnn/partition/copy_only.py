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

from ..relax_util import bindings, bound_calls, region_ops

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


@relax.expr_functor.mutator
class _Substitute(relax.PyExprMutator):
    def __init__(self, mapping: dict):
        super().__init__()
        self.mapping = mapping

    def visit_var_(self, var):
        return self.mapping.get(var, var)

    def visit_dataflow_var_(self, var):
        return self.mapping.get(var, var)


@relax.expr_functor.mutator
class _Inline(relax.PyExprMutator):
    """Each call of a demoted region becomes the ops its composites hold, bound in main."""

    def __init__(self, mod: tvm.IRModule, demoted: set):
        super().__init__(mod)
        self.mod, self.demoted = mod, demoted

    def _inline(self, composite: relax.Function, args, mapping: dict):
        """The composite's ops bound in main, its parameters the (mapped) arguments; returns its result."""
        inner = {p: _Substitute(mapping).visit_expr(a) for p, a in zip(composite.params, args)}
        for block in composite.body.blocks:
            for b in block.bindings:
                inner[b.var] = self.builder_.emit(_Substitute(inner).visit_expr(b.value))
        return _Substitute(inner).visit_expr(composite.body.body)

    def visit_var_binding_(self, binding):
        value = binding.value
        if not (isinstance(value, relax.Call) and value.op in self.demoted):
            return super().visit_var_binding_(binding)
        region = self.mod[value.op]
        mapping = {p: self.visit_expr(a) for p, a in zip(region.params, value.args)}
        composites = {}
        for block in region.body.blocks:  # in order: a split's items may feed a later composite
            for b in block.bindings:
                if isinstance(b.value, relax.Function):
                    composites[b.var] = b.value
                elif isinstance(b.value, relax.Call) and b.value.op in composites:
                    mapping[b.var] = self._inline(composites[b.value.op], b.value.args, mapping)
                else:  # the region's own tuple and item bindings around its composites
                    mapping[b.var] = self.builder_.emit(_Substitute(mapping).visit_expr(b.value))
        result = _Substitute(mapping).visit_expr(region.body.body)
        if not isinstance(binding.var, relax.DataflowVar):  # an output of main's dataflow block stays one
            self.set_var_remap(binding.var, self.builder_.emit_output(result))
        else:
            self.set_var_remap(binding.var, result if isinstance(result, relax.Var) else self.builder_.emit(result))


def to_tvm(mod: tvm.IRModule, regions: list) -> tvm.IRModule:
    """mod with its copy-only regions inlined into main as plain Relax ops (TVM runs them). By hand, not with
    relax_util.plain_region and InlinePrivateFunctions: that pass inlines every private function, the importer's
    (ONNX GRU, RNN) too."""
    demoted = copy_only_regions(mod, regions)
    if not demoted:
        return mod
    inliner = _Inline(mod, demoted)
    main = inliner.visit_expr(mod["main"])
    built = inliner.builder_.get()
    # the demoted regions go: DeadCodeElimination keeps a function with a global symbol, called or not
    mod = tvm.IRModule({gv: f for gv, f in built.functions.items() if gv not in demoted}, attrs=built.attrs)
    mod["main"] = main
    return relax.transform.DeadCodeElimination(["main"])(mod)
