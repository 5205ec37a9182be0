"""mean/sum/max over axes -> Reduction, or global Pooling where it is ncnn's fast path."""

from __future__ import annotations

from ..ncnn_graph import NcnnGraph
from ..relax_util import shape_of
from .base import MAX_RANK, Match, Op, why_not_io


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


OPS = [Op(name, why_not_reduce, convert_reduce, ("Reduction", "Pooling"))
       for name in ("relax.mean", "relax.sum", "relax.max")]
