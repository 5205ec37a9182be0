"""Give token tensors their batch of 1 back, so that ncnn can take them (ncnn regions run batch-1 tensors).

ONNX exporters run nn.Linear on [1, N, C] tokens as Reshape -> [N, C], MatMul, Add, Reshape -> [1, N, C'], and
timm's attention splits q, k, v with a permute that moves the 3 in front of the batch. Read literally, those
tensors have "batch N" or "batch 3", and everything between the reshapes would stay in TVM. Both are layout
accidents, not batches; this rewrite, run before partitioning, removes them without changing a single value:

- rows: a reshape of a batch-1 tensor to [N, C] (N > 1) yields [1, N, C] instead; elementwise ops and matmuls by a
  constant weight keep the leading 1 (a constant broadcasts against [1, N, C] as it did against [N, C]); where
  the value meets anything else, one reshape restores [N, C].
- qkv: split(permute_dims(x, axes), axis 0) into unit parts, x with batch 1, becomes per part a slice of x on
  axis axes[0] and the same permutation with the two unit axes (0 and axes[0]) exchanged, which keeps the batch
  axis first and moves no data differently.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .relax_util import is_constant, shape_of, static_shape

# ops that compute each output element from the same element of their inputs (constants broadcast)
ELEMENTWISE = {
    "relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum", "relax.minimum",
    "relax.power", "relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.sigmoid",
    "relax.tanh", "relax.erf", "relax.exp", "relax.sqrt", "relax.rsqrt", "relax.clip", "relax.nn.leakyrelu",
    "relax.abs", "relax.negative", "relax.square",
}


def restore_unit_batch(mod: tvm.IRModule) -> tvm.IRModule:
    main = mod["main"]
    blocks = main.body.blocks
    if len(blocks) != 1 or not isinstance(blocks[0], relax.DataflowBlock):
        return mod
    rewriter = _Rewriter(blocks[0].bindings)
    if not rewriter.applies():
        return mod
    new_main = rewriter.rebuild(main)
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)  # a copy: the caller's module stays as it was
    mod.update_func(mod.get_global_var("main"), new_main)
    return relax.transform.DeadCodeElimination(["main"])(mod)


class _Rewriter:
    def __init__(self, bindings):
        self.bindings = list(bindings)
        self.producer = {b.var: b.value for b in self.bindings}

    # ------------------------------------------------------------------------------------------ detection

    @staticmethod
    def _is_reshape(value) -> bool:
        return isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.reshape"

    def _is_rows_reshape(self, var, value) -> bool:
        if not self._is_reshape(value):
            return False
        out, src = shape_of(var), shape_of(value.args[0])
        return out is not None and src is not None and len(out) == 2 and out[0] > 1 and src[0] == 1

    def _unit_split_source(self, var, value):
        """The permute_dims call a split along axis 0 takes apart, when the split is the qkv case; else None."""
        if not (isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.split"):
            return None
        if int(value.attrs.axis) != 0:
            return None
        permute = self.producer.get(value.args[0])
        if not (isinstance(permute, relax.Call) and getattr(permute.op, "name", "") == "relax.permute_dims"):
            return None
        src, parts = shape_of(permute.args[0]), shape_of(value.args[0])
        axes = permute.attrs.axes
        if src is None or parts is None or axes is None or src[0] != 1 or int(axes[0]) == 0:
            return None
        fields = value.ty.fields
        if any((static_shape(f) or [0])[0] != 1 for f in fields) or len(fields) != parts[0]:
            return None
        return permute

    def applies(self) -> bool:
        return any(self._is_rows_reshape(b.var, b.value) or self._unit_split_source(b.var, b.value) is not None
                   for b in self.bindings)

    # ------------------------------------------------------------------------------------------ rebuild

    def rebuild(self, main: relax.Function) -> relax.Function:
        bb = relax.BlockBuilder()
        self.env, self.lifted, self.restored = {}, {}, {}
        with bb.function("main", list(main.params), attrs=dict(main.attrs) if main.attrs else None):
            with bb.dataflow():
                for b in self.bindings:
                    self.env[b.var] = self._emit(bb, b.var, b.value)
                out = bb.emit_output(self._plain(bb, main.body.body))
            bb.emit_func_output(out)
        return bb.get()["main"]

    def _plain(self, bb, expr):
        """expr as the original program has it (a lifted value reshaped back once)."""
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([self._plain(bb, f) for f in expr.fields])
        if expr in self.lifted:
            if expr not in self.restored:
                self.restored[expr] = bb.emit(relax.op.reshape(self.lifted[expr], shape_of(expr)))
            return self.restored[expr]
        return self.env.get(expr, expr)

    def _emit(self, bb, var, value):
        if self._is_rows_reshape(var, value):
            src = self._plain(bb, value.args[0])
            # [1, N, C] -> [N, C] lifted is [1, N, C] again: no reshape at all
            same = shape_of(value.args[0]) == [1, *shape_of(var)]
            self.lifted[var] = src if same else bb.emit(relax.op.reshape(src, [1, *shape_of(var)]))
            return self.lifted[var]
        if self._is_reshape(value) and value.args[0] in self.lifted:
            target = shape_of(var)
            if target[0] == 1:  # back to a batch-1 shape: the leading 1 is the real one again
                lifted = self.lifted[value.args[0]]
                return lifted if shape_of(lifted) == target else bb.emit(relax.op.reshape(lifted, target))
            self.lifted[var] = bb.emit(relax.op.reshape(self.lifted[value.args[0]], [1, *target]))
            return self.lifted[var]
        permute = self._unit_split_source(var, value)
        if permute is not None:
            return bb.emit(self._qkv_parts(bb, permute, len(value.ty.fields)))
        if isinstance(value, relax.Call) and self._lifts(value):
            args = [self.lifted.get(a, a) for a in value.args]
            self.lifted[var] = bb.emit(relax.Call(value.op, args, value.attrs, value.ty_args))
            return self.lifted[var]
        return bb.emit(self._substituted(bb, value))

    def _lifts(self, call) -> bool:
        """The call keeps the leading 1 of its lifted operands: elementwise, or a matmul by a (K, N) weight."""
        name = getattr(call.op, "name", "")
        tensors = [a for a in call.args if isinstance(getattr(a, "ty", None), relax.TensorType)]
        if not any(a in self.lifted for a in tensors):
            return False
        if name == "relax.matmul":
            return call.args[0] in self.lifted and is_constant(call.args[1]) and len(shape_of(call.args[1])) == 2
        return name in ELEMENTWISE and all(a in self.lifted or is_constant(a) for a in tensors)

    def _qkv_parts(self, bb, permute, count: int) -> relax.Tuple:
        src = self._plain(bb, permute.args[0])
        axes = [int(a) for a in permute.attrs.axes]
        moved = axes[0]
        swapped = [moved if a == 0 else 0 if a == moved else a for a in axes]
        parts = []
        for i in range(count):
            part = bb.emit(relax.op.strided_slice(src, [moved], [i], [i + 1]))
            parts.append(bb.emit(relax.op.permute_dims(part, swapped)))
        return relax.Tuple(parts)

    def _substituted(self, bb, value):
        if isinstance(value, relax.Call):
            return relax.Call(value.op, [self._plain_arg(bb, a) for a in value.args], value.attrs, value.ty_args)
        if isinstance(value, relax.TupleGetItem):
            return relax.TupleGetItem(self._plain(bb, value.tuple_value), value.index)
        if isinstance(value, relax.Tuple):
            return relax.Tuple([self._plain(bb, f) for f in value.fields])
        return self._plain(bb, value)

    def _plain_arg(self, bb, arg):
        if isinstance(arg, relax.Tuple):
            return relax.Tuple([self._plain(bb, f) for f in arg.fields])
        return self._plain(bb, arg)
