"""One converter per Relax op: a matched composite function becomes ncnn layers.

A converter gets the graph under construction and the Match (the composite's calls and the blobs feeding
it) and returns the blob holding the composite's result. Blob shapes follow the tensor shapes without the
batch dimension, so a converter that changes ncnn's rank (global pooling) reshapes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax

from .ncnn_graph import NcnnGraph, shape_params
from .patterns import (BINARY_OPS, RESHAPES, bias_vector, channel_shuffle_groups, constant_value, interp_type,
                       is_constant, lrn_params, prim_value, reduce_axes, shape_of, slice_ranges)


@dataclass
class Match:
    calls: list[relax.Call]           # the composite's calls in order; calls[0] is the root op
    blobs: dict                       # composite parameter -> blob name

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


# ---------------------------------------------------------------------------------------------- activation

def _fused_activation(m: Match) -> dict[int, object]:
    """ncnn's activation_type (9) and activation_params (10) for a conv/dense followed by relu or clip."""
    if m.find("relax.nn.relu") is not None:
        return {9: 1}
    clip = m.find("relax.clip")
    if clip is not None:
        lo, hi = prim_value(clip.args[1]), prim_value(clip.args[2])
        if lo == 0.0 and hi == float("inf"):
            return {9: 1}
        return {9: 3, 10: [lo, hi]}
    return {}


def _fused_bias(m: Match, channels: int) -> np.ndarray | None:
    add = m.find("relax.add")
    if add is None:
        return None
    bias = next(arg for arg in add.args if is_constant(arg))  # the pattern matches add either way round
    return bias_vector(bias, channels, 1, len(shape_of(add)))


# ---------------------------------------------------------------------------------------------- layers

def _windowed(g: NcnnGraph, m: Match, layer: str, weight: np.ndarray, out_c: int, extra: dict) -> str:
    """Convolution/Deconvolution and their grouped (DepthWise) forms: the shared window, bias, activation."""
    op = m.root
    a = op.attrs
    kh, kw = weight.shape[-2:]
    top, left, bottom, right = (int(p) for p in a.padding)
    bias = _fused_bias(m, out_c)
    params = {0: out_c, 1: kw, 11: kh, 2: int(a.dilation[1]), 12: int(a.dilation[0]),
              3: int(a.strides[1]), 13: int(a.strides[0]), 4: left, 15: right, 14: top, 16: bottom,
              5: int(bias is not None), 6: weight.size, **_fused_activation(m), **extra}
    weights = [(np.ascontiguousarray(weight), True)] + ([(bias, False)] if bias is not None else [])
    groups = int(a.groups)
    if groups != 1:
        # the DepthWise layers run any grouped convolution, depthwise being groups == channels
        layer += "DepthWise"
        params[7] = groups
    return g.add(layer, [m.blob(op.args[0])], params, weights)[0]


def convert_conv2d(g: NcnnGraph, m: Match) -> str:
    weight = constant_value(m.root.args[1]).astype(np.float32)  # OIHW
    return _windowed(g, m, "Convolution", weight, weight.shape[0], {})


def convert_dense(g: NcnnGraph, m: Match) -> str:
    matmul = m.root
    weight = constant_value(matmul.args[1]).astype(np.float32)  # (K, N)
    n = weight.shape[1]
    bias = _fused_bias(m, n)
    params = {0: n, 1: int(bias is not None), 2: weight.size, **_fused_activation(m)}
    weights = [(np.ascontiguousarray(weight.T), True)] + ([(bias, False)] if bias is not None else [])
    return g.add("InnerProduct", [m.blob(matmul.args[0])], params, weights)[0]


def convert_pool2d(g: NcnnGraph, m: Match) -> str:
    pool = m.root
    a = pool.attrs
    top, left, bottom, right = (int(p) for p in a.padding)
    is_avg = pool.op.name == "relax.nn.avg_pool2d"
    params = {0: int(is_avg), 1: int(a.pool_size[1]), 11: int(a.pool_size[0]),
              2: int(a.strides[1]), 12: int(a.strides[0]),
              3: left, 14: right, 13: top, 15: bottom,
              5: 0 if a.ceil_mode else 1}  # pad_mode 0 pads the tail (ceil), 1 is plain (floor)
    if is_avg:
        params[6] = int(bool(a.count_include_pad))
    return g.add("Pooling", [m.blob(pool.args[0])], params)[0]


