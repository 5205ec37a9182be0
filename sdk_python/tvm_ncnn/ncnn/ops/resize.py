"""resize2d -> Interp, for the methods and coordinate modes where ncnn computes what TVM computes."""

from __future__ import annotations

from ..graph import NcnnGraph
from ...relax_util import is_symbolic, shape_of, shape_values
from .base import Match, Op, why_not_io


def why_not_resize2d(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a = call.attrs
    if a.layout != "NCHW":
        return f"layout {a.layout}"
    if interp_type(call) is None:
        return f"resize {a.method} with coordinates {a.coordinate_transformation_mode}"
    return None


def interp_type(call) -> tuple[int, int] | None:
    """ncnn Interp (resize_type, align_corner) computing what TVM's resize2d computes, or None."""
    a = call.attrs
    mode = str(a.coordinate_transformation_mode)
    if a.method == "nearest_neighbor" and mode == "asymmetric" and str(a.rounding_method) in ("floor", ""):
        return (1, 0)
    # pytorch_half_pixel equals half_pixel except for a 1-pixel output
    half_pixel = mode == "half_pixel" or (mode == "pytorch_half_pixel" and min(shape_of(call)[2:]) > 1)
    if a.method == "linear" and half_pixel:
        return (2, 0)
    if a.method == "linear" and mode == "align_corners":
        return (2, 1)
    if a.method == "cubic" and float(a.cubic_alpha) == -0.75 and not int(a.cubic_exclude):
        if half_pixel:
            return (3, 0)
        if mode == "align_corners":
            return (3, 1)
    return None


def convert_resize2d(g: NcnnGraph, m: Match) -> str:
    resize_type, align_corner = interp_type(m.root)
    out_h, out_w = (shape_of(m.root) or [0, 0, *shape_values(m.root.args[1])])[2:]
    in_h, in_w = shape_of(m.root.args[0])[2:]
    size = {3: out_h, 4: out_w}
    if (is_symbolic(m.root.ty) or is_symbolic(m.root.args[0].ty)) and out_h % in_h == 0 and out_w % in_w == 0:
        # a model with dynamic sizes: a whole-number scale (ncnn's output = input x scale) follows the input,
        # where an output size would fix it
        size = {1: float(out_h // in_h), 2: float(out_w // in_w)}
    return g.add("Interp", [m.blob(m.root.args[0])], {0: resize_type, **size, 6: align_corner})[0]


OPS = [Op("relax.image.resize2d", why_not_resize2d, convert_resize2d, ("Interp",), extra_args=(1,))]
