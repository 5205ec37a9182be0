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

def _why_not_windowed(call, kernel_layout: str) -> str | None:
    a = call.attrs
    if a.data_layout != "NCHW" or a.kernel_layout != kernel_layout or a.out_layout != "NCHW":
        return f"layout {a.data_layout}/{a.kernel_layout}, ncnn converts NCHW/{kernel_layout}"
    if not _is_float32_or_default(a.out_dtype):
        return f"out_dtype {a.out_dtype}"
    if not is_constant(call.args[1]):
        return "weight is not a constant"
    return why_not_io(call)


def why_not_conv2d(call) -> str | None:
    return _why_not_windowed(call, "OIHW")


def why_not_conv2d_transpose(call) -> str | None:
    return _why_not_windowed(call, "IOHW")


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


def why_not_adaptive_pool(call) -> str | None:
    a = call.attrs
    if a.layout != "NCHW":
        return f"layout {a.layout}"
    return why_not_io(call)


def why_not_reduce(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    rank = len(shape_of(call.args[0]))
    axes = reduce_axes(call)
    if 0 in axes:
        return "reduction over the batch axis"
    if rank > MAX_RANK:
        return f"rank {rank}"
    return None


def reduce_axes(call) -> list[int]:
    rank = len(shape_of(call.args[0]))
    if call.attrs.axis is None:
        return list(range(rank))
    return sorted(int(v) % rank for v in call.attrs.axis)


def why_not_concat(call) -> str | None:
    parts = call.args[0]
    if not isinstance(parts, relax.Tuple) or any(is_constant(p) for p in parts.fields):
        return "inputs are not all tensors computed by the model"
    for i, part in enumerate(parts.fields):
        reason = why_not_tensor(part, f"input {i}")
        if reason:
            return reason
    reason = why_not_tensor(call, "output")
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call)) == 0:
        return "along the batch axis"
    return None


def why_not_split(call) -> str | None:
    reason = why_not_tensor(call.args[0], "input")
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call.args[0])) == 0:
        return "along the batch axis"
    return None


