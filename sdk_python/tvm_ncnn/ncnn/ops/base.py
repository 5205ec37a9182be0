"""What every op module builds on: the checks every ncnn tensor must pass, the Match a converter receives, and
the two kinds of table entry an op module declares (one Relax op, or a fused pattern of several)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tvm import relax
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import DFPattern, is_op, wildcard

from ..graph import MAX_RANK
from ...relax_util import constant_value, is_constant, shape_of

PREFIX = "ncnn"


# ---------------------------------------------------------------------------------------------- table entries

@dataclass(frozen=True)
class Op:
    """One Relax op ncnn runs. `why_not(call)` is None when ncnn computes the call exactly as TVM would, else the
    reason it stays in TVM (the partition report shows it); `convert(graph, match)` writes the layers and returns
    the result blob(s); `layers` are every ncnn layer type `convert` may write. `extra_args` lists the numbers of
    non-tensor arguments the op is called with (a pattern each); `alone=False` when the module's fused patterns
    already include the op on its own."""
    name: str
    why_not: Callable
    convert: Callable
    layers: tuple[str, ...]
    extra_args: tuple[int, ...] = (0,)
    alone: bool = True


@dataclass(frozen=True)
class Fused:
    """A pattern of several calls offloaded together. `convert` is None when the root op's converter handles
    the whole match (a conv with its bias and activation), else the match's own converter."""
    name: str
    pattern: DFPattern
    annotations: dict
    check: Callable
    convert: Callable | None = None
    layers: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- matches

@dataclass
class Match:
    """What a converter gets: the composite's calls in order (calls[0] is the root op), the blob feeding each
    of the composite's parameters, and the call each of the composite's variables is bound to (to follow the
    data flow where the order of calls is not enough)."""
    calls: list[relax.Call]
    blobs: dict = field(default_factory=dict)
    producer: dict = field(default_factory=dict)

    @property
    def root(self) -> relax.Call:
        return self.calls[0]

    @property
    def result(self) -> relax.Call:
        return self.calls[-1]

    def find(self, op_name: str) -> relax.Call | None:
        return next((c for c in self.calls[1:] if c.op.name == op_name), None)

    def blob(self, expr) -> str:
        return self.blobs[expr]


# ---------------------------------------------------------------------------------------------- tensor checks

def is_float32_or_default(dtype) -> bool:
    return dtype is None or str(dtype) in ("", "float32", "void")


def why_not_tensor(expr, what: str = "tensor") -> str | None:
    """ncnn sees one image at a time (batch 1) of float32, at most 4 dims after the batch."""
    shape = shape_of(expr)
    ty = expr.ty
    if shape is None:
        return f"{what} has a dynamic shape"
    if getattr(ty, "dtype", None) != "float32":
        return f"{what} is {ty.dtype}, ncnn runs float32"
    if len(shape) < 2 or len(shape) > MAX_RANK:
        return f"{what} has rank {len(shape)}, ncnn takes 2 to {MAX_RANK} with a batch dimension"
    if shape[0] != 1:
        return f"{what} has batch {shape[0]}, ncnn regions run batch 1"
    return None


def why_not_io(call) -> str | None:
    """Every non-constant tensor argument and the result must be ncnn tensors."""
    for i, arg in enumerate(call.args):
        if isinstance(arg.ty, relax.TensorType) and not is_constant(arg):
            reason = why_not_tensor(arg, f"input {i}")
            if reason:
                return reason
    return why_not_tensor(call, "output")


def bias_vector(bias, channels: int, channel_axis: int, rank: int) -> np.ndarray | None:
    """The per-channel vector of a constant that broadcasts only along `channel_axis`, else None."""
    channel_axis %= rank
    if not is_constant(bias):
        return None
    value = constant_value(bias)
    if value.ndim > rank:
        return None
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    for axis, size in enumerate(full.shape):
        if size != 1 and not (axis == channel_axis and size == channels):
            return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- pattern checks

def check_calls(*names):
    """A pattern check: every annotated call runs in ncnn and no intermediate value escapes the pattern."""

    def check(ctx) -> bool:
        from . import why_not  # the table of every op module, assembled once they are all imported

        if has_leaking_intermediate_variables(ctx):
            return False
        return all(why_not(ctx.annotated_expr[n]) is None for n in names if n in ctx.annotated_expr)

    return check


def single(op: Op, extra: int) -> Fused:
    """The pattern of one op alone, called with `extra` non-tensor arguments."""
    root = is_op(op.name)(*[wildcard() for _ in range(1 + extra)])
    suffix = op.name.removeprefix("relax.") + (f"_{extra}" if len(op.extra_args) > 1 else "")
    return Fused(f"{PREFIX}.{suffix}", root, {"root": root}, check_calls("root"))
