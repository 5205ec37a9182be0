"""Give token tensors their batch of 1 back, so that ncnn can take them (ncnn regions run batch-1 tensors).

ONNX exporters run nn.Linear on [1, N, C] tokens as Reshape -> [N, C], MatMul, Add, Reshape -> [1, N, C'];
MobileViT unfolds a feature map into [patch, tokens, C]; timm's attention splits q, k, v with a permute that
moves the 3 in front of the batch. Read literally, those tensors have "batch N", "batch 4" or "batch 3", and
everything between them would stay in TVM. They are layouts, not batches; this rewrite, run before partitioning,
removes them without changing a single value:

- lift: a reshape of a batch-1 tensor to a shape S with S[0] > 1 yields [1, *S] instead ("lifted"). Ops that
  work the same with one more leading axis keep the lifted form (elementwise with constants broadcasting as they
  did, matmul, permute/softmax/layer_norm/split/concat with their axes moved by one, further reshapes); where a
  lifted value meets anything else, one reshape restores S. Reductions over given axes lift too (Swin-V2's
  cosine attention normalizes q and k over [windows, heads, tokens, C]).
- qkv: split(permute_dims(x, [k, 0, ...]), axis 0) into unit parts, x with batch 1, becomes
  split(permute_dims(x, [0, k, ...]), axis 1): the size-1 batch axis moved first changes no value's position.
- windows (EfficientViT): cutting [1, C, H, W] into [nh * nw, C, wh, ww] windows and back goes through rank-6
  tensors; the same moves are made at rank 5 (two reshape-permute steps each way), the windows lifted. A conv2d
  on B lifted windows is one grouped conv over their B * C channels, its weights tiled B times.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ncnn.graph import MAX_RANK
from ..relax_util import constant_value, is_constant, shape_of, static_shape

# ops that compute each output element from the same element of their inputs (constants broadcast)
ELEMENTWISE = {
    "relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum",
    "relax.power", "relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.sigmoid",
    "relax.tanh", "relax.erf", "relax.exp", "relax.sqrt", "relax.rsqrt", "relax.clip", "relax.nn.leakyrelu",
    "relax.abs", "relax.negative", "relax.square",
}
RESHAPES = {"relax.reshape", "relax.squeeze", "relax.expand_dims"}
REDUCTIONS = {"relax.sum", "relax.mean", "relax.max", "relax.min"}


def restore_unit_batch(mod: tvm.IRModule) -> tvm.IRModule:
    main = mod["main"]
    blocks = main.body.blocks
    if len(blocks) != 1 or not isinstance(blocks[0], relax.DataflowBlock):
        return mod
    rewriter = _Rewriter(blocks[0].bindings)
    if not rewriter.applies():
        return mod
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)  # a copy: the caller's module stays as it was
    mod.update_func(mod.get_global_var("main"), rewriter.rebuild(main))
    return relax.transform.DeadCodeElimination(["main"])(mod)


def _axes(value) -> list[int] | None:
    axes = getattr(getattr(value, "attrs", None), "axes", None) if _name(value) == "relax.permute_dims" else None
    return None if axes is None else [int(a) for a in axes]


def _name(value) -> str:
    return getattr(getattr(value, "op", None), "name", "") if isinstance(value, relax.Call) else ""


class _Rewriter:
    def __init__(self, bindings):
        self.bindings = list(bindings)
        self.producer = {b.var: b.value for b in self.bindings}

    # ------------------------------------------------------------------------------------------ detection

    @staticmethod
    def _starts_lift(var, value) -> bool:
        """A reshape of a batch-1 tensor to a shape with a leading dimension other than 1."""
        out, src = shape_of(var), shape_of(value.args[0]) if _name(value) in RESHAPES else None
        return src is not None and out is not None and src[0] == 1 and out[0] > 1 and len(out) < MAX_RANK

    def _unit_split_source(self, value):
        """The permute_dims call a split along axis 0 takes apart, when the split is the qkv case; else None."""
        if _name(value) != "relax.split" or int(value.attrs.axis) != 0:
            return None
        permute = self.producer.get(value.args[0])
        if _name(permute) != "relax.permute_dims" or permute.attrs.axes is None:
            return None
        src, axes = shape_of(permute.args[0]), [int(a) for a in permute.attrs.axes]
        fields = value.ty.fields
        if src is None or any((static_shape(f) or [0])[0] != 1 for f in fields) \
                or len(fields) != shape_of(value.args[0])[0]:
            return None  # not a split into unit parts
        if src[0] != 1:
            return permute if self._lifted_qkv(permute) else None
        # [n, 1, ...]: the batch axis lands second, so the parts [1, 1, ...] are the same with it first
        return permute if axes[0] != 0 and axes[1] == 0 else None

    def applies(self) -> bool:
        return any(self._starts_lift(b.var, b.value) or self._unit_split_source(b.value) is not None
                   or self._windows(b.value, [0, 2, 4, 3, 5, 1]) is not None for b in self.bindings)

    # ------------------------------------------------------------------------------------------ rebuild

    def rebuild(self, main: relax.Function) -> relax.Function:
        bb = relax.BlockBuilder()
        self.env, self.lifted, self.restored, self.grouped_convs = {}, {}, {}, {}
        with bb.function("main", list(main.params), attrs=dict(main.attrs) if main.attrs else None):
            with bb.dataflow():
                for b in self.bindings:
                    self.env[b.var] = self._emit(bb, b.var, b.value)
                out = bb.emit_output(self._plain(bb, main.body.body))
            bb.emit_func_output(out)
        return bb.get()["main"]

    def _plain(self, bb, expr):
        """expr as the original program has it (a lifted value reshaped back, once)."""
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([self._plain(bb, f) for f in expr.fields])
        if expr in self.lifted:
            if expr not in self.restored:
                if not isinstance(expr.ty, relax.TensorType):  # a lifted split: its parts one by one
                    parts = [self._plain(bb, relax.TupleGetItem(expr, i)) for i in range(len(expr.ty.fields))]
                    self.restored[expr] = relax.Tuple(parts)
                else:
                    self.restored[expr] = bb.emit(relax.op.reshape(self.lifted[expr], shape_of(expr)))
            return self.restored[expr]
        return self.env.get(expr, expr)

    def _emit(self, bb, var, value):
        if self._starts_lift(var, value):
            src = self._plain(bb, value.args[0])
            same = shape_of(value.args[0]) == [1, *shape_of(var)]  # [1, N, C] -> [N, C] lifted is the input
            return self._lift(var, src if same else bb.emit(relax.op.reshape(src, [1, *shape_of(var)])))
        permute = self._unit_split_source(value)
        if permute is not None:
            return bb.emit(self._qkv_parts(bb, permute, len(value.ty.fields)))
        cut = self._windows(value, [0, 2, 4, 3, 5, 1])
        if cut is not None and cut[0] not in self.lifted:
            return self._lift(var, self._cut_windows(bb, self._plain(bb, cut[0]), *cut[1]))
        joined = self._windows(value, [0, 1, 4, 2, 5, 3])
        if joined is not None and joined[0] in self.lifted:
            return bb.emit(self._join_windows(bb, self.lifted[joined[0]], *joined[1]))
        biased = self._conv_bias(bb, var, value)
        if biased is not None:
            return biased
        if _name(value) == "relax.nn.conv2d" and value.args[0] in self.lifted:
            lifted = self._lifted_conv(bb, var, value)
            if lifted is not None:
                return lifted
        if isinstance(value, relax.TupleGetItem) and value.tuple_value in self.lifted:
            return self._lift(var, bb.emit(relax.TupleGetItem(self.lifted[value.tuple_value], value.index)))
        lifted = self._lifted_call(bb, var, value) if isinstance(value, relax.Call) else None
        if lifted is not None:
            return lifted
        return bb.emit(self._substituted(bb, value))

    def _lift(self, var, expr):
        self.lifted[var] = expr
        return expr

    def _lifted_call(self, bb, var, call):
        """The call on the lifted forms of its operands, or None where it does not keep the leading 1."""
        name, args = _name(call), list(call.args)
        tensors = [a for a in args if isinstance(getattr(a, "ty", None), relax.TensorType)]
        parts = args[0].fields if name == "relax.concat" and isinstance(args[0], relax.Tuple) else tensors
        if not parts or not all(a in self.lifted or is_constant(a) for a in parts) \
                or not any(a in self.lifted for a in parts):
            return None
        out = static_shape(var.ty)
        x = self.lifted.get(args[0])
        if name in RESHAPES and out[0] == 1:  # back to a batch-1 shape: the leading 1 is the real one again
            return x if shape_of(x) == out else bb.emit(relax.op.reshape(x, out))
        if out is not None and len(out) + 1 > MAX_RANK:
            return None
        if name in RESHAPES:
            return self._lift(var, bb.emit(relax.op.reshape(x, [1, *out])))
        new = self._shifted(name, call, [self.lifted.get(a, a) for a in args])
        return None if new is None else self._lift(var, bb.emit(new))

    def _shifted(self, name: str, call, args):
        """The call with its axes moved by one for the leading 1, or None when it has no lifted form."""
        if name in ELEMENTWISE:
            return relax.Call(call.op, args, call.attrs, call.ty_args)
        if name == "relax.matmul":
            weight = is_constant(call.args[1]) and len(shape_of(call.args[1])) == 2
            both = call.args[0] in self.lifted and call.args[1] in self.lifted
            return relax.op.matmul(args[0], args[1]) if (weight and call.args[0] in self.lifted) or both else None
        rank = len(shape_of(call.args[0])) if name != "relax.concat" else len(static_shape(call.ty))
        if name == "relax.permute_dims" and call.attrs.axes is not None:
            return relax.op.permute_dims(args[0], [0] + [int(a) + 1 for a in call.attrs.axes])
        if name == "relax.strided_slice" and len(call.args) in (4, 5):
            axes, begin, end = ([int(v) for v in call.args[i]] for i in (1, 2, 3))
            strides = [int(v) for v in call.args[4]] if len(call.args) == 5 else None
            return relax.op.strided_slice(args[0], [a % rank + 1 for a in axes], begin, end, strides)
        if name == "relax.nn.softmax":
            return relax.op.nn.softmax(args[0], int(call.attrs.axis) % rank + 1)
        if name == "relax.nn.layer_norm":
            a = call.attrs
            return relax.op.nn.layer_norm(args[0], args[1], args[2], [int(x) % rank + 1 for x in a.axes],
                                          float(a.epsilon), bool(a.center), bool(a.scale))
        if name == "relax.split":
            sections = call.attrs.indices_or_sections
            sections = [int(s) for s in sections] if hasattr(sections, "__len__") else int(sections)
            return relax.op.split(args[0], sections, int(call.attrs.axis) % rank + 1)
        if name == "relax.concat" and all(f in self.lifted for f in call.args[0].fields):
            fields = [self.lifted[f] for f in call.args[0].fields]
            return relax.op.concat(fields, int(call.attrs.axis) % rank + 1)
        if name in REDUCTIONS and call.attrs.axis is not None:  # never over the leading 1 (axis None: all)
            axes = [int(a) % rank + 1 for a in call.attrs.axis]
            return getattr(relax.op, name.removeprefix("relax."))(args[0], axes, bool(call.attrs.keepdims))
        return None

    def _windows(self, value, middle: list[int]):
        """(source, (C, nh, wh, nw, ww)) when `value` ends a window cut (middle [0, 2, 4, 3, 5, 1]: [1, C, H, W]
        -> [nh * nw, C, wh, ww]) or join (middle [0, 1, 4, 2, 5, 3]: back), spelled reshape -> rank-6 permute ->
        reshape -> permute [0, 3, 1, 2]; else None."""
        if _name(value) != "relax.permute_dims" or _axes(value) != [0, 3, 1, 2]:
            return None
        flat = self.producer.get(value.args[0])
        moved = self.producer.get(flat.args[0]) if _name(flat) == "relax.reshape" else None
        six = self.producer.get(moved.args[0]) if _name(moved) == "relax.permute_dims" else None
        if _axes(moved) != middle or _name(six) != "relax.reshape":
            return None
        source, dims = six.args[0], shape_of(moved.args[0])
        if middle == [0, 2, 4, 3, 5, 1]:  # [1, C, nh, wh, nw, ww] from [1, C, H, W]
            _, c, nh, wh, nw, ww = dims
            fits = shape_of(source) == [1, c, nh * wh, nw * ww] and shape_of(flat) == [nh * nw, wh, ww, c]
        else:  # [1, nh, nw, C, wh, ww] from [nh * nw, C, wh, ww]
            _, nh, nw, c, wh, ww = dims
            fits = shape_of(source) == [nh * nw, c, wh, ww] and shape_of(flat) == [1, nh * wh, nw * ww, c]
        return (source, (c, nh, wh, nw, ww)) if fits else None

    @staticmethod
    def _cut_windows(bb, x, c, nh, wh, nw, ww):
        """[1, C, nh * wh, nw * ww] -> [1, nh * nw, C, wh, ww] at rank 5."""
        t = bb.emit(relax.op.permute_dims(relax.op.reshape(x, [1, c, nh, wh, nw * ww]), [0, 2, 1, 3, 4]))
        t = bb.emit(relax.op.permute_dims(relax.op.reshape(t, [1, nh, c * wh, nw, ww]), [0, 1, 3, 2, 4]))
        return bb.emit(relax.op.reshape(t, [1, nh * nw, c, wh, ww]))

    @staticmethod
    def _join_windows(bb, x, c, nh, wh, nw, ww):
        """[1, nh * nw, C, wh, ww] -> [1, C, nh * wh, nw * ww] at rank 5: _cut_windows backwards."""
        t = bb.emit(relax.op.permute_dims(relax.op.reshape(x, [1, nh, nw, c * wh, ww]), [0, 1, 3, 2, 4]))
        t = bb.emit(relax.op.permute_dims(relax.op.reshape(t, [1, nh, c, wh, nw * ww]), [0, 2, 1, 3, 4]))
        return relax.op.reshape(t, [1, c, nh * wh, nw * ww])

    def _lifted_conv(self, bb, var, call):
        """conv2d of B lifted images [1, B, C, H, W]: one grouped conv over [1, B * C, H, W] with the weights
        tiled B times and B times the groups, so each image still meets only its own channels."""
        a, x = call.attrs, self.lifted[call.args[0]]
        if not is_constant(call.args[1]) or (a.data_layout, a.kernel_layout) != ("NCHW", "OIHW"):
            return None
        _, b, c, h, w = shape_of(x)
        weight = np.tile(constant_value(call.args[1]), (b, 1, 1, 1))
        merged = bb.emit(relax.op.reshape(x, [1, b * c, h, w]))
        conv = bb.emit(relax.op.nn.conv2d(merged, relax.const(weight), [int(v) for v in a.strides],
                                          [int(v) for v in a.padding], [int(v) for v in a.dilation],
                                          int(a.groups) * b))
        self.grouped_convs[var] = conv
        return self._lift(var, bb.emit(relax.op.reshape(conv, [1, *shape_of(var)])))

    def _conv_bias(self, bb, var, value):
        """The bias add after a lifted conv, added to the grouped conv itself (tiled like its weights): ncnn then
        fuses it into the Convolution, as it does for any conv + bias."""
        if _name(value) != "relax.add" or value.args[0] not in self.grouped_convs or not is_constant(value.args[1]):
            return None
        conv, bias = self.grouped_convs[value.args[0]], constant_value(value.args[1])
        b, o = shape_of(value.args[0])[:2]
        if bias.size != o or bias.ndim > 4 or bias.shape[-3 if bias.ndim >= 3 else 0] != o:
            return None  # not one value per output channel
        tiled = relax.const(np.tile(bias.reshape(-1), b).reshape(1, b * o, 1, 1).astype(bias.dtype))
        return self._lift(var, bb.emit(relax.op.reshape(bb.emit(relax.op.add(conv, tiled)), [1, *shape_of(var)])))

    def _lifted_qkv(self, permute) -> bool:
        """timm's qkv layout on tokens that carry a layout batch (MobileViT's patches): permute_dims of
        [P, N, 3, heads, dim] by [2, 0, 3, 1, 4], reshaped from a lifted value. [1, P, N, 3, heads, dim] has one
        dimension too many for ncnn, so the parts are cut from the lifted value at rank 5 instead."""
        source = self.producer.get(permute.args[0])
        shape = shape_of(permute.args[0])
        return [int(a) for a in permute.attrs.axes] == [2, 0, 3, 1, 4] and _name(source) in RESHAPES \
            and source.args[0] in self.lifted and len(shape) == 5

    def _lifted_qkv_parts(self, bb, permute, count: int):
        """The lifted [1, P, N, 3 * heads, dim] permuted to [1, P, 3 * heads, N, dim] and split along axis 2:
        each part is the split's own [1, P, heads, N, dim], in one Permute and one Slice for all three."""
        p, n, _, heads, dim = shape_of(permute.args[0])
        rows = bb.emit(relax.op.reshape(self.lifted[self.producer[permute.args[0]].args[0]],
                                        [1, p, n, count * heads, dim]))
        return relax.op.split(bb.emit(relax.op.permute_dims(rows, [0, 1, 3, 2, 4])), count, axis=2)

    def _qkv_parts(self, bb, permute, count: int):
        """The same permutation with the batch axis first (it is size 1, so no value moves), split along axis 1:
        one Permute and one Slice, as pnnx writes timm's attention."""
        if shape_of(permute.args[0])[0] != 1:
            return self._lifted_qkv_parts(bb, permute, count)
        axes = [int(a) for a in permute.attrs.axes]
        batch_first = bb.emit(relax.op.permute_dims(self._plain(bb, permute.args[0]), [0, axes[0], *axes[2:]]))
        return relax.op.split(batch_first, count, axis=1)

    def _substituted(self, bb, value):
        if isinstance(value, relax.Call):
            args = [self._plain(bb, a) for a in value.args]
            return relax.Call(value.op, args, value.attrs, value.ty_args)
        if isinstance(value, relax.TupleGetItem):
            return relax.TupleGetItem(self._plain(bb, value.tuple_value), value.index)
        return self._plain(bb, value)
