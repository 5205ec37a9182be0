"""Elementwise math with an ncnn UnaryOp: abs, negative, floor, ceil, square, sqrt, rsqrt, exp, log, trig, round,
trunc, sign, and power by 2, 0.5, -0.5 or -1. (erf has no ncnn layer: alone it stays in TVM; inside a GELU it is
matched whole.)"""

from __future__ import annotations

from ..graph import NcnnGraph
from ...relax_util import scalar_constant
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


# x ** p for the exponents a UnaryOp computes exactly; ncnn's BinaryOp pow (exp(p * log(x))) is NaN for x < 0
POWERS = {2.0: 4, 0.5: 5, -0.5: 6, -1.0: 15}


def why_not_power(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if scalar_constant(call.args[1]) not in POWERS:
        return f"exponent is not one of {sorted(POWERS)} (ncnn's pow is exp(y log x): NaN for a negative x)"
    return None


def convert_power(g: NcnnGraph, m: Match) -> str:
    return g.add("UnaryOp", [m.blob(m.root.args[0])], {0: POWERS[scalar_constant(m.root.args[1])]})[0]


OPS = [*(Op(name, why_not_io, convert_unary_op, ("UnaryOp",)) for name in UNARY_OP_TYPES),
       Op("relax.power", why_not_power, convert_power, ("UnaryOp",), extra_args=(1,))]
