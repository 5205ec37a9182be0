"""ONNX LSTM, GRU and RNN nodes -> one ncnn LSTM, GRU or RNN layer each.

frontend/recurrent.py imports each node as a call of a Relax function `onnx_<kind>_<direction>[_lbr]` on
batch-first tensors (X [1, T, I] -> Y [1, T, D*H], Y_h and Y_c [1, D, H]); ncnn takes the call whole when its
layer computes what the function does:

- ncnn's layers take X as a [T, I] blob and write Y as [T, D*H], the backward direction's H after the forward's
  at each step (direction 0 forward, 1 reverse, 2 both), and, given 3 (LSTM) or 2 bottoms, start from the
  hidden (and cell) state blobs [D, H] and write the last ones as extra tops;
- weights: ONNX's gates reordered to ncnn's (LSTM i o f c -> I F O G, GRU z r h -> R U N), the input and
  recurrent biases summed (GRU keeps the new gate's two apart: ncnn computes tanh(Wx + b_W + r * (Rh + b_R)),
  ONNX's linear_before_reset=1, which torch exports; the default 0 stays in TVM);
- no peepholes (an LSTM with non-zero ones stays in TVM), batch 1 only.

Only LSTM is built into the runtime's ncnn (BUILT): GRU and RNN would take the aarch64 bundle over its size budget
(cmake/ncnn.cmake), so their calls stay in TVM. Their conversion is kept, and tested against the ncnn wheel
(tests/python/test_recurrent.py), for the day they are built: add them to BUILT and TVM_NCNN_LAYERS.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_gv, wildcard

from ..graph import NcnnGraph
from ..recurrent_function import GATES, Recurrent, recurrent_of
from ...relax_util import constant_value, is_constant
from .base import PREFIX, Fused, Match, why_not_tensor

BUILT = ("LSTM",)  # the recurrent layers cmake/ncnn.cmake builds
LAYERS = (*BUILT, "MemoryData")
# ONNX's gate blocks in the order ncnn's layer reads them
NCNN_ORDER = {"LSTM": [0, 2, 1, 3], "GRU": [1, 0, 2], "RNN": [0]}
DIRECTION = {"forward": 0, "reverse": 1, "bidirectional": 2}


def why_not_recurrent(call) -> str | None:
    """None when one ncnn layer computes the call, else why it stays in TVM."""
    rec = recurrent_of(call)
    if rec is None:
        return "call into a TVM function"
    x, w, r, b, *rest = call.args
    reason = why_not_tensor(x, f"{rec.kind} input")
    if reason:
        return reason
    if not all(is_constant(a) for a in (w, r, b)):
        return f"{rec.kind} weights are not constants"
    if rec.kind == "GRU" and not rec.linear_before_reset:
        return "GRU with linear_before_reset=0: ncnn's GRU applies the reset gate after the recurrent product " \
               "(linear_before_reset=1, as torch exports)"
    if rec.kind not in BUILT:
        return f"ncnn's {rec.kind} layer is not built into the runtime (the aarch64 bundle's size budget)"
    if rec.kind == "LSTM" and len(rest) == 3 and (not is_constant(rest[2]) or np.any(constant_value(rest[2]))):
        return "LSTM with peepholes: ncnn's LSTM has none"
    for state in rest[:2 if rec.kind == "LSTM" else 1]:
        reason = None if is_constant(state) else why_not_tensor(state, f"{rec.kind} initial state")
        if reason:
            return reason
    for i, field in enumerate(call.ty.fields):
        reason = why_not_tensor(relax.Var("out", field), f"{rec.kind} output {i}")
        if reason:
            return reason
    return None


def _pattern(arity: int) -> Fused:
    root = is_gv()(*[wildcard() for _ in range(arity)])

    def check(ctx) -> bool:
        return not has_leaking_intermediate_variables(ctx) and why_not_recurrent(ctx.annotated_expr["root"]) is None

    return Fused(f"{PREFIX}.recurrent_{arity}", root, {"root": root}, check, convert_recurrent, LAYERS)


def layer_weights(rec: Recurrent, w: np.ndarray, r: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """ncnn's weight_xc [D, G*H, I], bias_c [D, rows, H] and weight_hc [D, G*H, H] from ONNX's W, R, B."""
    gates, d = GATES[rec.kind], rec.directions
    hidden = r.shape[-1]
    order = NCNN_ORDER[rec.kind]

    def gate_blocks(m):  # [D, G*H, ...] -> [D, G, H, ...] in ncnn's gate order
        return m.reshape(d, gates, hidden, *m.shape[2:])[:, order]

    wb, rb = (b.reshape(d, 2, gates, hidden)[:, k][:, order] for k in (0, 1))
    if rec.kind == "GRU":  # R, U: both biases summed; N: the input's and the recurrent one's apart
        bias = np.concatenate([wb[:, :2] + rb[:, :2], wb[:, 2:], rb[:, 2:]], axis=1)
    else:
        bias = wb + rb
    return [np.ascontiguousarray(m, dtype=np.float32) for m in (gate_blocks(w), bias, gate_blocks(r))]


def convert_recurrent(g: NcnnGraph, m: Match) -> list[str]:
    call = m.root
    rec = recurrent_of(call)
    x, w, r, b, *rest = call.args
    weight_xc, bias, weight_hc = layer_weights(rec, *(constant_value(a) for a in (w, r, b)))
    hidden = weight_hc.shape[-1]
    bottoms = [m.blob(x)]
    states = rest[:2 if rec.kind == "LSTM" else 1]
    if any(not is_constant(s) or np.any(constant_value(s)) for s in states):  # zeros: the layer's own start
        bottoms += [g.add_constant(constant_value(s)[0]) if is_constant(s) else m.blob(s) for s in states]
    params = {0: hidden, 1: int(weight_xc.size), 2: DIRECTION[rec.direction]}
    tops = 3 if rec.kind == "LSTM" else 2
    return g.add(rec.kind, bottoms, params, [(weight_xc, True), (bias, True), (weight_hc, True)], n_tops=tops)


PATTERNS = [_pattern(n) for n in (4, 5, 6, 7)]
