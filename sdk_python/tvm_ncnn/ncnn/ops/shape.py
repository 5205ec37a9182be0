"""Ops that move data without arithmetic: reshape, concat, split, slice, permute, pad, channel shuffle."""

from __future__ import annotations

import numpy as np
from tvm import relax, tirx
from tvm_ffi import structural_equal
from tvm.relax.dpl import is_op, wildcard

from ..graph import NcnnGraph, shape_params
from ...relax_util import constant_value, is_constant, shape_of, static_shape
from .base import PREFIX, Fused, Match, Op, check_calls, why_not_io, why_not_tensor

RESHAPES = ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.nn.batch_flatten")


def convert_reshape(g: NcnnGraph, m: Match) -> str:
    return g.add("Reshape", [m.blob(m.root.args[0])], shape_params(reshape_target(m.root)))[0]


def reshape_target(call) -> list[int]:
    """The shape (without the batch) a Reshape layer is given. Where the model's sizes are dynamic, a size that
    follows the input is written as ncnn's run-time forms: 0 keeps the input's size on that axis (same rank, same
    size expression), -1 is what the other sizes leave (one axis at most). Where two sizes would need -1 the
    static shape stays, and partition keeps the op in TVM (size_free.py)."""
    shape = shape_of(call)[1:]
    out, src = list(call.ty.shape)[1:], list(call.args[0].ty.shape)[1:]
    varying = [i for i, d in enumerate(out) if not isinstance(d, tirx.IntImm)]
    if not varying:
        return shape
    written = list(shape)
    rest = [i for i in varying if len(out) != len(src) or not structural_equal(out[i], src[i])]
    if len(rest) > 1:
        return shape
    for i in varying:
        written[i] = -1 if i in rest else 0
    return written


# ---------------------------------------------------------------------------------------------- concat, split

def why_not_concat(call) -> str | None:
    parts = call.args[0]
    if not isinstance(parts, relax.Tuple) or all(is_constant(p) for p in parts.fields):
        return "inputs are not tensors computed by the model"
    for i, part in enumerate(parts.fields):
        reason = why_not_tensor(part, f"input {i}")  # a constant (ViT's class token) too: it becomes MemoryData
        if reason:
            return reason
    reason = why_not_tensor(call, "output")
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call)) == 0:
        return "along the batch axis"
    return None


def convert_concat(g: NcnnGraph, m: Match) -> str:
    op = m.root
    axis = int(op.attrs.axis) % len(shape_of(op)) - 1
    parts = [g.add_constant(constant_value(p)[0]) if is_constant(p) else m.blob(p) for p in op.args[0].fields]
    return g.add("Concat", parts, {0: axis})[0]


def why_not_split(call) -> str | None:
    reason = why_not_tensor(call.args[0], "input")
    if reason:
        return reason
    if int(call.attrs.axis) % len(shape_of(call.args[0])) == 0:
        return "along the batch axis"
    return None


def convert_split(g: NcnnGraph, m: Match) -> list[str]:
    op = m.root
    axis = int(op.attrs.axis) % len(shape_of(op.args[0]))
    # The parts' sizes as Relax typed them: a split into n sections of a length n does not divide ends short
    sizes = [static_shape(part)[axis] for part in op.ty.fields]
    return g.add("Slice", [m.blob(op.args[0])], {0: sizes, 1: axis - 1}, n_tops=len(sizes))


# ---------------------------------------------------------------------------------------------- slice

