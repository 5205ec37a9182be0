"""Which Relax ops ncnn can run, and the patterns that group them into ncnn layers.

Every supported op has a `why_not_*` function: None when ncnn runs the call exactly as TVM would, else the
reason it stays in TVM. Pattern checks and the partition report both use them, so the report always says the
real reason.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.ir import GenericConst
from tvm.relax.backend.pattern_registry import get_patterns_with_prefix, register_patterns
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_const, is_op, wildcard

PREFIX = "ncnn"
MAX_RANK = 5  # batch + ncnn's w, h, d, c


# ---------------------------------------------------------------------------------------------- helpers

def shape_of(expr) -> list[int] | None:
    """Static shape of a tensor expression, or None."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return [int(d) for d in ty.shape]
    except (TypeError, ValueError):
        return None


def is_constant(expr) -> bool:
    return isinstance(expr, GenericConst)


def constant_value(expr) -> np.ndarray:
    return expr.value.numpy()


def prim_value(expr) -> float:
    """A scalar passed as an argument (clip bounds): an IntImm/FloatImm, possibly wrapped in a prim value."""
    while hasattr(expr, "value"):
        expr = expr.value
    return float(expr)


def _is_float32_or_default(dtype) -> bool:
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


# ---------------------------------------------------------------------------------------------- per op

def why_not_conv2d(call) -> str | None:
    a = call.attrs
    if a.data_layout != "NCHW" or a.kernel_layout != "OIHW" or a.out_layout != "NCHW":
        return f"layout {a.data_layout}/{a.kernel_layout}, ncnn converts NCHW/OIHW"
    if not _is_float32_or_default(a.out_dtype):
        return f"out_dtype {a.out_dtype}"
    if not is_constant(call.args[1]):
        return "weight is not a constant"
    return why_not_io(call)


def why_not_matmul(call) -> str | None:
    x, w = call.args
    if not is_constant(w):
        return "right operand is not a constant weight"
    xs, ws = shape_of(x), shape_of(w)
    if xs is None or len(xs) != 2 or ws is None or len(ws) != 2:
        return "only (1, K) x (K, N) matmul maps to InnerProduct"
    if not _is_float32_or_default(call.attrs.out_dtype):
        return f"out_dtype {call.attrs.out_dtype}"
    return why_not_io(call)


def why_not_pool2d(call) -> str | None:
    a = call.attrs
    if a.layout != "NCHW" or a.out_layout != "NCHW":
        return f"layout {a.layout}"
    if any(int(d) != 1 for d in a.dilation):
        return "dilated pooling"
    reason = why_not_io(call)
    if reason:
        return reason
    if a.ceil_mode and pool_output_hw(call, ceil=True) != shape_of(call)[2:]:
        return "ceil_mode window that starts in the padding (ncnn counts it, TVM drops it)"
    if a.ceil_mode and call.op.name == "relax.nn.avg_pool2d" and pool_output_hw(call, ceil=False) != shape_of(call)[2:]:
        return "ceil_mode average pooling with a partial last window"
    return None


