"""Scaled dot-product attention, softmax(q k^T * scale) v over [1, (groups,) heads, tokens, dim] -> one ncnn SDPA
layer, as pnnx writes it: one layer in place of a Permute, BinaryOps, two MatMuls and a Softmax, and no
[tokens x tokens] attention matrix between layers.

Matched in the spellings exporters write: the scale on q ((q * s) @ k^T), on q and k^T both (timm exported
without its fused kernel: sqrt(s) each), on the product ((q @ k^T) * s, or / sqrt(d)), or none.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_const, is_op, wildcard

from ..graph import NcnnGraph, shape_params
from ...relax_util import scalar_constant, scalar_operand, shape_of
from .base import PREFIX, Fused, Match, why_not_tensor

SCALES = ("relax.multiply", "relax.divide")


def _maybe_scaled(x):
    return is_op("relax.multiply")(x, is_const()) | is_op("relax.multiply")(is_const(), x) \
        | is_op("relax.divide")(x, is_const()) | x


@dataclass
class Attention:
    q: object
    k: object
    v: object
    scale: float
    keys: object      # the permute_dims giving k^T
    weights: object   # the softmax


def _unscaled(expr, producer) -> tuple[object, float] | None:
    """(the tensor, the factor applied to it) for a value that may be scaled by a constant scalar."""
    call = producer.get(expr)
    if call is None or call.op.name not in SCALES:
        return expr, 1.0
    if call.op.name == "relax.divide":  # x / c, never c / x
        value = scalar_constant(call.args[1])
        return (call.args[0], 1.0 / value) if value else None
    tensor, value = scalar_operand(call)
    return None if tensor is None else (tensor, value)


def find_attention(root, producer) -> Attention | None:
    """The q, k, v and scale of softmax(q k^T * scale) v ending at `root`, following the data flow through
    `producer` (variable -> call), when it is SDPA's computation on [1, heads, tokens, dim] tensors; else None."""
    weights = producer.get(root.args[0])
    if weights is None or weights.op.name != "relax.nn.softmax":
        return None
    logits = _unscaled(weights.args[0], producer)
    scores = producer.get(logits[0]) if logits else None
    if scores is None or scores.op.name != "relax.matmul":
        return None
    q_in, k_in = _unscaled(scores.args[0], producer), _unscaled(scores.args[1], producer)
    keys = producer.get(k_in[0]) if k_in else None
    if q_in is None or keys is None or keys.op.name != "relax.permute_dims" or keys.attrs.axes is None:
        return None
    found = Attention(q_in[0], keys.args[0], root.args[1], logits[1] * q_in[1] * k_in[1], keys, weights)
    shapes = [shape_of(t) for t in (found.q, found.k, found.v)]
    if any(s is None or len(s) not in (4, 5) or s[0] != 1 or len(s) != len(shapes[0]) for s in shapes):
        return None
    rank = len(shapes[0])
    swap_last = [*range(rank - 2), rank - 1, rank - 2]
    if [int(a) for a in keys.attrs.axes] != swap_last or int(weights.attrs.axis) not in (-1, rank - 1):
        return None
    (*heads, _, dim), (*k_heads, tokens, k_dim), (*v_heads, v_tokens, _) = shapes
    if k_dim != dim or v_tokens != tokens or not heads == k_heads == v_heads:
        return None
    if any(why_not_tensor(t) for t in (found.q, found.k, found.v, root)):
        return None
    return found


def _attention() -> Fused:
    q, k, v = wildcard(), wildcard(), wildcard()
    keys = is_op("relax.permute_dims")(k)
    scores = is_op("relax.matmul")(_maybe_scaled(q), _maybe_scaled(keys))
    weights = is_op("relax.nn.softmax")(_maybe_scaled(scores))
    out = is_op("relax.matmul")(weights, v)

    def check(ctx) -> bool:
        producer = {var: value for var, value in ctx.matched_bindings.items() if hasattr(value, "op")}
        return not has_leaking_intermediate_variables(ctx) \
            and find_attention(ctx.annotated_expr["root"], producer) is not None

    return Fused(f"{PREFIX}.sdpa", out, {"keys": keys, "scores": scores, "weights": weights, "root": out}, check,
                 convert_attention, ("SDPA", "Reshape"))


def convert_attention(g: NcnnGraph, m: Match) -> str:
    """SDPA takes [heads, tokens, dim] blobs: a [1, groups, heads, tokens, dim] attention (MobileViT's patches)
    runs as groups x heads heads, which are independent alike."""
    found = find_attention(m.result, m.producer)
    blobs = [m.blob(found.q), m.blob(found.k), m.blob(found.v)]
    if len(shape_of(found.q)) == 5:
        blobs = [g.add("Reshape", [b], shape_params(_merged_heads(shape_of(t))))[0]
                 for b, t in zip(blobs, (found.q, found.k, found.v))]
    out = g.add("SDPA", blobs, {5: 0, 6: found.scale})[0]  # 5=0: no mask; 6: the scale (0 would mean 1/sqrt(d))
    if len(shape_of(found.q)) == 5:
        out = g.add("Reshape", [out], shape_params(shape_of(m.result)[1:]))[0]
    return out


def _merged_heads(shape: list[int]) -> list[int]:
    _, groups, heads, tokens, dim = shape
    return [groups * heads, tokens, dim]


PATTERNS = [_attention()]
