"""Activations that exporters spell as several elementwise ops, each matched back to its one ncnn layer, as
pnnx does: x * sigmoid(x) -> Swish; 0.5 * x * (1 + erf(x / sqrt 2)) -> GELU; x * clip(x + 3, 0, 6) / 6 and
x * hardsigmoid(x) -> HardSwish; clip(alpha * x + beta, 0, 1) -> HardSigmoid.

Without them ONNX's SiLU costs a Sigmoid, a BinaryOp and a Split per activation, and an erf GELU falls out of
ncnn altogether (ncnn has no erf layer), splitting the region in two around it.
"""

from __future__ import annotations

import math

from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_const, is_op, wildcard

from ..graph import NcnnGraph
from ...relax_util import prim_value, scalar_constant, scalar_operand
from .base import PREFIX, Fused, Match, why_not_tensor


def _either(op: str, a, b):
    """op(a, b) or op(b, a): multiply and add are written both ways round."""
    return is_op(op)(a, b) | is_op(op)(b, a)


def _fused(name: str, out, annotations: dict, fits, layer: str, params) -> Fused:
    """A spelled activation: the match must compute exactly the activation of one value x, on an ncnn tensor."""

    def check(ctx) -> bool:
        if has_leaking_intermediate_variables(ctx):
            return False
        calls = ctx.annotated_expr
        return why_not_tensor(calls["root"], "output") is None and fits(calls)

    def convert(g: NcnnGraph, m: Match) -> str:
        x = _input(m)
        return g.add(layer, [m.blob(x)], params(m))[0]

    return Fused(f"{PREFIX}.{name}", out, {**annotations, "root": out}, check, convert, (layer,))


def _input(m: Match):
    """The x every spelled activation reads: the composite's one parameter (its constants are bound inside)."""
    return next(iter(m.blobs))


def _close(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) <= 1e-6 * max(1.0, abs(expected))


def _reads(call, x) -> bool:
    return any(arg.same_as(x) for arg in call.args)


def _clip_bounds(clip) -> tuple[float, float]:
    return prim_value(clip.args[1]), prim_value(clip.args[2])


# ---------------------------------------------------------------------------------------------- Swish

def _swish() -> Fused:
    x = wildcard()
    gate = is_op("relax.sigmoid")(x)
    out = _either("relax.multiply", x, gate)
    return _fused("swish", out, {"gate": gate}, lambda calls: _reads(calls["root"], calls["gate"].args[0]),
                  "Swish", lambda m: {})


# ---------------------------------------------------------------------------------------------- GELU

def _gelu_erf() -> Fused:
    """torch's ONNX export of nn.GELU(): mul(mul(x, add(erf(div(x, sqrt 2)), 1)), 0.5), factors either way.
    ncnn's GELU (fast_gelu 0) computes the same erf form."""
    x = wildcard()
    scaled = is_op("relax.divide")(x, is_const()) | _either("relax.multiply", x, is_const())
    erf = is_op("relax.erf")(scaled)
    plus_one = _either("relax.add", erf, is_const())
    gated = _either("relax.multiply", x, plus_one)
    out = _either("relax.multiply", gated, is_const())

    def fits(calls) -> bool:
        scale = calls["scaled"]
        x_expr, factor = scalar_operand(scale)
        if scale.op.name == "relax.divide":  # x / c, never c / x
            factor = 1 / factor if factor and scale.args[0].same_as(x_expr) else None
        return x_expr is not None and _reads(calls["gated"], x_expr) and _close(factor, 1 / math.sqrt(2)) \
            and _close(scalar_operand(calls["plus_one"])[1], 1.0) and _close(scalar_operand(calls["root"])[1], 0.5)

    return _fused("gelu_erf", out, {"scaled": scaled, "erf": erf, "plus_one": plus_one, "gated": gated},
                  fits, "GELU", lambda m: {})


# ---------------------------------------------------------------------------------------------- hard

def _hard_sigmoid_params(scaled, shifted, clip) -> dict[int, float] | None:
    """HardSigmoid's (alpha, beta) params of clip(alpha * x + beta, 0, 1), else None."""
    _, alpha = scalar_operand(scaled)
    _, beta = scalar_operand(shifted)
    if alpha is None or beta is None or _clip_bounds(clip) != (0.0, 1.0):
        return None
    return {0: alpha, 1: beta}


def _hard_sigmoid_pattern(x):
    scaled = _either("relax.multiply", x, is_const())
    shifted = _either("relax.add", scaled, is_const())
    return {"scaled": scaled, "shifted": shifted, "clip": is_op("relax.clip")(shifted, wildcard(), wildcard())}


def _hard_sigmoid() -> Fused:
    """clip(alpha * x + beta, 0, 1): ONNX HardSigmoid as TVM imports it."""
    parts = _hard_sigmoid_pattern(wildcard())
    return _fused("hard_sigmoid", parts["clip"], parts,
                  lambda calls: _hard_sigmoid_params(calls["scaled"], calls["shifted"], calls["root"]) is not None,
                  "HardSigmoid", lambda m: _hard_sigmoid_params(*m.calls))


def _hard_swish() -> Fused:
    """x * (clip(x + 3, 0, 6) / 6): ONNX HardSwish as TVM imports it."""
    x = wildcard()
    shifted = _either("relax.add", x, is_const())
    clipped = is_op("relax.clip")(shifted, wildcard(), wildcard())
    gate = is_op("relax.divide")(clipped, is_const())
    out = _either("relax.multiply", x, gate)

    def fits(calls) -> bool:
        x_expr, three = scalar_operand(calls["shifted"])
        return x_expr is not None and _reads(calls["root"], x_expr) and _close(three, 3.0) \
            and _clip_bounds(calls["clipped"]) == (0.0, 6.0) and _close(scalar_constant(calls["gate"].args[1]), 6.0)

    return _fused("hard_swish", out, {"shifted": shifted, "clipped": clipped, "gate": gate}, fits, "HardSwish",
                  lambda m: {0: 1 / 6, 1: 0.5})


def _hard_swish_of_hard_sigmoid() -> Fused:
    """x * clip(alpha * x + beta, 0, 1): HardSwish as opsets before 14 write it (and its general form)."""
    x = wildcard()
    parts = _hard_sigmoid_pattern(x)
    out = _either("relax.multiply", x, parts["clip"])

    def fits(calls) -> bool:
        x_expr, _ = scalar_operand(calls["scaled"])
        return x_expr is not None and _reads(calls["root"], x_expr) \
            and _hard_sigmoid_params(calls["scaled"], calls["shifted"], calls["clip"]) is not None

    return _fused("hard_swish_gate", out, parts, fits, "HardSwish", lambda m: _hard_sigmoid_params(*m.calls[:3]))


PATTERNS = [_gelu_erf(), _hard_swish(), _hard_swish_of_hard_sigmoid(), _swish(), _hard_sigmoid()]