def why_not_strided_slice(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    if len(call.args) > 4 and any(int(s) != 1 for s in call.args[4]):
        return "strided slice with a step other than 1"
    if any(a == 0 for a, _, _ in slice_ranges(call)):
        return "slice along the batch axis"
    return None


def slice_ranges(call) -> list[tuple[int, int, int]]:
    """(axis, begin, end) for each sliced axis, clamped to the input's shape."""
    shape = shape_of(call.args[0])
    ranges = []
    for axis, begin, end in zip(call.args[1], call.args[2], call.args[3]):
        axis = int(axis) % len(shape)
        size = shape[axis]
        begin, end = int(begin), int(end)
        begin = min(max(begin + size if begin < 0 else begin, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        ranges.append((axis, begin, end))
    return ranges


def convert_strided_slice(g: NcnnGraph, m: Match) -> str:
    ranges = slice_ranges(m.root)
    params = {9: [b for _, b, _ in ranges], 10: [e for _, _, e in ranges], 11: [a - 1 for a, _, _ in ranges]}
    return g.add("Crop", [m.blob(m.root.args[0])], params)[0]


# ---------------------------------------------------------------------------------------------- take

def take_range(call) -> tuple[int, int, int] | None:
    """(axis, begin, end) when take() picks one contiguous run of a computed tensor with constant indices (a
    ViT's class token: x[:, 0]), else None."""
    x, indices = call.args
    if not is_constant(indices) or call.attrs.axis is None:
        return None
    shape = shape_of(x)
    axis = int(call.attrs.axis) % len(shape)
    picked = constant_value(indices).reshape(-1).astype(np.int64) % shape[axis]
    if picked.size == 0 or list(picked) != list(range(int(picked[0]), int(picked[0]) + picked.size)):
        return None
    return axis, int(picked[0]), int(picked[0]) + picked.size


def why_not_take(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    found = take_range(call)
    if found is None:
        return "indices are not a constant contiguous range"
    if found[0] == 0:
        return "take along the batch axis"
    return None


def convert_take(g: NcnnGraph, m: Match) -> str:
    axis, begin, end = take_range(m.root)
    top = g.add("Crop", [m.blob(m.root.args[0])], {9: [begin], 10: [end], 11: [axis - 1]})[0]
    if len(shape_of(m.root)) != len(shape_of(m.root.args[0])):  # a scalar index drops the axis
        top = g.add("Reshape", [top], shape_params(shape_of(m.root)[1:]))[0]
    return top


# ---------------------------------------------------------------------------------------------- permute

def why_not_permute(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
    if axes is None or axes[0] != 0:
        return "permutation moves the batch axis"
    if len(axes) > 5:
        return f"rank {len(axes)}"
    return None


# ncnn's Permute order types, keyed by the output's axes innermost first, named as the input's
PERMUTE_ORDERS = {
    2: ["wh", "hw"],
    3: ["whc", "hwc", "wch", "cwh", "hcw", "chw"],
    4: ["whdc", "hwdc", "wdhc", "dwhc", "hdwc", "dhwc", "whcd", "hwcd", "wchd", "cwhd", "hcwd", "chwd",
        "wdch", "dwch", "wcdh", "cwdh", "dcwh", "cdwh", "hdcw", "dhcw", "hcdw", "chdw", "dchw", "cdhw"],
}
AXIS_NAMES = {2: "hw", 3: "chw", 4: "cdhw"}


def convert_permute(g: NcnnGraph, m: Match) -> str:
    perm = [int(a) - 1 for a in m.root.attrs.axes][1:]
    if perm == sorted(perm):
        return g.add("Noop", [m.blob(m.root.args[0])])[0]
    names = AXIS_NAMES[len(perm)]
    order = "".join(names[p] for p in reversed(perm))
    return g.add("Permute", [m.blob(m.root.args[0])], {0: PERMUTE_ORDERS[len(perm)].index(order)})[0]


# ---------------------------------------------------------------------------------------------- pad

PAD_TYPES = {"constant": 0, "edge": 1, "reflect": 2}


def why_not_pad(call) -> str | None:
    reason = why_not_io(call)
    if reason:
        return reason
    a = call.attrs
    pads = [int(p) for p in a.pad_width]  # (before, after) per axis
    rank = len(shape_of(call.args[0]))
    if a.pad_mode not in PAD_TYPES:
        return f"pad mode {a.pad_mode}"
    if any(p < 0 for p in pads):
        return "negative padding (cropping)"
    if pads[0] or pads[1]:
        return "padding the batch axis"
    if rank not in (3, 4) or (rank == 4 and a.pad_mode != "constant" and (pads[2] or pads[3])):
        return "padding ncnn's Padding layer cannot express"
    return None


def convert_pad(g: NcnnGraph, m: Match) -> str:
    a = m.root.attrs
    pads = [int(p) for p in a.pad_width]
    before, after = pads[0::2], pads[1::2]
    params = {0: before[-2], 1: after[-2], 2: before[-1], 3: after[-1], 4: PAD_TYPES[a.pad_mode],
              5: float(a.pad_value)}
    if len(before) == 4:
        params.update({7: before[1], 8: after[1]})
    return g.add("Padding", [m.blob(m.root.args[0])], params)[0]


# ---------------------------------------------------------------------------------------------- channel shuffle

def channel_shuffle_groups(grouped, swapped, out) -> int | None:
    """The group count when reshape -> permute_dims -> reshape is ShuffleNet's channel shuffle
    ([1, C, H, W] -> [1, g, C/g, H, W], swap axes 1 and 2, back to [1, C, H, W]), else None."""
    shape, mid = shape_of(grouped.args[0]), shape_of(grouped)
    if shape is None or mid is None or len(shape) != 4 or len(mid) != 5 or shape_of(out) != shape:
        return None
    axes = swapped.attrs.axes
    if axes is None or [int(a) for a in axes] != [0, 2, 1, 3, 4]:
        return None
    if mid[0] != 1 or mid[1] * mid[2] != shape[1] or mid[3:] != shape[2:]:
        return None
    return mid[1]


def _channel_shuffle() -> Fused:
    """One ShuffleChannel layer instead of Reshape, Permute, Reshape (three copies, the last two unpacked)."""
    grouped = is_op("relax.reshape")(wildcard(), wildcard())
    swapped = is_op("relax.permute_dims")(grouped)
    out = is_op("relax.reshape")(swapped, wildcard())
    base = check_calls("root", "permute", "out")

    def check(ctx) -> bool:
        calls = ctx.annotated_expr
        return base(ctx) and channel_shuffle_groups(calls["root"], calls["permute"], calls["out"]) is not None

    return Fused(f"{PREFIX}.channel_shuffle", out, {"root": grouped, "permute": swapped, "out": out}, check,
                 convert_channel_shuffle, ("ShuffleChannel",))


def convert_channel_shuffle(g: NcnnGraph, m: Match) -> str:
    grouped, swapped, out = m.calls
    return g.add("ShuffleChannel", [m.blob(grouped.args[0])], {0: channel_shuffle_groups(grouped, swapped, out)})[0]


OPS = [
    *(Op(name, why_not_io, convert_reshape, ("Reshape",), extra_args=(1,) if name == "relax.reshape" else (0,))
      for name in RESHAPES),
    Op("relax.concat", why_not_concat, convert_concat, ("Concat", "MemoryData")),
    Op("relax.take", why_not_take, convert_take, ("Crop", "Reshape"), extra_args=(1,)),
    Op("relax.split", why_not_split, convert_split, ("Slice",)),
    Op("relax.strided_slice", why_not_strided_slice, convert_strided_slice, ("Crop",), extra_args=(4, 3)),
    Op("relax.permute_dims", why_not_permute, convert_permute, ("Permute", "Noop")),
    Op("relax.nn.pad", why_not_pad, convert_pad, ("Padding",)),
]

PATTERNS = [_channel_shuffle()]
