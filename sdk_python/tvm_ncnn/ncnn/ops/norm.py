"""Normalisations: layer_norm -> LayerNorm; AlexNet's local response norm (nine calls in ONNX/torch) -> LRN."""

from __future__ import annotations

import numpy as np
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_const, is_op, wildcard

from ..graph import NcnnGraph
from ...relax_util import constant_value, is_constant, scalar_constant, shape_of
from .base import PREFIX, Fused, Match, Op, why_not_io, why_not_tensor


def why_not_layer_norm(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    rank = len(shape_of(call.args[0]))
    axes = sorted(int(a) % rank for a in call.attrs.axes)
    if axes not in ([rank - 1], [rank - 2, rank - 1]):
        return "layer_norm over axes other than the last one or two"
    if len(axes) == 2 and rank != 4:
        # ncnn's LayerNorm spans h x w only on a 3-D blob (c, h, w); on a 2-D one it normalizes each row alone
        return f"layer_norm over the last two axes of a rank-{rank} tensor (ncnn spans two axes only at rank 4)"
    if not (is_constant(call.args[1]) and is_constant(call.args[2])):
        return "gamma/beta are not constants"
    return None


def convert_layer_norm(g: NcnnGraph, m: Match) -> str:
    op = m.root
    gamma = constant_value(op.args[1]).astype(np.float32).reshape(-1)
    beta = constant_value(op.args[2]).astype(np.float32).reshape(-1)
    params = {0: gamma.size, 1: float(op.attrs.epsilon), 2: 1}
    return g.add("LayerNorm", [m.blob(op.args[0])], params, [(gamma, False), (beta, False)])[0]


# ---------------------------------------------------------------------------------------------- LRN

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
    scalars = [scalar_constant(c.args[1]) for c in (scaled, shifted, powered)]
    if None in scalars:
        return None
    alpha, bias, beta = scalars
    return {1: size, 2: alpha, 3: beta, 4: bias}


def _lrn() -> Fused:
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

    return Fused(f"{PREFIX}.lrn", out, chain, check, convert_lrn, ("LRN",))


def convert_lrn(g: NcnnGraph, m: Match) -> str:
    square = m.calls[0]
    return g.add("LRN", [m.blob(square.args[0])], {0: 0, **lrn_params(m.calls)})[0]  # 0: across channels


OPS = [Op("relax.nn.layer_norm", why_not_layer_norm, convert_layer_norm, ("LayerNorm",), extra_args=(2,))]

PATTERNS = [_lrn()]