def convert_binary(g: NcnnGraph, m: Match) -> str:
    op = m.root
    op_type = BINARY_OPS[op.op.name]
    lhs, rhs = op.args
    for const, other, reversed_op in ((rhs, lhs, op_type), (lhs, rhs, {0: 0, 1: 7, 2: 2, 3: 8}[op_type])):
        if is_constant(const) and constant_value(const).size == 1:
            value = float(constant_value(const).reshape(-1)[0])
            # with a scalar on the left, sub/div become ncnn's reversed ops (rsub 7, rdiv 8)
            return g.add("BinaryOp", [m.blob(other)], {0: reversed_op, 1: 1, 2: value})[0]
    rank = len(shape_of(op))
    return g.add("BinaryOp", [_operand_blob(g, m, lhs, rank), _operand_blob(g, m, rhs, rank)],
                 {0: op_type})[0]


def _operand_blob(g: NcnnGraph, m: Match, expr, rank: int) -> str:
    if not is_constant(expr):
        return m.blob(expr)
    value = constant_value(expr).astype(np.float32)
    value = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return g.add_constant(value[0])


def convert_conv2d_transpose(g: NcnnGraph, m: Match) -> str:
    a = m.root.attrs
    weight = constant_value(m.root.args[1]).astype(np.float32)  # IOHW: (in, out / groups, kh, kw)
    groups = int(a.groups)
    in_c, out_g, kh, kw = weight.shape
    # ncnn wants, per group, (out, in, kh, kw)
    weight = weight.reshape(groups, in_c // groups, out_g, kh, kw).transpose(0, 2, 1, 3, 4)
    output_padding = {18: int(a.output_padding[1]), 19: int(a.output_padding[0])}
    return _windowed(g, m, "Deconvolution", weight, out_g * groups, output_padding)


def convert_adaptive_avg_pool2d(g: NcnnGraph, m: Match) -> str:
    op = m.root
    out_h, out_w = shape_of(op)[2:]
    if (out_h, out_w) == (1, 1):
        return convert_reduce(g, m)
    return g.add("Pooling", [m.blob(op.args[0])], {0: 1, 7: 1, 8: out_w, 18: out_h})[0]


REDUCTIONS = {"relax.sum": 0, "relax.mean": 3, "relax.max": 4, "relax.nn.adaptive_avg_pool2d": 3}


def convert_reduce(g: NcnnGraph, m: Match) -> str:
    op = m.root
    in_shape, out_shape = shape_of(op.args[0]), shape_of(op)
    axes = [2, 3] if op.op.name == "relax.nn.adaptive_avg_pool2d" else reduce_axes(op)
    if len(in_shape) == 4 and axes == [2, 3] and op.op.name != "relax.sum":
        # global pooling is ncnn's fast path; it yields a 1-D blob of channels
        pooled = g.add("Pooling", [m.blob(op.args[0])], {0: int(op.op.name != "relax.max"), 4: 1})[0]
        if len(out_shape) == 2:
            return pooled
        return g.add("Reshape", [pooled], shape_params(out_shape[1:]))[0]
    keepdims = len(out_shape) == len(in_shape)
    # 5=1: axes are counted the modern way (the default means "param is too old")
    params = {0: REDUCTIONS[op.op.name], 1: 0, 3: [a - 1 for a in axes], 4: int(keepdims), 5: 1}
    return g.add("Reduction", [m.blob(op.args[0])], params)[0]


def convert_concat(g: NcnnGraph, m: Match) -> str:
    op = m.root
    axis = int(op.attrs.axis) % len(shape_of(op)) - 1
    return g.add("Concat", [m.blob(p) for p in op.args[0].fields], {0: axis})[0]


def convert_split(g: NcnnGraph, m: Match) -> list[str]:
    op = m.root
    shape = shape_of(op.args[0])
    axis = int(op.attrs.axis) % len(shape)
    sections = op.attrs.indices_or_sections
    if isinstance(sections, (int, np.integer)) or hasattr(sections, "value") and not hasattr(sections, "__len__"):
        n = int(getattr(sections, "value", sections))
        sizes = [shape[axis] // n] * n
    else:
        bounds = [0] + [min(int(i), shape[axis]) for i in sections] + [shape[axis]]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    return g.add("Slice", [m.blob(op.args[0])], {0: sizes, 1: axis - 1}, n_tops=len(sizes))


def convert_strided_slice(g: NcnnGraph, m: Match) -> str:
    op = m.root
    ranges = slice_ranges(op)
    params = {9: [b for _, b, _ in ranges], 10: [e for _, _, e in ranges], 11: [a - 1 for a, _, _ in ranges]}
    top = g.add("Crop", [m.blob(op.args[0])], params)[0]
    if len(ranges) == 1:
        axis, begin, end = ranges[0]
        g.layers[-1].crop_range = (axis - 1, begin, end, shape_of(op.args[0])[axis])
    return top


# ncnn's Permute order types, keyed by the output's axes innermost first, named as the input's
PERMUTE_ORDERS = {
    2: ["wh", "hw"],
    3: ["whc", "hwc", "wch", "cwh", "hcw", "chw"],
    4: ["whdc", "hwdc", "wdhc", "dwhc", "hdwc", "dhwc", "whcd", "hwcd", "wchd", "cwhd", "hcwd", "chwd",
        "wdch", "dwch", "wcdh", "cwdh", "dcwh", "cdwh", "hdcw", "dhcw", "hcdw", "chdw", "dchw", "cdhw"],
}
AXIS_NAMES = {2: "hw", 3: "chw", 4: "cdhw"}


def convert_permute(g: NcnnGraph, m: Match) -> str:
    op = m.root
    perm = [int(a) - 1 for a in op.attrs.axes][1:]
    if perm == sorted(perm):
        return g.add("Noop", [m.blob(op.args[0])])[0]
    names = AXIS_NAMES[len(perm)]
    order = "".join(names[p] for p in reversed(perm))
    return g.add("Permute", [m.blob(op.args[0])], {0: PERMUTE_ORDERS[len(perm)].index(order)})[0]


PAD_TYPES = {"constant": 0, "edge": 1, "reflect": 2}


def convert_pad(g: NcnnGraph, m: Match) -> str:
    op = m.root
    a = op.attrs
    pads = [int(p) for p in a.pad_width]  # (before, after) per axis
    before, after = pads[0::2], pads[1::2]
    params = {0: before[-2], 1: after[-2], 2: before[-1], 3: after[-1], 4: PAD_TYPES[a.pad_mode],
              5: float(a.pad_value)}
    if len(before) == 4:
        params.update({7: before[1], 8: after[1]})
    return g.add("Padding", [m.blob(op.args[0])], params)[0]


def convert_prelu(g: NcnnGraph, m: Match) -> str:
    op = m.root
    slope = constant_value(op.args[1]).astype(np.float32).reshape(-1)
    return g.add("PReLU", [m.blob(op.args[0])], {0: slope.size}, [(slope, False)])[0]


def convert_resize2d(g: NcnnGraph, m: Match) -> str:
    op = m.root
    resize_type, align_corner = interp_type(op)
    out_h, out_w = shape_of(op)[2:]
    return g.add("Interp", [m.blob(op.args[0])], {0: resize_type, 3: out_h, 4: out_w, 6: align_corner})[0]


def convert_layer_norm(g: NcnnGraph, m: Match) -> str:
    op = m.root
    gamma = constant_value(op.args[1]).astype(np.float32).reshape(-1)
    beta = constant_value(op.args[2]).astype(np.float32).reshape(-1)
    params = {0: gamma.size, 1: float(op.attrs.epsilon), 2: 1}
    return g.add("LayerNorm", [m.blob(op.args[0])], params, [(gamma, False), (beta, False)])[0]


UNARY_LAYERS = {
    "relax.nn.relu": ("ReLU", {}),
    "relax.sigmoid": ("Sigmoid", {}),
    "relax.tanh": ("TanH", {}),
    "relax.nn.silu": ("Swish", {}),
    "relax.nn.gelu": ("GELU", {}),
    "relax.nn.gelu_tanh": ("GELU", {0: 1}),  # ncnn's fast GELU is the tanh approximation
}


def convert_unary(g: NcnnGraph, m: Match) -> str:
    op = m.root
    if op.op.name == "relax.nn.leakyrelu":
        return g.add("ReLU", [m.blob(op.args[0])], {0: float(op.attrs.alpha)})[0]
    layer, params = UNARY_LAYERS[op.op.name]
    return g.add(layer, [m.blob(op.args[0])], params)[0]


def convert_clip(g: NcnnGraph, m: Match) -> str:
    clip = m.root
    lo, hi = prim_value(clip.args[1]), prim_value(clip.args[2])
    if lo == 0.0 and hi == float("inf"):
        return g.add("ReLU", [m.blob(clip.args[0])])[0]
    return g.add("Clip", [m.blob(clip.args[0])], {0: lo, 1: hi})[0]


def convert_softmax(g: NcnnGraph, m: Match) -> str:
    op = m.root
    rank = len(shape_of(op))
    axis = int(op.attrs.axis) % rank - 1  # ncnn's axes start after the batch dimension
    # 1=1: ncnn's fixed axis numbering (the historical default counts axes differently for 2-D/3-D blobs)
    return g.add("Softmax", [m.blob(op.args[0])], {0: axis, 1: 1})[0]


def convert_reshape(g: NcnnGraph, m: Match) -> str:
    op = m.root
    return g.add("Reshape", [m.blob(op.args[0])], shape_params(shape_of(op)[1:]))[0]


def convert_channel_shuffle(g: NcnnGraph, m: Match) -> str:
    grouped, swapped, out = m.calls
    return g.add("ShuffleChannel", [m.blob(grouped.args[0])], {0: channel_shuffle_groups(grouped, swapped, out)})[0]


def convert_lrn(g: NcnnGraph, m: Match) -> str:
    square = m.calls[0]
    return g.add("LRN", [m.blob(square.args[0])], {0: 0, **lrn_params(m.calls)})[0]  # 0: across channels


# Composites of several ops that become one layer of their own, by pattern name; the rest by their root op.
PATTERN_CONVERTERS = {
    "ncnn.channel_shuffle": convert_channel_shuffle,
    "ncnn.lrn": convert_lrn,
}

CONVERTERS = {
    "relax.nn.conv2d": convert_conv2d,
    "relax.nn.conv2d_transpose": convert_conv2d_transpose,
    "relax.matmul": convert_dense,
    "relax.nn.max_pool2d": convert_pool2d,
    "relax.nn.avg_pool2d": convert_pool2d,
    "relax.nn.adaptive_avg_pool2d": convert_adaptive_avg_pool2d,
    "relax.clip": convert_clip,
    "relax.nn.softmax": convert_softmax,
    "relax.concat": convert_concat,
    "relax.split": convert_split,
    "relax.strided_slice": convert_strided_slice,
    "relax.permute_dims": convert_permute,
    "relax.nn.pad": convert_pad,
    "relax.nn.prelu": convert_prelu,
    "relax.image.resize2d": convert_resize2d,
    "relax.nn.layer_norm": convert_layer_norm,
    "relax.nn.leakyrelu": convert_unary,
    **{name: convert_unary for name in UNARY_LAYERS},
    **{name: convert_reduce for name in REDUCTIONS if name != "relax.nn.adaptive_avg_pool2d"},
    **{name: convert_reshape for name in RESHAPES},
    **{name: convert_binary for name in BINARY_OPS},
}


def converter_for(pattern: str, root_op: str):
    return PATTERN_CONVERTERS.get(pattern) or CONVERTERS[root_op]
