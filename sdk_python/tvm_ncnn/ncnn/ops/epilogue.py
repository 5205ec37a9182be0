"""A bias add and a ReLU/clip/sigmoid after a convolution or an InnerProduct: ncnn folds both into the layer itself
(bias_term, activation_type/params), so they are matched with it and never cost a layer of their own."""

from __future__ import annotations

import numpy as np
from tvm.relax.dpl import is_const, is_op, wildcard

from ...relax_util import is_constant, prim_value, shape_of
from .base import PREFIX, Fused, Match, bias_vector, check_calls

ACTIVATIONS = {"relu": "relax.nn.relu", "clip": "relax.clip", "sigmoid": "relax.sigmoid"}


def _check_biased(root_name: str, channel_axis: int):
    base = check_calls(root_name, "bias_add", "activation")

    def check(ctx) -> bool:
        if not base(ctx):
            return False
        out_shape = shape_of(ctx.annotated_expr[root_name])
        return bias_vector(ctx.annotated_expr["bias"], out_shape[channel_axis], channel_axis,
                           len(out_shape)) is not None

    return check


def with_bias_and_activation(name: str, root_op: str, channel_axis: int) -> list[Fused]:
    """Patterns root+bias+act, root+bias, root+act, root: the longest first, so FuseOpsByPattern prefers it."""
    entries = []
    for with_bias in (True, False):
        for act in (*ACTIVATIONS, None):
            data, weight = wildcard(), is_const()
            root = is_op(root_op)(data, weight)
            annotations = {"root": root, "weight": weight}
            out = root
            if with_bias:
                bias = is_const()
                out = is_op("relax.add")(out, bias)
                annotations.update(bias=bias, bias_add=out)
            if act in ("relu", "sigmoid"):
                out = is_op(ACTIVATIONS[act])(out)
                annotations["activation"] = out
            elif act == "clip":
                out = is_op(ACTIVATIONS[act])(out, wildcard(), wildcard())
                annotations["activation"] = out
            suffix = ("_bias" if with_bias else "") + (f"_{act}" if act else "")
            check = _check_biased("root", channel_axis) if with_bias else check_calls("root", "activation")
            entries.append(Fused(f"{PREFIX}.{name}{suffix}", out, annotations, check))
    return sorted(entries, key=lambda e: -len(e.annotations))


def fused_activation(m: Match) -> dict[int, object]:
    """ncnn's activation_type (9) and activation_params (10) for a conv/dense followed by relu, clip or sigmoid."""
    if m.find("relax.nn.relu") is not None:
        return {9: 1}
    if m.find("relax.sigmoid") is not None:
        return {9: 4}
    clip = m.find("relax.clip")
    if clip is not None:
        lo, hi = prim_value(clip.args[1]), prim_value(clip.args[2])
        if lo == 0.0 and hi == float("inf"):
            return {9: 1}
        return {9: 3, 10: [lo, hi]}
    return {}


def fused_bias(m: Match, channels: int, channel_axis: int = 1) -> np.ndarray | None:
    add = m.find("relax.add")
    if add is None:
        return None
    bias = next(arg for arg in add.args if is_constant(arg))  # the pattern matches add either way round
    return bias_vector(bias, channels, channel_axis, len(shape_of(add)))
