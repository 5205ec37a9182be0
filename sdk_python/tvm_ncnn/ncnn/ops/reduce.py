"""mean/sum/max over axes -> Reduction, or global Pooling where it is ncnn's fast path."""

from __future__ import annotations

from tvm.relax.dpl import is_op, wildcard

from ..graph import NcnnGraph
from ...relax_util import shape_of
from ..graph import MAX_RANK
from .base import PREFIX, Fused, Match, Op, check_calls, why_not_io


def why_not_reduce(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    rank = len(shape_of(call.args[0]))
    if 0 in reduce_axes(call):
        return "reduction over the batch axis"
    if rank > MAX_RANK:
        return f"rank {rank}"
    return None


def reduce_axes(call) -> list[int]:
    rank = len(shape_of(call.args[0]))
    if call.attrs.axis is None:
        return list(range(rank))
    return sorted(int(v) % rank for v in call.attrs.axis)


REDUCTIONS = {"relax.sum": 0, "relax.mean": 3, "relax.max": 4, "relax.nn.adaptive_avg_pool2d": 3}


def convert_reduce(g: NcnnGraph, m: Match) -> str:
    op = m.root
    in_shape, out_shape = shape_of(op.args[0]), shape_of(op)
    axes = [2, 3] if op.op.name == "relax.nn.adaptive_avg_pool2d" else reduce_axes(op)
    if len(in_shape) == 4 and axes == [2, 3] and op.op.name != "relax.sum" and len(out_shape) == 2:
        # global pooling is ncnn's fast path; it yields a 1-D blob of channels
        return g.add("Pooling", [m.blob(op.args[0])], {0: int(op.op.name != "relax.max"), 4: 1})[0]
    keepdims = len(out_shape) == len(in_shape)
    # 5=1: axes are counted the modern way (the default means "param is too old")
    params = {0: REDUCTIONS[op.op.name], 1: 0, 3: [a - 1 for a in axes], 4: int(keepdims), 5: 1}
    return g.add("Reduction", [m.blob(op.args[0])], params)[0]


def _global_mean_flattened() -> Fused:
    """mean over H, W with keepdims, then flattened to [1, C] (ONNX's GlobalAveragePool + Flatten before a
    classifier): one global Pooling, whose output is already the 1-D blob of channels."""
    mean = is_op("relax.mean")(wildcard())
    out = is_op("relax.reshape")(mean, wildcard()) | is_op("relax.flatten")(mean)
    calls_run = check_calls("root", "flatten")

    def check(ctx) -> bool:
        reduced = ctx.annotated_expr["root"]
        return len(shape_of(reduced.args[0])) == 4 and reduce_axes(reduced) == [2, 3] \
            and len(shape_of(ctx.annotated_expr["flatten"])) == 2 and calls_run(ctx)

    def convert(g: NcnnGraph, m: Match) -> str:
        return g.add("Pooling", [m.blob(m.root.args[0])], {0: 1, 4: 1})[0]

    return Fused(f"{PREFIX}.global_mean_flat", out, {"root": mean, "flatten": out}, check, convert, ("Pooling",))


PATTERNS = [_global_mean_flattened()]

OPS = [Op(name, why_not_reduce, convert_reduce, ("Reduction", "Pooling"))
       for name in ("relax.mean", "relax.sum", "relax.max")]
