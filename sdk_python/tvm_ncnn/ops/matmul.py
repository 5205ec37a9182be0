"""matmul -> InnerProduct (a vector by a constant (K, N) weight), Gemm (the rows of a token tensor by a constant
weight, as pnnx writes nn.Linear on tokens), or MatMul (two computed tensors)."""

from __future__ import annotations

import numpy as np

from ..ncnn_graph import NcnnGraph, shape_params
from ..relax_util import constant_value, is_constant, shape_of
from .base import Match, Op, is_float32_or_default, why_not_io
from .epilogue import fused_activation, fused_bias, with_bias_and_activation


def why_not_matmul(call) -> str | None:
    if not is_float32_or_default(call.attrs.out_dtype):
        return f"out_dtype {call.attrs.out_dtype}"
    reason = why_not_io(call)
    if reason:
        return reason
    x, w = call.args
    xs, ws = shape_of(x), shape_of(w)
    if is_constant(x):
        return "left operand is a constant"
    if is_constant(w):
        return None if len(ws) == 2 else f"constant right operand of rank {len(ws)}, InnerProduct takes (K, N)"
    if len(xs) != len(ws) or xs[:-2] != ws[:-2]:
        return f"operands {xs} and {ws} broadcast, MatMul here takes equal leading dimensions"
    return None


def convert_matmul(g: NcnnGraph, m: Match) -> str:
    x, w = m.root.args
    if is_constant(w):
        return _inner_product(g, m)
    return g.add("MatMul", [m.blob(x), m.blob(w)], {0: 0})[0]


def _inner_product(g: NcnnGraph, m: Match) -> str:
    """InnerProduct runs a 1-D blob as one row and a 2-D blob row by row; deeper token tensors are folded to rows
    and back."""
    matmul = m.root
    weight = constant_value(matmul.args[1]).astype(np.float32)  # (K, N)
    k, n = weight.shape
    rows = shape_of(matmul.args[0])[1:-1]  # without the batch and K
    bias = fused_bias(m, n, channel_axis=-1)
    params = {0: n, 1: int(bias is not None), 2: weight.size, **fused_activation(m)}
    weights = [(np.ascontiguousarray(weight.T), True)] + ([(bias, False)] if bias is not None else [])
    blob = m.blob(matmul.args[0])
    if len(rows) > 1:
        blob = g.add("Reshape", [blob], shape_params([int(np.prod(rows)), k]))[0]
    if int(np.prod(rows)) > 1 and not fused_activation(m):
        out = _gemm(g, blob, weight, bias, int(np.prod(rows)))
    else:
        out = g.add("InnerProduct", [blob], params, weights)[0]
    if len(rows) > 1:
        out = g.add("Reshape", [out], shape_params([*rows, n]))[0]
    return out


def _gemm(g: NcnnGraph, blob: str, weight: np.ndarray, bias: np.ndarray | None, rows: int) -> str:
    """Rows x constant weight (+ bias per output) as ncnn's Gemm, as pnnx writes a Linear on tokens: its tiled
    kernel took a ViT-tiny from 48.7 to 26.8 ms (1 thread; native ncnn 26.2) against InnerProduct's row-by-row
    path. B is stored transposed (N, K), C broadcast along N (type 4)."""
    k, n = weight.shape
    params = {2: 0, 3: 1, 4: 0, 5: 1, 6: int(bias is not None), 7: rows, 8: n, 9: k}
    weights = [(np.ascontiguousarray(weight.T), True)]
    if bias is not None:
        params[10] = 4
        weights.append((bias.reshape(1, n), True))
    return g.add("Gemm", [blob], params, weights)[0]


OPS = [Op("relax.matmul", why_not_matmul, convert_matmul, ("InnerProduct", "Gemm", "MatMul", "Reshape"),
          extra_args=(1,))]

PATTERNS = with_bias_and_activation("dense", "relax.matmul", channel_axis=-1)
