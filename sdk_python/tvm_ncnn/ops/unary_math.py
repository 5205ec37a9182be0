"""Elementwise math with an ncnn UnaryOp: abs, negative, floor, ceil, square, sqrt, rsqrt, exp, log, trig, round,
trunc, sign. (erf has no ncnn layer: alone it stays in TVM; inside a GELU it is matched whole.)"""

from __future__ import annotations

from ..ncnn_graph import NcnnGraph
from .base import Match, Op, why_not_io

# ncnn UnaryOp op_type (src/layer/unaryop.h)
UNARY_OP_TYPES = {
    "relax.abs": 0, "relax.negative": 1, "relax.floor": 2, "relax.ceil": 3, "relax.square": 4, "relax.sqrt": 5,
    "relax.rsqrt": 6, "relax.exp": 7, "relax.log": 8, "relax.sin": 9, "relax.cos": 10, "relax.tan": 11,
    "relax.asin": 12, "relax.acos": 13, "relax.atan": 14, "relax.round": 18, "relax.trunc": 19, "relax.sign": 20,
    "relax.sinh": 22, "relax.asinh": 23, "relax.cosh": 24, "relax.acosh": 25, "relax.atanh": 26,
}


def convert_unary_op(g: NcnnGraph, m: Match) -> str:
    return g.add("UnaryOp", [m.blob(m.root.args[0])], {0: UNARY_OP_TYPES[m.root.op.name]})[0]


OPS = [Op(name, why_not_io, convert_unary_op, ("UnaryOp",)) for name in UNARY_OP_TYPES]