def why_not_strided_slice(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if len(call.args) > 4 and any(int(s) != 1 for s in call.args[4]):
        return "strided slice with a step other than 1"
    if any(a == 0 for a, _, _ in slice_ranges(call)):
        return "slice along the batch axis"
    return None


def slice_ranges(call) -> list[tuple[int, int, int]]:
    """(axis, begin, end) for each sliced axis, clamped to the input's shape."""
    shape = shape_of(call.args[0])
    ranges = []
    for axis, begin, end in zip(call.args[1], call.args[2], call.args[3]):
        axis = int(axis) % len(shape)
        size = shape[axis]
        begin, end = int(begin), int(end)
        begin = min(max(begin + size if begin < 0 else begin, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        ranges.append((axis, begin, end))
    return ranges


def why_not_permute(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
    if axes is None or axes[0] != 0:
        return "permutation moves the batch axis"
    if len(axes) > 5:
        return f"rank {len(axes)}"
    return None


def why_not_pad(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a = call.attrs
    pads = [int(p) for p in a.pad_width]  # (before, after) per axis
    rank = len(shape_of(call.args[0]))
    if a.pad_mode not in ("constant", "edge", "reflect"):
        return f"pad mode {a.pad_mode}"
    if any(p < 0 for p in pads):
        return "negative padding (cropping)"
    if pads[0] or pads[1]:
        return "padding the batch axis"
    if rank not in (3, 4) or (rank == 4 and a.pad_mode != "constant" and (pads[2] or pads[3])):
        return "padding ncnn's Padding layer cannot express"
    return None


def why_not_prelu(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if not is_constant(call.args[1]):
        return "slope is not a constant"
    channels = shape_of(call.args[0])[1] if len(shape_of(call.args[0])) > 1 else 1
    if int(call.attrs.axis) % len(shape_of(call.args[0])) != 1 or constant_value(call.args[1]).size not in (1, channels):
        return "slope not per channel"
    return None


def why_not_resize2d(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a = call.attrs
    if a.layout != "NCHW":
        return f"layout {a.layout}"
    if interp_type(call) is None:
        return f"resize {a.method} with coordinates {a.coordinate_transformation_mode}"
    return None


def interp_type(call) -> tuple[int, int] | None:
    """ncnn Interp (resize_type, align_corner) computing what TVM's resize2d computes, or None."""
    a = call.attrs
    mode = str(a.coordinate_transformation_mode)
    if a.method == "nearest_neighbor" and mode == "asymmetric" and str(a.rounding_method) in ("floor", ""):
        return (1, 0)
    # pytorch_half_pixel equals half_pixel except for a 1-pixel output
    half_pixel = mode == "half_pixel" or (mode == "pytorch_half_pixel" and min(shape_of(call)[2:]) > 1)
    if a.method == "linear" and half_pixel:
        return (2, 0)
    if a.method == "linear" and mode == "align_corners":
        return (2, 1)
    if a.method == "cubic" and float(a.cubic_alpha) == -0.75 and not int(a.cubic_exclude):
        if half_pixel:
            return (3, 0)
        if mode == "align_corners":
            return (3, 1)
    return None


def why_not_layer_norm(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    rank = len(shape_of(call.args[0]))
    axes = sorted(int(a) % rank for a in call.attrs.axes)
    if axes not in ([rank - 1], [rank - 2, rank - 1]) or (len(axes) == 2 and rank < 3):
        return "layer_norm over axes other than the last one or two"
    if not (is_constant(call.args[1]) and is_constant(call.args[2])):
        return "gamma/beta are not constants"
    return None


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


RESHAPES = ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.nn.batch_flatten")
UNARY_OPS = ("relax.nn.relu", "relax.sigmoid", "relax.tanh", "relax.nn.silu", "relax.nn.gelu",
             "relax.nn.gelu_tanh", "relax.nn.leakyrelu")

SUPPORT = {
    "relax.nn.conv2d": why_not_conv2d,
    "relax.nn.conv2d_transpose": why_not_conv2d_transpose,
    "relax.matmul": why_not_matmul,
    "relax.nn.max_pool2d": why_not_pool2d,
    "relax.nn.avg_pool2d": why_not_pool2d,
    "relax.nn.adaptive_avg_pool2d": why_not_adaptive_pool,
    "relax.mean": why_not_reduce,
    "relax.sum": why_not_reduce,
    "relax.max": why_not_reduce,
    "relax.clip": why_not_clip,
    "relax.nn.softmax": why_not_softmax,
    "relax.concat": why_not_concat,
    "relax.split": why_not_split,
    "relax.strided_slice": why_not_strided_slice,
    "relax.permute_dims": why_not_permute,
    "relax.nn.pad": why_not_pad,
    "relax.nn.prelu": why_not_prelu,
    "relax.image.resize2d": why_not_resize2d,
    "relax.nn.layer_norm": why_not_layer_norm,
    **{name: why_not_reshape for name in RESHAPES},
    **{name: why_not_unary for name in UNARY_OPS},
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


# Arguments beyond the tensor (shapes, bounds, slopes); strided_slice takes its strides optionally
EXTRA_ARGS = {"relax.clip": [2], "relax.reshape": [1], "relax.nn.prelu": [1], "relax.image.resize2d": [1],
              "relax.nn.layer_norm": [2], "relax.strided_slice": [4, 3], **{op: [1] for op in BINARY_OPS}}


def _single(op: str, extra: int):
    root = is_op(op)(*[wildcard() for _ in range(1 + extra)])
    suffix = op.removeprefix("relax.") + (f"_{extra}" if len(EXTRA_ARGS.get(op, [0])) > 1 else "")
    return (f"{PREFIX}.{suffix}", root, {"root": root}, _check_calls("root"))


def channel_shuffle_groups(grouped, swapped, out) -> int | None:
    """The group count when reshape -> permute_dims -> reshape is ShuffleNet's channel shuffle
    ([1, C, H, W] -> [1, g, C/g, H, W], swap axes 1 and 2, back to [1, C, H, W]), else None."""
    shape, mid = shape_of(grouped.args[0]), shape_of(grouped)
    if shape is None or mid is None or len(shape) != 4 or len(mid) != 5 or shape_of(out) != shape:
        return None
    axes = swapped.attrs.axes
    if axes is None or [int(a) for a in axes] != [0, 2, 1, 3, 4]:
        return None
    if mid[0] != 1 or mid[1] * mid[2] != shape[1] or mid[3:] != shape[2:]:
        return None
    return mid[1]


def _channel_shuffle():
    """One ShuffleChannel layer instead of Reshape, Permute, Reshape (three copies, the last two unpacked)."""
    grouped = is_op("relax.reshape")(wildcard(), wildcard())
    swapped = is_op("relax.permute_dims")(grouped)
    out = is_op("relax.reshape")(swapped, wildcard())
    base = _check_calls("root", "permute", "out")

    def check(ctx) -> bool:
        calls = ctx.annotated_expr
        return base(ctx) and channel_shuffle_groups(calls["root"], calls["permute"], calls["out"]) is not None

    return (f"{PREFIX}.channel_shuffle", out, {"root": grouped, "permute": swapped, "out": out}, check)


def lrn_params(calls) -> dict[int, float] | None:
    """ncnn LRN's (local_size, alpha, beta, bias) when `calls` compute a local response norm across channels
    -- x / (bias + alpha * mean of x^2 over a window of channels)^beta, the way TVM's ONNX importer and
    torch's ONNX exporter spell it -- else None. calls: square, to 5-D, [pad], avg_pool3d, back to 4-D,
    scale, shift, power, divide."""
    square, expanded, *padded, pooled, squeezed, scaled, shifted, powered, divided = calls
    if not (square.args[1].same_as(square.args[0]) and divided.args[0].same_as(square.args[0])):
        return None  # x * x and x / ... of one and the same x
    x = shape_of(square.args[0])
    if x is None or len(x) != 4 or shape_of(expanded) != [1, 1, *x[1:]] or shape_of(squeezed) != x:
        return None
    a = pooled.attrs
    size = int(a.pool_size[0])
    if [int(v) for v in a.pool_size] != [size, 1, 1] or [int(v) for v in a.strides] != [1, 1, 1]:
        return None
    if not a.count_include_pad or a.ceil_mode:
        return None
    # channels padded before and after the window, by the pool and by a pad in front of it
    before, after = [int(v) for v in a.padding[:3]], [int(v) for v in a.padding[3:]]
    for pad in padded:
        if pad.attrs.pad_mode != "constant" or float(pad.attrs.pad_value) != 0.0:
            return None
        width = [int(v) for v in pad.attrs.pad_width]
        before = [b + w for b, w in zip(before, width[4::2])]
        after = [b + w for b, w in zip(after, width[5::2])]
        if any(width[:4]):
            return None
    # ncnn pads local_size / 2 channels on both sides: an odd window, centred
    if size % 2 != 1 or before != [size // 2, 0, 0] or after != [size // 2, 0, 0]:
        return None
    scalars = [scaled.args[1], shifted.args[1], powered.args[1]]
    if not all(is_constant(c) and constant_value(c).size == 1 for c in scalars):
        return None
    alpha, bias, beta = (float(constant_value(c).reshape(-1)[0]) for c in scalars)
    return {1: size, 2: alpha, 3: beta, 4: bias}


def _lrn():
    """AlexNet's LocalResponseNorm as one ncnn LRN layer."""
    x = wildcard()
    square = is_op("relax.multiply")(x, x)
    expanded = is_op("relax.expand_dims")(square) | is_op("relax.reshape")(square, wildcard())
    padded = is_op("relax.nn.pad")(expanded)
    pooled = is_op("relax.nn.avg_pool3d")(padded | expanded)
    squeezed = is_op("relax.squeeze")(pooled) | is_op("relax.reshape")(pooled, wildcard())
    scaled = is_op("relax.multiply")(squeezed, is_const())
    shifted = is_op("relax.add")(scaled, is_const())
    powered = is_op("relax.power")(shifted, is_const())
    out = is_op("relax.divide")(x, powered)
    chain = {"square": square, "expand": expanded, "pad": padded, "pool": pooled, "squeeze": squeezed,
             "scale": scaled, "shift": shifted, "power": powered, "root": out}

    def check(ctx) -> bool:
        if has_leaking_intermediate_variables(ctx):
            return False
        calls = [ctx.annotated_expr[n] for n in chain if n in ctx.annotated_expr]
        return why_not_tensor(calls[-1], "output") is None and lrn_params(calls) is not None

    return (f"{PREFIX}.lrn", out, chain, check)


def pattern_table():
    """Highest priority first: the fused forms, then each op alone."""
    fused = [_channel_shuffle(), _lrn(),
             *_with_bias_and_activation("conv2d", "relax.nn.conv2d", channel_axis=1),
             *_with_bias_and_activation("conv2d_transpose", "relax.nn.conv2d_transpose", channel_axis=1),
             *_with_bias_and_activation("dense", "relax.matmul", channel_axis=1)]
    single = [op for op in SUPPORT if op not in ("relax.nn.conv2d", "relax.nn.conv2d_transpose", "relax.matmul")]
    return fused + [_single(op, extra) for op in single for extra in EXTRA_ARGS.get(op, [0])]


# The registry gives later entries higher priority; the table lists the highest first.
register_patterns(list(reversed(pattern_table())))


def ncnn_patterns():
    return get_patterns_with_prefix(PREFIX)
