"""Value-preserving Relax rewrites run before partitioning, so that ncnn can take ops it has no layer for in the
form the importer wrote:

- variance(x) -> mean(square(x - mean(x))): ncnn has no variance layer, but Reduction, BinaryOp and UnaryOp
  (GroupNorm(1, C) in MobileViT-v2 imports as mean and variance);
- binary(a, broadcast_to(b)) -> binary(a, b) when b broadcasts to the same result by itself: ncnn's BinaryOp
  broadcasts, and has no layer that only broadcasts (F.normalize in EdgeNeXt divides by a broadcast norm).
- ((x - mean) / std) * gamma + beta with constants -> x * scale + shift: a batch norm that survives import (after
  a Linear: LeViT's 48) costs two BinaryOps instead of four, each with its MemoryData.
(The token-layout rewrite lives in unit_batch.py, rank-6 window partitions in window_layout.py.)
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

from ..relax_util import constant_value, shape_of
from . import window_layout

BINARY = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum",
          "relax.power")


def _variance_as_means(func: relax.Function) -> relax.Function:
    pattern = is_op("relax.variance")(wildcard())

    def rewrite(call, matches):
        x, a = call.args[0], call.attrs
        axes = None if a.axis is None else [int(v) for v in a.axis]
        centred = relax.op.subtract(x, relax.op.mean(x, axes, keepdims=True))
        return relax.op.mean(relax.op.square(centred), axes, keepdims=bool(a.keepdims))

    return rewrite_call(pattern, rewrite, func)


def _batch_norm_as_affine(func: relax.Function) -> relax.Function:
    consts = [is_const() for _ in range(4)]
    centred = is_op("relax.subtract")(wildcard(), consts[0])
    pattern = is_op("relax.add")(is_op("relax.multiply")(is_op("relax.divide")(centred, consts[1]), consts[2]),
                                 consts[3])

    def rewrite(call, matches):
        mean, std, gamma, beta = (constant_value(matches[c]).astype(np.float64) for c in consts)
        x = matches[centred].args[0]
        scale = gamma / std
        shift = beta - mean * scale
        if np.broadcast_shapes(scale.shape, shift.shape, tuple(shape_of(x) or ())) != tuple(shape_of(call) or ()):
            return call
        dtype = str(call.ty.dtype)
        return relax.op.add(relax.op.multiply(x, relax.const(scale.astype(dtype))),
                            relax.const(shift.astype(dtype)))

    return rewrite_call(pattern, rewrite, func)


def _broadcast_into_binary(func: relax.Function) -> relax.Function:
    for op in BINARY:
        broadcast, other = is_op("relax.broadcast_to")(wildcard(), wildcard()), wildcard()
        pattern = is_op(op)(other, broadcast) | is_op(op)(broadcast, other)

        values = _bound_values(func)

        def rewrite(call, matches, broadcast=broadcast, other=other, values=values):
            # The side is read from the call itself: TVM's matcher also matches add and multiply with their
            # operands swapped, so the pattern's order does not say which argument the broadcast was. Neither
            # does matches[other]: the matcher may give a bound variable's value, not the variable the call
            # names (XCiT's q / |q| and k / |k| side by side came out as |q| / q).
            source, rest = matches[broadcast].args[0], matches[other]
            if not _broadcasts_to(shape_of(source), shape_of(rest), shape_of(call)):
                return call
            sides = [values.get(a, a).same_as(matches[broadcast]) or a.same_as(matches[broadcast])
                     for a in call.args]
            if sides == [False, True]:
                return relax.Call(call.op, [call.args[0], source], call.attrs, call.ty_args)
            if sides == [True, False]:
                return relax.Call(call.op, [source, call.args[1]], call.attrs, call.ty_args)
            return call  # both or neither: not the binary op the pattern meant to simplify

        func = rewrite_call(pattern, rewrite, func)
    return func


def _bound_values(func: relax.Function) -> dict:
    """variable -> the value bound to it, over the function's binding blocks."""
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return {}
    return {b.var: b.value for block in body.blocks for b in block.bindings}


def _broadcasts_to(a, b, out) -> bool:
    """a and b, of equal rank, broadcast (numpy rules) to exactly `out`."""
    if a is None or b is None or out is None or len(a) != len(b) or len(b) != len(out):
        return False
    return all(max(x, y) == o and min(x, y) in (1, o) for x, y, o in zip(a, b, out))


def simplify_for_ncnn(mod: tvm.IRModule) -> tvm.IRModule:
    main = mod["main"]
    rewritten = window_layout.simplify(_batch_norm_as_affine(_broadcast_into_binary(_variance_as_means(main))))
    if rewritten.same_as(main):
        return mod
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    mod.update_func(mod.get_global_var("main"), rewritten)
    return relax.transform.DeadCodeElimination(["main"])(mod)
