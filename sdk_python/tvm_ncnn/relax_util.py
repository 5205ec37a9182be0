"""The one home of the Relax helpers the SDK needs: static shapes, constants, scalar arguments, and walks over a
function's calls (main's, a region's, a composite's)."""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.ir import GenericConst


def shape_of(expr) -> list[int] | None:
    """Static shape of a tensor expression; None for a dynamic shape or anything that is not one tensor (a tuple,
    a shape, a prim value)."""
    return static_shape(getattr(expr, "ty", None))


def static_shape(ty) -> list[int] | None:
    """Static shape of a tensor type, or None."""
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return [int(d) for d in ty.shape]
    except (TypeError, ValueError):  # symbolic dimensions
        return None


def is_constant(expr) -> bool:
    return isinstance(expr, GenericConst)


def constant_value(expr) -> np.ndarray:
    return expr.value.numpy()


def scalar_constant(expr) -> float | None:
    """The value of a constant holding a single number, else None."""
    if not is_constant(expr):
        return None
    value = constant_value(expr)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def scalar_operand(call) -> tuple[object, float | None]:
    """(the other operand, the value) of a binary call with a scalar constant operand, either side; else
    (None, None)."""
    a, b = call.args
    for tensor, const in ((a, b), (b, a)):
        value = scalar_constant(const)
        if value is not None:
            return tensor, value
    return None, None


def prim_value(expr) -> float:
    """A scalar passed as an argument (clip bounds): an IntImm/FloatImm, possibly wrapped in a prim value."""
    while hasattr(expr, "value"):
        expr = expr.value
    return float(expr)


def calls_in(func: relax.Function) -> list[relax.Call]:
    """The calls a function binds, in order."""
    return [b.value for block in func.body.blocks for b in block.bindings if isinstance(b.value, relax.Call)]


def bound_calls(func: relax.Function) -> dict:
    """Variable -> the call it is bound to, for every call a function binds."""
    return {b.var: b.value for block in func.body.blocks for b in block.bindings if isinstance(b.value, relax.Call)}


def composite_calls(region: relax.Function) -> list[tuple[relax.Var, relax.Function, relax.Call]]:
    """(bound variable, composite function, call) for every call of a composite in a merged region, in order."""
    composites = {}
    found = []
    for block in region.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Function):
                composites[binding.var] = value
            elif isinstance(value, relax.Call) and value.op in composites:
                found.append((binding.var, composites[value.op], value))
    return found


def region_ops(region: relax.Function) -> list[relax.Call]:
    """The Relax op calls a merged region holds, composites expanded."""
    return [call for _, composite, _ in composite_calls(region) for call in calls_in(composite)]
