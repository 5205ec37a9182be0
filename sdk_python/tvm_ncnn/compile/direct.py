"""Whether the runtime may skip the Relax VM: a model whose main is one ncnn region called on main's own inputs,
its result returned as it is, runs by calling that region straight (metadata `direct_region`, runtime/FORMAT.md).
The VM would add only its own objects and dispatch to such a call: the runtime then writes the region's outputs
into the caller's tensors, and a camera loop allocates nothing of its own per frame."""

from __future__ import annotations

import tvm
from tvm import relax

from ..relax_util import static_shape


def direct_region(mod: tvm.IRModule) -> str | None:
    """The symbol of the one ncnn region main is, or None when main does anything else (TVM ops, several
    regions, a batch loop, dynamic sizes, shape checks, outputs reordered)."""
    main = mod["main"]
    if not all(_static_tensor(p.ty) for p in main.params):
        return None
    bindings = [b for block in main.body.blocks for b in block.bindings]
    if not bindings or not all(isinstance(b, relax.VarBinding) for b in bindings):
        return None
    call_var, call = bindings[0].var, bindings[0].value
    if not (isinstance(call, relax.Call) and call.op.same_as(tvm.ir.Op.get("relax.call_dps_packed"))):
        return None
    callee, args = call.args[0], call.args[1]
    if not isinstance(callee, relax.ExternFunc) or not isinstance(args, relax.Tuple):
        return None
    if len(args.fields) != len(main.params) or any(not a.same_as(p) for a, p in zip(args.fields, main.params)):
        return None
    if not _static_outputs(call.ty):
        return None
    values = {b.var: b.value for b in bindings[1:]}
    returned = main.body.body
    if returned.same_as(call_var) and not values:
        return str(callee.global_symbol)
    # Several outputs: main takes each out of the region's tuple and returns them as a tuple, in order.
    tuple_ = values.get(returned)
    if not isinstance(call.ty, relax.TupleType) or not isinstance(tuple_, relax.Tuple) \
            or len(tuple_.fields) != len(call.ty.fields):
        return None
    if len(values) != len(tuple_.fields) + 1:  # the items and the tuple, nothing else
        return None
    for i, field in enumerate(tuple_.fields):
        item = values.get(field)
        if not (isinstance(item, relax.TupleGetItem) and item.tuple_value.same_as(call_var) and item.index == i):
            return None
    return str(callee.global_symbol)


def _static_tensor(ty) -> bool:
    return isinstance(ty, relax.TensorType) and ty.dtype == "float32" and static_shape(ty) is not None


def _static_outputs(ty) -> bool:
    if isinstance(ty, relax.TupleType):
        return len(ty.fields) > 0 and all(_static_tensor(f) for f in ty.fields)
    return _static_tensor(ty)
