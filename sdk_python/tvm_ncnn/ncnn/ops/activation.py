"""Activations and softmax: relu, leaky_relu, prelu, clip, sigmoid, tanh, silu, gelu -> their ncnn layers."""

from __future__ import annotations

import numpy as np

from ..graph import NcnnGraph
from ...relax_util import constant_value, is_constant, prim_value, shape_of
from .base import Match, Op, why_not_io

UNARY_LAYERS = {
    "relax.nn.relu": ("ReLU", {}),
    "relax.sigmoid": ("Sigmoid", {}),
    "relax.tanh": ("TanH", {}),
    "relax.nn.silu": ("Swish", {}),
    "relax.nn.gelu": ("GELU", {}),
    "relax.nn.gelu_tanh": ("GELU", {0: 1}),  # ncnn's fast GELU is the tanh approximation
}


def convert_unary(g: NcnnGraph, m: Match) -> str:
    layer, params = UNARY_LAYERS[m.root.op.name]
    return g.add(layer, [m.blob(m.root.args[0])], params)[0]


def convert_leaky_relu(g: NcnnGraph, m: Match) -> str:
    return g.add("ReLU", [m.blob(m.root.args[0])], {0: float(m.root.attrs.alpha)})[0]


def convert_clip(g: NcnnGraph, m: Match) -> str:
    clip = m.root
    lo, hi = prim_value(clip.args[1]), prim_value(clip.args[2])
    if lo == 0.0 and hi == float("inf"):
        return g.add("ReLU", [m.blob(clip.args[0])])[0]
    return g.add("Clip", [m.blob(clip.args[0])], {0: lo, 1: hi})[0]


def why_not_prelu(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if not is_constant(call.args[1]):
        return "slope is not a constant"
    shape = shape_of(call.args[0])
    channels = shape[1] if len(shape) > 1 else 1
    if int(call.attrs.axis) % len(shape) != 1 or constant_value(call.args[1]).size not in (1, channels):
        return "slope not per channel"
    return None


def convert_prelu(g: NcnnGraph, m: Match) -> str:
    slope = constant_value(m.root.args[1]).astype(np.float32).reshape(-1)
    return g.add("PReLU", [m.blob(m.root.args[0])], {0: slope.size}, [(slope, False)])[0]


def why_not_softmax(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call)) == 0:
        return "softmax over the batch axis"
    return None


def convert_softmax(g: NcnnGraph, m: Match) -> str:
    op = m.root
    axis = int(op.attrs.axis) % len(shape_of(op)) - 1  # ncnn's axes start after the batch dimension
    # 1=1: ncnn's fixed axis numbering (the historical default counts axes differently for 2-D/3-D blobs)
    return g.add("Softmax", [m.blob(op.args[0])], {0: axis, 1: 1})[0]


OPS = [
    *(Op(name, why_not_io, convert_unary, (layer,)) for name, (layer, _) in UNARY_LAYERS.items()),
    Op("relax.nn.leakyrelu", why_not_io, convert_leaky_relu, ("ReLU",)),
    Op("relax.clip", why_not_io, convert_clip, ("ReLU", "Clip"), extra_args=(2,)),
    Op("relax.nn.prelu", why_not_prelu, convert_prelu, ("PReLU",), extra_args=(1,)),
    Op("relax.nn.softmax", why_not_softmax, convert_softmax, ("Softmax",)),
]
