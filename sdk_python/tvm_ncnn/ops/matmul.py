"""matmul by a constant weight -> InnerProduct, with bias and activation fused."""

from __future__ import annotations

import numpy as np

from ..ncnn_graph import NcnnGraph
from ..relax_util import constant_value, is_constant, shape_of
from .base import Match, Op, is_float32_or_default, why_not_io
from .epilogue import fused_activation, fused_bias, with_bias_and_activation


def why_not_matmul(call) -> str | None:
    x, w = call.args
    if not is_constant(w):
        return "right operand is not a constant weight"
    xs, ws = shape_of(x), shape_of(w)
    if xs is None or len(xs) != 2 or ws is None or len(ws) != 2:
        return "only (1, K) x (K, N) matmul maps to InnerProduct"
    if not is_float32_or_default(call.attrs.out_dtype):
        return f"out_dtype {call.attrs.out_dtype}"
    return why_not_io(call)


def convert_dense(g: NcnnGraph, m: Match) -> str:
    matmul = m.root
    weight = constant_value(matmul.args[1]).astype(np.float32)  # (K, N)
    n = weight.shape[1]
    bias = fused_bias(m, n)
    params = {0: n, 1: int(bias is not None), 2: weight.size, **fused_activation(m)}
    weights = [(np.ascontiguousarray(weight.T), True)] + ([(bias, False)] if bias is not None else [])
    return g.add("InnerProduct", [m.blob(matmul.args[0])], params, weights)[0]


OPS = [Op("relax.matmul", why_not_matmul, convert_dense, ("InnerProduct",), alone=False)]

PATTERNS = with_bias_and_activation("dense", "relax.matmul", channel_axis=1)
