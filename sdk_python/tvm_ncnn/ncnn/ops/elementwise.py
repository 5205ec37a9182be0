"""add, subtract, multiply, divide, maximum, minimum -> BinaryOp: tensor with tensor of equal rank, or with a
constant that is a scalar (folded into the layer) or broadcasts per channel (a MemoryData operand)."""

from __future__ import annotations

import numpy as np

from ..graph import NcnnGraph
from ...relax_util import constant_value, is_constant, scalar_constant, shape_of
from .base import Match, Op, why_not_io

# ncnn BinaryOp op_type (src/layer/binaryop.h). Not pow: ncnn's vectorised pow is exp(y * log(x)), NaN for
# a negative x where TVM computes x * x (a decomposed LayerNorm squares x - mean); see unary_math.py.
BINARY_OPS = {"relax.add": 0, "relax.subtract": 1, "relax.multiply": 2, "relax.divide": 3, "relax.maximum": 4,
              "relax.minimum": 5}
# with the scalar on the left, sub and div become ncnn's reversed ops (rsub 7, rdiv 8)
REVERSED = {0: 0, 1: 7, 2: 2, 3: 8, 4: 4, 5: 5}


def why_not_binary(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a, b = call.args
    if is_constant(a) and is_constant(b):
        return "both operands are constants"
    out_rank = len(shape_of(call))
    for operand in (a, b):
        shape = shape_of(operand)
        if is_constant(operand):
            if constant_value(operand).size == 1:
                continue
            if len(shape) > out_rank or (len(shape) == out_rank and shape[0] != 1):
                return "constant operand carries a batch dimension other than 1"
            if constant_value(operand).dtype != np.float32:
                return f"constant operand is {constant_value(operand).dtype}"
        elif len(shape) != out_rank:
            # ncnn broadcasts operands of different rank by its own rules, not numpy's
            return "operands of different rank"
    return None


def convert_binary(g: NcnnGraph, m: Match) -> str:
    op = m.root
    op_type = BINARY_OPS[op.op.name]
    lhs, rhs = op.args
    for const, other, kind in ((rhs, lhs, op_type), (lhs, rhs, REVERSED[op_type])):
        value = scalar_constant(const)
        if value is not None:
            return g.add("BinaryOp", [m.blob(other)], {0: kind, 1: 1, 2: value})[0]
    rank = len(shape_of(op))
    return g.add("BinaryOp", [_operand_blob(g, m, lhs, rank), _operand_blob(g, m, rhs, rank)], {0: op_type})[0]


def _operand_blob(g: NcnnGraph, m: Match, expr, rank: int) -> str:
    if not is_constant(expr):
        return m.blob(expr)
    value = constant_value(expr).astype(np.float32)
    value = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return g.add_constant(value[0])


OPS = [Op(name, why_not_binary, convert_binary, ("BinaryOp", "MemoryData"), extra_args=(1,))
       for name in BINARY_OPS]
