"""Two of TVM's ONNX converters, made to keep a symbolic size exact (frontend/dynamic.py).

Resize by a whole-number scale: TVM computes the output size as int64(2.0 * float32(H)), an expression its
arithmetic cannot compare with the skip connection's size it is concatenated with (2 * q), so the concat loses its
shape. Given the scale as whole numbers, the size is 2 * q -- the value ONNX defines (floor(H * 2.0) = 2H).

Range over a size (ultralytics' anchors: Range(0, Shape(x)[3], 1)): TVM gives the result a fresh variable length,
unrelated to the size it counts to. With whole-number start and step and a size expression for the limit, the
length is that expression.

Both leave every other case to TVM's own converter."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax


def converters(table: dict) -> dict:
    """The replacements for TVM's converter map `table`."""
    return {"Resize": _resize(table["Resize"]), "Range": _range(table["Range"])}


def _whole_scales(expr) -> list[int] | None:
    if not isinstance(expr, tvm.ir.GenericConst):
        return None
    scales = expr.value.numpy().reshape(-1)
    if not scales.size or np.any(scales != np.round(scales)) or np.any(scales < 1):
        return None
    return [int(s) for s in scales]


def _resize(original):
    class Resize(original):
        @classmethod
        def _impl_v18(cls, bb, inputs, attr, params):
            scales = _whole_scales(inputs[2]) if len(inputs) > 2 else None
            if scales is not None and not _static(inputs[0]):
                inputs = list(inputs)
                inputs[2] = relax.ShapeExpr(scales)  # TVM's converter multiplies each size by these integers
            return super()._impl_v18(bb, inputs, attr, params)

    return Resize


def _static(x) -> bool:
    shape = getattr(getattr(x, "ty", None), "shape", None)
    return shape is not None and all(isinstance(d, tvm.tirx.IntImm) for d in shape)


def _integer(x):
    """A whole number (a one-element integer constant), an integer size expression, or None."""
    if isinstance(x, tvm.ir.GenericConst):
        value = x.value.numpy()
        return int(value.reshape(-1)[0]) if value.size == 1 and value.dtype.kind in "iu" else None
    if tvm.ir.is_prim_expr(x) and "int" in str(getattr(x, "ty", "")):
        return x
    return None


def _range(original):
    class Range(original):
        @classmethod
        def _impl_v12(cls, bb, inputs, attr, params):
            start, limit, step = (_integer(x) for x in inputs[:3])
            if isinstance(start, int) and isinstance(step, int) and step > 0 and limit is not None \
                    and not isinstance(limit, int):
                return relax.op.arange(start, limit, step, dtype=str(inputs[0].ty.dtype))
            return super()._impl_v12(bb, inputs, attr, params)

    return Range
