"""matmul -> InnerProduct (a vector by a constant (K, N) weight), Gemm (the rows of a token tensor by a constant
weight, as pnnx writes nn.Linear on tokens), or MatMul (two computed tensors; a right operand transposed just
before, as attention's `v @ attn.transpose(-2, -1)`, is MatMul's own transB).

MatMul broadcasts a leading dimension of 1 on either side (src/layer/matmul.cpp and its x86/arm kernels reuse
channel 0 / depth 0 of an operand whose c or d is 1), as multi-query attention needs: one shared K/V head
[1, 1, K, N] against every query head [1, h, M, K]. An operand of lower rank is first reshaped to the other's
rank with leading ones, so MatMul always sees equal ranks (it maps a 2-D operand against a 4-D one by its
own rules, not numpy's)."""

from __future__ import annotations

import numpy as np

from tvm.relax.dpl import is_op, wildcard

from ..graph import NcnnGraph, shape_params
from ...relax_util import constant_value, is_constant, shape_of
from .base import PREFIX, Fused, Match, Op, check_calls, is_float32_or_default, why_not_io, why_not_tensor
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
    if xs[:-2] != ws[:-2] and (len(xs) < 3 or len(ws) < 3 or not _leading_broadcast(xs, ws)):
        return f"operands {xs} and {ws} broadcast: MatMul broadcasts leading 1s of operands of rank 3 or more"
    return None


def _leading_broadcast(xs, ws) -> bool:
    """The leading (batch) dimensions broadcast by numpy's rules: aligned from the right, each pair equal or one
    of them 1 (a missing one counts as 1)."""
    lx, lw = list(xs[:-2]), list(ws[:-2])
    rank = max(len(lx), len(lw))
    lx, lw = [1] * (rank - len(lx)) + lx, [1] * (rank - len(lw)) + lw
    return all(a == b or 1 in (a, b) for a, b in zip(lx, lw))


def _same_rank(g: NcnnGraph, blob: str, shape, rank: int) -> str:
    """blob reshaped to `rank` with leading ones (a Reshape without the batch: ncnn's own view of it)."""
    shape = list(shape)
    if len(shape) == rank:
        return blob
    return g.add("Reshape", [blob], shape_params([1] * (rank - len(shape)) + shape[1:]))[0]


def _matmul(g: NcnnGraph, x, w, x_blob: str, w_blob: str, trans_b: int) -> str:
    xs, ws = shape_of(x), shape_of(w)
    rank = max(len(xs), len(ws))
    return g.add("MatMul", [_same_rank(g, x_blob, xs, rank), _same_rank(g, w_blob, ws, rank)], {0: trans_b})[0]


def convert_matmul(g: NcnnGraph, m: Match) -> str:
    x, w = m.root.args
    if is_constant(w):
        return _inner_product(g, m)
    return _matmul(g, x, w, m.blob(x), m.blob(w), 0)


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


def _transposed_right() -> Fused:
    """matmul(x, permute_dims(y)) with the permute swapping y's last two axes: one MatMul with transB."""
    permute = is_op("relax.permute_dims")(wildcard())
    root = is_op("relax.matmul")(wildcard(), permute)
    calls_run = check_calls("root")

    def check(ctx) -> bool:
        swap = ctx.annotated_expr["permute"]
        rank = len(shape_of(swap))
        axes = list(range(rank))[::-1] if swap.attrs.axes is None else [int(a) for a in swap.attrs.axes]
        return axes == [*range(rank - 2), rank - 1, rank - 2] and why_not_tensor(swap.args[0]) is None \
            and not is_constant(swap.args[0]) and calls_run(ctx)

    return Fused(f"{PREFIX}.matmul_transb", root, {"root": root, "permute": permute}, check, _convert_transposed,
                 ("MatMul", "Reshape"))


def _convert_transposed(g: NcnnGraph, m: Match) -> str:
    swap = m.calls[0]  # the permute, bound first; the matmul reads it
    x = m.result.args[0]
    return _matmul(g, x, swap.args[0], m.blob(x), m.blob(swap.args[0]), 1)


OPS = [Op("relax.matmul", why_not_matmul, convert_matmul, ("InnerProduct", "Gemm", "MatMul", "Reshape"),
          extra_args=(1,))]

PATTERNS = [_transposed_right(), *with_bias_and_activation("dense", "relax.matmul", channel_axis=-1)]
