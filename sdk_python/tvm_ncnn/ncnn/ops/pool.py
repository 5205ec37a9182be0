"""max/avg pooling (windowed, global, adaptive) -> Pooling."""

from __future__ import annotations

from ..graph import NcnnGraph
from ...relax_util import shape_of
from .base import Match, Op, why_not_io
from .reduce import convert_reduce


def why_not_pool2d(call) -> str | None:
    a = call.attrs
    if a.layout != "NCHW" or a.out_layout != "NCHW":
        return f"layout {a.layout}"
    if any(int(d) != 1 for d in a.dilation):
        return "dilated pooling"
    reason = why_not_io(call)
    if reason:
        return reason
    if a.ceil_mode and pool_output_hw(call, ceil=True) != shape_of(call)[2:]:
        return "ceil_mode window that starts in the padding (ncnn counts it, TVM drops it)"
    if a.ceil_mode and call.op.name == "relax.nn.avg_pool2d" and pool_output_hw(call, ceil=False) != shape_of(call)[2:]:
        return "ceil_mode average pooling with a partial last window"
    return None


def pool_output_hw(call, ceil: bool) -> list[int]:
    a = call.attrs
    h, w = shape_of(call.args[0])[2:]
    top, left, bottom, right = (int(p) for p in a.padding)
    out = []
    for size, k, s, p in ((h, int(a.pool_size[0]), int(a.strides[0]), top + bottom),
                          (w, int(a.pool_size[1]), int(a.strides[1]), left + right)):
        span = size + p - k
        out.append((-(-span // s) if ceil else span // s) + 1)
    return out


def why_not_adaptive_pool(call) -> str | None:
    if call.attrs.layout != "NCHW":
        return f"layout {call.attrs.layout}"
    return why_not_io(call)


def convert_pool2d(g: NcnnGraph, m: Match) -> str:
    pool = m.root
    a = pool.attrs
    top, left, bottom, right = (int(p) for p in a.padding)
    is_avg = pool.op.name == "relax.nn.avg_pool2d"
    params = {0: int(is_avg), 1: int(a.pool_size[1]), 11: int(a.pool_size[0]),
              2: int(a.strides[1]), 12: int(a.strides[0]),
              3: left, 14: right, 13: top, 15: bottom,
              5: 0 if a.ceil_mode else 1}  # pad_mode 0 pads the tail (ceil), 1 is plain (floor)
    if is_avg:
        params[6] = int(bool(a.count_include_pad))
    return g.add("Pooling", [m.blob(pool.args[0])], params)[0]


def convert_adaptive_avg_pool2d(g: NcnnGraph, m: Match) -> str:
    op = m.root
    out_h, out_w = shape_of(op)[2:]
    if (out_h, out_w) == (1, 1):
        return convert_reduce(g, m)
    return g.add("Pooling", [m.blob(op.args[0])], {0: 1, 7: 1, 8: out_w, 18: out_h})[0]


OPS = [
    Op("relax.nn.max_pool2d", why_not_pool2d, convert_pool2d, ("Pooling",)),
    Op("relax.nn.avg_pool2d", why_not_pool2d, convert_pool2d, ("Pooling",)),
    Op("relax.nn.adaptive_avg_pool2d", why_not_adaptive_pool, convert_adaptive_avg_pool2d,
       ("Pooling", "Reduction")),
]
