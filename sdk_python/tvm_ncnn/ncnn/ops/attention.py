"""Scaled dot-product attention, softmax(q k^T * scale) v over [1, (groups,) heads, tokens, dim] -> one ncnn SDPA
layer, as pnnx writes it: one layer in place of a Permute, BinaryOps, two MatMuls and a Softmax, and no
[tokens x tokens] attention matrix between layers.

Matched in the spellings exporters write: the scale on q ((q * s) @ k^T), on q and k^T both (timm exported
without its fused kernel: sqrt(s) each), on the product ((q @ k^T) * s, or / sqrt(d)), or none. k^T may come from
k in another layout by one permute (tokens-first [1, tokens, heads, dim] permuted straight to [1, heads, dim,
tokens]: onnxslim merges the head permute and SDPA's transpose): the converter permutes k to [heads, tokens, dim].
An additive term between the scaled scores and the softmax (an attention bias table gathered per head, a mask:
softmax(q k^T * s + b) v) is SDPA's attn_mask input, as pnnx writes F.scaled_dot_product_attention(attn_mask=b):
a constant broadcast to one [tokens, tokens] matrix per head (one for all when it is the same for every head; not
when that would copy it per window), or a tensor of the scores' shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_const, is_op, wildcard

from ..graph import NcnnGraph, shape_params
from ...relax_util import constant_value, is_constant, scalar_constant, scalar_operand, shape_of
from .base import PREFIX, Fused, Match, why_not_tensor
from .shape import AXIS_NAMES, PERMUTE_ORDERS

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
    k_axes: list | None = None  # the permutation taking `k` to [1, (groups,) heads, tokens, dim]; None: k is
    mask: object = None         # the additive term before the softmax, if any


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


def _biased(expr, producer) -> tuple[object, object]:
    """(the scores, the additive term) of scores + b / b + scores, else (expr, None). Which operand is the scores
    is decided by the matmul found behind it (through a constant scale)."""
    call = producer.get(expr)
    if call is None or call.op.name != "relax.add":
        return expr, None
    for scores, mask in (call.args, call.args[::-1]):
        unscaled = _unscaled(scores, producer)
        behind = producer.get(unscaled[0]) if unscaled else None
        if behind is not None and behind.op.name == "relax.matmul":
            return scores, mask
    return expr, None


def find_attention(root, producer) -> Attention | None:
    """The q, k, v, scale and additive mask of softmax(q k^T * scale + mask) v ending at `root`, following the data
    flow through `producer` (variable -> call), when it is SDPA's computation on [1, heads, tokens, dim] tensors
    (or [1, groups, heads, tokens, dim]); else None."""
    weights = producer.get(root.args[0])
    if weights is None or weights.op.name != "relax.nn.softmax":
        return None
    biased, mask = _biased(weights.args[0], producer)
    logits = _unscaled(biased, producer)
    scores = producer.get(logits[0]) if logits else None
    if scores is None or scores.op.name != "relax.matmul":
        return None  # also (q k^T + b) * s, not SDPA's order: the scale is outside the add
    q_in, k_in = _unscaled(scores.args[0], producer), _unscaled(scores.args[1], producer)
    keys = producer.get(k_in[0]) if k_in else None
    if q_in is None or keys is None or keys.op.name != "relax.permute_dims" or keys.attrs.axes is None:
        return None
    found = Attention(q_in[0], keys.args[0], root.args[1], logits[1] * q_in[1] * k_in[1], keys, weights, mask=mask)
    rank = len(shape_of(found.q) or [])
    axes = [int(a) for a in keys.attrs.axes]
    if rank not in (4, 5) or len(axes) != rank or axes[0] != 0 or int(weights.attrs.axis) not in (-1, rank - 1):
        return None
    k_axes = [*axes[:-2], axes[-1], axes[-2]]  # k^T = permute(k, axes) = swap_last(permute(k, k_axes))
    if k_axes != list(range(rank)):
        found.k_axes = k_axes
    k_shape = shape_of(found.k)
    shapes = [shape_of(found.q), None if k_shape is None else [k_shape[a] for a in k_axes], shape_of(found.v)]
    if any(s is None or len(s) != rank or s[0] != 1 for s in shapes):
        return None
    (*heads, _, dim), (*k_heads, tokens, k_dim), (*v_heads, v_tokens, _) = shapes
    if k_dim != dim or v_tokens != tokens or not heads == k_heads == v_heads:
        return None
    if any(why_not_tensor(t) for t in (found.q, found.k, found.v, root)):
        return None
    if mask is not None and _mask_value(mask, shape_of(scores)) is None:
        return None
    return found


def _mask_value(mask, scores_shape: list[int]):
    """What SDPA's attn_mask input gets: a constant's values as [1 or heads, tokens, tokens] (heads merged with
    groups), True for a tensor of the scores' own shape, None when ncnn's SDPA cannot take it."""
    if scores_shape is None:
        return None
    if is_constant(mask):
        value = constant_value(mask)
        if str(value.dtype) != "float32" or value.ndim > len(scores_shape):
            return None
        try:
            full = np.broadcast_to(value, scores_shape)
        except ValueError:
            return None
        per_head = full.reshape(-1, *scores_shape[-2:])
        if (per_head == per_head[:1]).all():
            return per_head[:1]
        # A bias per head shared by every window (groups) would be written once per window: model.so would carry
        # copies of a constant it holds once, for no measured speed (x86, 1 thread). Such attention stays apart.
        return np.ascontiguousarray(per_head) if per_head.size <= value.size else None
    if shape_of(mask) == scores_shape and not why_not_tensor(mask):
        return True
    return None


def _attention() -> Fused:
    q, k, v = wildcard(), wildcard(), wildcard()
    keys = is_op("relax.permute_dims")(k)
    scores = is_op("relax.matmul")(_maybe_scaled(q), _maybe_scaled(keys))
    logits = _maybe_scaled(scores)
    mask = wildcard()
    weights = is_op("relax.nn.softmax")(logits | is_op("relax.add")(logits, mask) | is_op("relax.add")(mask, logits))
    out = is_op("relax.matmul")(weights, v)

    def check(ctx) -> bool:
        producer = {var: value for var, value in ctx.matched_bindings.items() if hasattr(value, "op")}
        return not has_leaking_intermediate_variables(ctx) \
            and find_attention(ctx.annotated_expr["root"], producer) is not None

    return Fused(f"{PREFIX}.sdpa", out, {"keys": keys, "scores": scores, "weights": weights, "root": out}, check,
                 convert_attention, ("SDPA", "Reshape", "Permute", "MemoryData"))


def convert_attention(g: NcnnGraph, m: Match) -> str:
    """SDPA takes [heads, tokens, dim] blobs: a [1, groups, heads, tokens, dim] attention (MobileViT's patches,
    windows) runs as groups x heads heads, which are independent alike."""
    found = find_attention(m.result, m.producer)
    rank = len(shape_of(found.q))
    k = m.blob(found.k)
    if found.k_axes is not None:
        k = _permute(g, k, found.k_axes)
    blobs = [m.blob(found.q), k, m.blob(found.v)]
    if rank == 5:
        k_shape = shape_of(found.k) if found.k_axes is None else [shape_of(found.k)[a] for a in found.k_axes]
        blobs = [g.add("Reshape", [b], shape_params(_merged_heads(s)))[0]
                 for b, s in zip(blobs, (shape_of(found.q), k_shape, shape_of(found.v)))]
    if found.mask is not None:
        scores_shape = [*shape_of(found.q)[:-1], shape_of(found.v)[-2]]
        value = _mask_value(found.mask, scores_shape)
        if value is True:
            mask = m.blob(found.mask)
            blobs.append(g.add("Reshape", [mask], shape_params(_merged_heads(scores_shape)))[0] if rank == 5
                         else mask)
        else:
            blobs.append(g.add_constant(value))
    # 5: 1 with a mask (the 4th input, added to the scaled scores); 6: the scale (0 would mean 1/sqrt(d))
    out = g.add("SDPA", blobs, {5: int(found.mask is not None), 6: found.scale})[0]
    if rank == 5:
        out = g.add("Reshape", [out], shape_params(shape_of(m.result)[1:]))[0]
    return out


def _permute(g: NcnnGraph, blob: str, axes: list[int]) -> str:
    """An ncnn Permute of a batch-1 blob by a permutation of its axes (batch first, left in place)."""
    perm = [a - 1 for a in axes[1:]]
    names = AXIS_NAMES[len(perm)]
    order = "".join(names[p] for p in reversed(perm))
    return g.add("Permute", [blob], {0: PERMUTE_ORDERS[len(perm)].index(order)})[0]


def _merged_heads(shape: list[int]) -> list[int]:
    _, groups, heads, tokens, dim = shape
    return [groups * heads, tokens, dim]


PATTERNS = [_attention()]
