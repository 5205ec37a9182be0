"""The one home of the Relax helpers the SDK needs: static shapes (at a probe size, for a model with dynamic
sizes), constants, scalar arguments, walks over a function's calls (main's, a region's, a composite's), and a
region written back as plain Relax."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import numpy as np
from tvm import relax, tirx
from tvm.ir import GenericConst
from tvm.sym import Analyzer
from tvm.tirx.analysis import undefined_vars

# While partitioning and generating a model with dynamic sizes (frontend/dynamic.py): the size every symbolic
# dimension takes (an Analyzer bound to it), and every probe size; shapes read as if the model were exported
# at that size. Outside, a symbolic shape is no static shape.
_PROBE: ContextVar["_Probe | None"] = ContextVar("tvm_ncnn_probe", default=None)


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
        pass
    probe = _PROBE.get()
    if probe is None:
        return None
    dims = [d if isinstance(d, tirx.IntImm) else probe.value(d) for d in ty.shape]
    return [int(d) for d in dims] if all(isinstance(d, tirx.IntImm) for d in dims) else None


class _Probe:
    """One probe size: each size variable bound by name, since the functions partition makes carry copies of
    main's variables (same name, another object)."""

    def __init__(self, values: dict, every: list):
        self.by_name = {var.name: value for var, value in values.items()}
        self.every = every
        self.analyzer = Analyzer()
        self.bound: set = set()

    def value(self, expr):
        for var in undefined_vars(expr):
            if var not in self.bound and var.name in self.by_name:
                self.analyzer.bind(var, tirx.IntImm("int64", self.by_name[var.name]))
                self.bound.add(var)
        return self.analyzer.simplify(expr)


def shape_values(expr) -> list[int] | None:
    """The values of a shape argument (resize2d's size), at the probe size where they are symbolic; None when
    unknown. Inside a composite such an argument is a parameter, and the call it feeds has no static shape."""
    ty = getattr(expr, "ty", None)
    if not isinstance(ty, relax.ShapeType) or ty.values is None:
        return None
    return static_shape(relax.TensorType(list(ty.values), "float32"))


def is_symbolic(ty) -> bool:
    """A tensor (or tuple) type with a dimension that is a variable expression."""
    if isinstance(ty, relax.TupleType):
        return any(is_symbolic(f) for f in ty.fields)
    return isinstance(ty, relax.TensorType) and ty.shape is not None and \
        not all(isinstance(d, tirx.IntImm) for d in ty.shape)


@contextlib.contextmanager
def probing(values: dict | None, every: list | None = None):
    """Read symbolic shapes at the sizes `values` gives ({tir var: size}); `every` lists all probe sizes, for
    checks that must hold at each (probes()). None: no probe (the model's sizes are static)."""
    if values is None:
        yield
        return
    token = _PROBE.set(_Probe(values, list(every or [values])))
    try:
        yield
    finally:
        _PROBE.reset(token)


def probes() -> list[dict]:
    """Every probe size of the model being partitioned; [] for a static model."""
    probe = _PROBE.get()
    return probe.every if probe is not None else []


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


def bindings(func: relax.Function) -> dict:
    """Variable -> the value it is bound to, for every binding of a function."""
    return {b.var: b.value for block in func.body.blocks for b in block.bindings}


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


def plain_region(bb: relax.BlockBuilder, region: relax.Function, name: str) -> relax.Function:
    """A merged region as plain Relax, for TVM to compile or inline: each of its local composite functions added to
    `bb` as a private function of its own (`name`_composite_<i>), and called there. Without attributes: the caller
    adds the ones it needs (InlinePrivateFunctions then inlines the composites, and the region too if it stays
    private)."""
    lifted = {}
    for block in region.body.blocks:
        for binding in block.bindings:
            if isinstance(binding.value, relax.Function):
                plain = binding.value.without_attr("Composite").without_attr("Primitive")
                lifted[binding.var] = bb.add_func(plain, f"{name}_composite_{len(lifted)}")
    return relax.Function(region.params, _CallLifted(lifted).visit_expr(region.body), region.ret_ty, region.is_pure)


@relax.expr_functor.mutator
class _CallLifted(relax.PyExprMutator):
    """A region body with its local composite functions dropped and their calls made to the lifted copies."""

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
