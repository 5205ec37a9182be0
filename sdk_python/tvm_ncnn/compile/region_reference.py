"""Each ncnn region of a partitioned module compiled by TVM instead, as a function of its own: the reference export's
verification (exporter/verify.py) holds one region's ncnn output to, on the very inputs ncnn got, to name the
first region that computes wrong."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ncnn.codegen import CODEGEN


def regions_in_tvm(mod: tvm.IRModule) -> tvm.IRModule:
    """A module of every ncnn region of `mod`, each a public function named by its symbol, its composite calls
    inlined back into plain Relax."""
    bb = relax.BlockBuilder()
    regions = {}
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function) and func.attrs and func.attrs.get("Codegen") == CODEGEN:
            regions[str(func.attrs["global_symbol"])] = func
    for symbol, func in regions.items():
        lifted = {}
        for block in func.body.blocks:
            for binding in block.bindings:
                if isinstance(binding.value, relax.Function):  # a composite: its calls become calls of a copy
                    plain = binding.value.without_attr("Composite").without_attr("Primitive")
                    lifted[binding.var] = bb.add_func(plain, f"{symbol}_composite_{len(lifted)}")
        body = _CallLifted(lifted).visit_expr(func.body)
        plain = relax.Function(func.params, body, func.ret_ty, func.is_pure).with_attr("global_symbol", symbol)
        bb.add_func(plain, symbol)
    module = relax.transform.InlinePrivateFunctions()(bb.get())
    return relax.transform.DeadCodeElimination(entry_functions=list(regions))(module)


@relax.expr_functor.mutator
class _CallLifted(relax.PyExprMutator):
    """A region body with its local composite functions dropped and their calls made to global copies."""

    def __init__(self, lifted: dict):
        super().__init__()
        self.lifted = lifted

    def visit_var_binding_(self, binding):
        if binding.var not in self.lifted:
            super().visit_var_binding_(binding)

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, relax.Var) and call.op in self.lifted:
            return relax.Call(self.lifted[call.op], call.args)
        return call


class RegionRunner:
    """The regions compiled by TVM for this machine (default pipeline: only run when a check failed)."""

    def __init__(self, mod: tvm.IRModule):
        executable = tvm.compile(regions_in_tvm(mod), target=tvm.target.Target({"kind": "llvm"}))
        self.vm = relax.VirtualMachine(executable, tvm.cpu())

    def __call__(self, symbol: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.vm[symbol](*(tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs))
        return [o.numpy() for o in flat(out)]


def flat(value) -> list:
    """A VM result (a tensor or nested tuples of them) as a flat list, in order."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return [t for item in value for t in flat(item)]
    return [value]
