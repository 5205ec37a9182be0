"""conv2d and conv2d_transpose -> Convolution / Deconvolution, and their grouped (DepthWise) forms, with bias
and activation fused."""

from __future__ import annotations

import numpy as np

from ..graph import NcnnGraph
from ...relax_util import constant_value, is_constant
from .base import Match, Op, is_float32_or_default, why_not_io
from .epilogue import fused_activation, fused_bias, with_bias_and_activation


def _why_not_windowed(call, kernel_layout: str) -> str | None:
    a = call.attrs
    if a.data_layout != "NCHW" or a.kernel_layout != kernel_layout or a.out_layout != "NCHW":
        return f"layout {a.data_layout}/{a.kernel_layout}, ncnn converts NCHW/{kernel_layout}"
    if not is_float32_or_default(a.out_dtype):
        return f"out_dtype {a.out_dtype}"
    if not is_constant(call.args[1]):
        return "weight is not a constant"
    return why_not_io(call)


def why_not_conv2d(call) -> str | None:
    return _why_not_windowed(call, "OIHW")


def why_not_conv2d_transpose(call) -> str | None:
    return _why_not_windowed(call, "IOHW")


def _windowed(g: NcnnGraph, m: Match, layer: str, weight: np.ndarray, out_c: int, extra: dict) -> str:
    """The window, bias and activation params Convolution and Deconvolution share."""
    op = m.root
    a = op.attrs
    kh, kw = weight.shape[-2:]
    top, left, bottom, right = (int(p) for p in a.padding)
    bias = fused_bias(m, out_c)
    params = {0: out_c, 1: kw, 11: kh, 2: int(a.dilation[1]), 12: int(a.dilation[0]),
              3: int(a.strides[1]), 13: int(a.strides[0]), 4: left, 15: right, 14: top, 16: bottom,
              5: int(bias is not None), 6: weight.size, **fused_activation(m), **extra}
    weights = [(np.ascontiguousarray(weight), True)] + ([(bias, False)] if bias is not None else [])
    groups = int(a.groups)
    if groups != 1:
        # the DepthWise layers run any grouped convolution, depthwise being groups == channels
        layer += "DepthWise"
        params[7] = groups
    return g.add(layer, [m.blob(op.args[0])], params, weights)[0]


def convert_conv2d(g: NcnnGraph, m: Match) -> str:
    weight = constant_value(m.root.args[1]).astype(np.float32)  # OIHW
    return _windowed(g, m, "Convolution", weight, weight.shape[0], {})


def convert_conv2d_transpose(g: NcnnGraph, m: Match) -> str:
    a = m.root.attrs
    weight = constant_value(m.root.args[1]).astype(np.float32)  # IOHW: (in, out / groups, kh, kw)
    groups = int(a.groups)
    in_c, out_g, kh, kw = weight.shape
    # ncnn wants, per group, (out, in, kh, kw)
    weight = weight.reshape(groups, in_c // groups, out_g, kh, kw).transpose(0, 2, 1, 3, 4)
    output_padding = {18: int(a.output_padding[1]), 19: int(a.output_padding[0])}
    return _windowed(g, m, "Deconvolution", weight, out_g * groups, output_padding)


OPS = [
    Op("relax.nn.conv2d", why_not_conv2d, convert_conv2d, ("Convolution", "ConvolutionDepthWise"), alone=False),
    Op("relax.nn.conv2d_transpose", why_not_conv2d_transpose, convert_conv2d_transpose,
       ("Deconvolution", "DeconvolutionDepthWise"), alone=False),
]

PATTERNS = [*with_bias_and_activation("conv2d", "relax.nn.conv2d", channel_axis=1),
            *with_bias_and_activation("conv2d_transpose", "relax.nn.conv2d_transpose", channel_axis=1)]
