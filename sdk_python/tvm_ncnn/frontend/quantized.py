"""ONNX ConvInteger, which TVM's Relax ONNX importer lacks (it has MatMulInteger and DynamicQuantizeLinear): what
onnxruntime's quantize_dynamic writes for a Conv, with DynamicQuantizeLinear in front and a Cast and Mul behind.

ConvInteger(x, w, x_zero_point, w_zero_point) is the convolution of (x - x_zero_point) and (w - w_zero_point) in
int32, padding contributing nothing (onnxruntime pads x with its zero point). It is imported as exactly that:
both operands widened to int32 with their zero points taken off (w's per output channel or per tensor), then
TVM's own Conv converter, which computes in the operands' dtype. All of it stays in TVM (ncnn runs float32).
"""

from __future__ import annotations

from tvm import relax

from ..relax_util import shape_of


def _shifted(bb, x, zero_point, channel_axis_rank: int | None = None):
    """x as int32 minus its zero point (a scalar, or one per output channel of a weight)."""
    wide = bb.normalize(relax.op.astype(x, "int32"))
    if zero_point is None:
        return wide
    zp = bb.normalize(relax.op.astype(zero_point, "int32"))
    shape = shape_of(zp)
    if channel_axis_rank is not None and shape and shape != [1]:
        zp = bb.normalize(relax.op.reshape(zp, [-1] + [1] * (channel_axis_rank - 1)))
    return bb.normalize(relax.op.subtract(wide, zp))


def _conv_integer(conv):
    from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

    class ConvInteger(OnnxOpConverter):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            inputs = list(inputs) + [None] * (4 - len(inputs))
            x, w, x_zp, w_zp = inputs[:4]
            x32 = _shifted(bb, x, x_zp)
            w32 = _shifted(bb, w, w_zp, len(shape_of(w)))
            return conv._impl_v11(bb, [x32, w32, None], dict(attr), params)

    return ConvInteger


def converters(table: dict) -> dict:
    """{op type: converter class} to add to TVM's ONNX convert map (`table`: the map as TVM has it)."""
    return {"ConvInteger": _conv_integer(table["Conv"])}