def pool_output_hw(call, ceil: bool) -> list[int]:
    a = call.attrs
    h, w = shape_of(call.args[0])[2:]
    top, left, bottom, right = (int(p) for p in a.padding)
    out = []
    for size, k, s, p in ((h, int(a.pool_size[0]), int(a.strides[0]), top + bottom),
                          (w, int(a.pool_size[1]), int(a.strides[1]), left + right)):
        span = size + p - k
        out.append((-(-span // s) if ceil else span // s) + 1)
    return out


def why_not_adaptive_avg_pool2d(call) -> str | None:
    a = call.attrs
    if a.layout != "NCHW":
        return f"layout {a.layout}"
    if a.output_size is None or [int(v) for v in a.output_size] != [1, 1]:
        return "adaptive pooling to a size other than 1x1"
    return why_not_io(call)


def why_not_mean(call) -> str | None:
    shape = shape_of(call.args[0])
    axes = sorted(int(v) % len(shape) for v in call.attrs.axis) if shape and call.attrs.axis else None
    if shape is None or len(shape) != 4 or axes != [2, 3]:
        return "mean over axes other than H, W of an NCHW tensor"
    return why_not_io(call)


BINARY_OPS = {"relax.add": 0, "relax.subtract": 1, "relax.multiply": 2, "relax.divide": 3}


def why_not_binary(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a, b = call.args
    if is_constant(a) and is_constant(b):
        return "both operands are constants"
    out_rank = len(shape_of(call))
    for operand in (a, b):
        shape = shape_of(operand)
        if is_constant(operand):
            if constant_value(operand).size == 1:
                continue
            if len(shape) > out_rank or (len(shape) == out_rank and shape[0] != 1):
                return "constant operand carries a batch dimension other than 1"
            if constant_value(operand).dtype != np.float32:
                return f"constant operand is {constant_value(operand).dtype}"
        elif len(shape) != out_rank:
            # ncnn broadcasts operands of different rank by its own rules, not numpy's
            return "operands of different rank"
    return None


def why_not_softmax(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call)) == 0:
        return "softmax over the batch axis"
    return None


def why_not_reshape(call) -> str | None:
    return why_not_io(call)


def why_not_clip(call) -> str | None:
    return why_not_io(call)


def why_not_unary(call) -> str | None:
    return why_not_io(call)


SUPPORT = {
    "relax.nn.conv2d": why_not_conv2d,
    "relax.matmul": why_not_matmul,
    "relax.nn.max_pool2d": why_not_pool2d,
    "relax.nn.avg_pool2d": why_not_pool2d,
    "relax.nn.adaptive_avg_pool2d": why_not_adaptive_avg_pool2d,
    "relax.mean": why_not_mean,
    "relax.nn.relu": why_not_unary,
    "relax.sigmoid": why_not_unary,
    "relax.clip": why_not_clip,
    "relax.nn.softmax": why_not_softmax,
    "relax.reshape": why_not_reshape,
    **{name: why_not_binary for name in BINARY_OPS},
}


def why_not(call) -> str | None:
    """The reason a single Relax call cannot run in ncnn, or None when it can."""
    op = getattr(call.op, "name", None)
    if op not in SUPPORT:
        return f"no ncnn layer for {op or 'this call'}"
    return SUPPORT[op](call)


def bias_vector(bias, channels: int, channel_axis: int, rank: int) -> np.ndarray | None:
    """The per-channel vector of a constant that broadcasts only along `channel_axis`, else None."""
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


# ---------------------------------------------------------------------------------------------- patterns

ACTIVATIONS = {"relu": "relax.nn.relu", "clip": "relax.clip"}


def _check_calls(*names):
    """A check that every annotated call runs in ncnn and no intermediate value escapes the pattern."""

    def check(ctx) -> bool:
        if has_leaking_intermediate_variables(ctx):
            return False
        return all(why_not(ctx.annotated_expr[n]) is None for n in names if n in ctx.annotated_expr)

    return check


def _check_biased(root_name: str, channel_axis: int):
    base = _check_calls(root_name, "bias_add", "activation")

    def check(ctx) -> bool:
        if not base(ctx):
            return False
        root = ctx.annotated_expr[root_name]
        out_shape = shape_of(root)
        return bias_vector(ctx.annotated_expr["bias"], out_shape[channel_axis], channel_axis,
                           len(out_shape)) is not None

    return check


def _with_bias_and_activation(name: str, root_op: str, channel_axis: int):
    """Patterns root, root+bias, root+act, root+bias+act; the longest first so FuseOpsByPattern prefers it."""
    entries = []
    for with_bias in (True, False):
        for act in (*ACTIVATIONS, None):
            data, weight = wildcard(), is_const()
            root = is_op(root_op)(data, weight)
            annotations = {"root": root, "weight": weight}
            out = root
            if with_bias:
                bias = is_const()
                out = is_op("relax.add")(out, bias)
                annotations.update(bias=bias, bias_add=out)
            if act == "relu":
                out = is_op(ACTIVATIONS[act])(out)
                annotations["activation"] = out
            elif act == "clip":
                out = is_op(ACTIVATIONS[act])(out, wildcard(), wildcard())
                annotations["activation"] = out
            suffix = ("_bias" if with_bias else "") + (f"_{act}" if act else "")
            check = _check_biased("root", channel_axis) if with_bias else _check_calls("root", "activation")
            entries.append((f"{PREFIX}.{name}{suffix}", out, annotations, check))
    # longest first: bias+act, bias, act, plain
    return sorted(entries, key=lambda e: -len(e[2]))


def _single(name: str, op: str, arity: int):
    args = [wildcard() for _ in range(arity)]
    root = is_op(op)(*args)
    return (f"{PREFIX}.{name}", root, {"root": root}, _check_calls("root"))


def pattern_table():
    return [
        *_with_bias_and_activation("conv2d", "relax.nn.conv2d", channel_axis=1),
        *_with_bias_and_activation("dense", "relax.matmul", channel_axis=1),
        _single("max_pool2d", "relax.nn.max_pool2d", 1),
        _single("avg_pool2d", "relax.nn.avg_pool2d", 1),
        _single("adaptive_avg_pool2d", "relax.nn.adaptive_avg_pool2d", 1),
        _single("mean", "relax.mean", 1),
        *[_single(op.split(".")[-1], op, 2) for op in BINARY_OPS],
        _single("relu", "relax.nn.relu", 1),
        _single("sigmoid", "relax.sigmoid", 1),
        _single("clip", "relax.clip", 3),
        _single("softmax", "relax.nn.softmax", 1),
        _single("reshape", "relax.reshape", 2),
    ]


# The registry gives later entries higher priority; the table lists the highest first.
register_patterns(list(reversed(pattern_table())))


def ncnn_patterns():
    return get_patterns_with_prefix(PREFIX)
