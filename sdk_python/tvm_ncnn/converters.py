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
from .patterns import BINARY_OPS, bias_vector, constant_value, is_constant, prim_value, shape_of


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
    out = shape_of(add)
    return bias_vector(add.args[1], channels, 1, len(out))


# ---------------------------------------------------------------------------------------------- layers

def convert_conv2d(g: NcnnGraph, m: Match) -> str:
    conv = m.root
    a = conv.attrs
    weight = constant_value(conv.args[1]).astype(np.float32)
    out_c, _, kh, kw = weight.shape
    top, left, bottom, right = (int(p) for p in a.padding)
    bias = _fused_bias(m, out_c)
    params = {0: out_c, 1: kw, 11: kh, 2: int(a.dilation[1]), 12: int(a.dilation[0]),
              3: int(a.strides[1]), 13: int(a.strides[0]),
              4: left, 15: right, 14: top, 16: bottom,
              5: int(bias is not None), 6: weight.size, **_fused_activation(m)}
    weights = [(weight, True)] + ([(bias, False)] if bias is not None else [])
    groups = int(a.groups)
    if groups == 1:
        return g.add("Convolution", [m.blob(conv.args[0])], params, weights)[0]
    # ConvolutionDepthWise runs any grouped convolution, depthwise being groups == channels
    params[7] = groups
    return g.add("ConvolutionDepthWise", [m.blob(conv.args[0])], params, weights)[0]


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


def convert_global_avg_pool(g: NcnnGraph, m: Match) -> str:
    """mean over H, W or adaptive_avg_pool2d to 1x1. ncnn's global pooling yields a 1-D blob of channels."""
    op = m.root
    pooled = g.add("Pooling", [m.blob(op.args[0])], {0: 1, 4: 1})[0]
    out_shape = shape_of(op)
    if len(out_shape) == 2:
        return pooled
    return g.add("Reshape", [pooled], shape_params(out_shape[1:]))[0]


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


def convert_relu(g: NcnnGraph, m: Match) -> str:
    return g.add("ReLU", [m.blob(m.root.args[0])])[0]


def convert_sigmoid(g: NcnnGraph, m: Match) -> str:
    return g.add("Sigmoid", [m.blob(m.root.args[0])])[0]


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


CONVERTERS = {
    "relax.nn.conv2d": convert_conv2d,
    "relax.matmul": convert_dense,
    "relax.nn.max_pool2d": convert_pool2d,
    "relax.nn.avg_pool2d": convert_pool2d,
    "relax.nn.adaptive_avg_pool2d": convert_global_avg_pool,
    "relax.mean": convert_global_avg_pool,
    "relax.nn.relu": convert_relu,
    "relax.sigmoid": convert_sigmoid,
    "relax.clip": convert_clip,
    "relax.nn.softmax": convert_softmax,
    "relax.reshape": convert_reshape,
    **{name: convert_binary for name in BINARY_OPS},
}
