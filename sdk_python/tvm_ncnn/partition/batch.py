"""Batch N > 1 with ncnn: run the model once per image.

ncnn regions take one image (batch 1), so a model imported at batch 4 would leave everything to TVM. Most
vision models compute each image of a batch from that image alone; for those, the model is partitioned at
batch 1 and model.so's main slices the batch, calls that batch-1 function once per image and concatenates the
outputs: batch N costs about N times batch 1.

Whether a model keeps its images apart is read from the graph: main is rebuilt for batch 1 (a reshape that
carried the N as its leading axis carries 1; anything else that needs the N fails to type-check), and the two
must have the same calls, every computed tensor with the batch as its leading axis (N against 1, the rest
equal), and no call that works along that axis (a softmax or mean over it, a concat, split or slice along it,
a permute that moves it). Anything else keeps the whole model at batch N, as before.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..relax_util import calls_in, is_constant, shape_of, static_shape

# Attributes naming the axes an op works along: none of them may be the batch axis
AXIS_ATTRS = {
    "relax.nn.softmax": "axis", "relax.nn.log_softmax": "axis", "relax.concat": "axis", "relax.split": "axis",
    "relax.take": "axis", "relax.cumsum": "axis", "relax.sort": "axis", "relax.argsort": "axis",
    "relax.topk": "axis", "relax.argmax": "axis", "relax.argmin": "axis", "relax.flip": "axis",
    "relax.gather_elements": "axis", "relax.scatter_elements": "axis", "relax.nn.layer_norm": "axes",
    "relax.mean": "axis", "relax.sum": "axis", "relax.max": "axis", "relax.min": "axis", "relax.prod": "axis",
    "relax.variance": "axis", "relax.std": "axis", "relax.nn.group_norm": "axes",
}
# Ops that keep images apart whatever their attributes, given the shapes check
PER_IMAGE = {
    "relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.power", "relax.maximum",
    "relax.minimum", "relax.floor_divide", "relax.equal", "relax.less", "relax.greater", "relax.where",
    "relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv2d_transpose", "relax.nn.max_pool2d",
    "relax.nn.avg_pool2d", "relax.nn.adaptive_avg_pool2d", "relax.nn.batch_norm", "relax.matmul",
    "relax.reshape", "relax.flatten", "relax.expand_dims", "relax.squeeze", "relax.broadcast_to",
    "relax.image.resize2d", "relax.astype", "relax.clip", "relax.nn.pad", "relax.nn.relu", "relax.nn.gelu",
    "relax.nn.gelu_tanh", "relax.nn.silu", "relax.nn.leakyrelu", "relax.nn.prelu", "relax.sigmoid", "relax.tanh",
    "relax.erf", "relax.exp", "relax.log", "relax.sqrt", "relax.rsqrt", "relax.abs", "relax.negative",
    "relax.square", "relax.sin", "relax.cos", "relax.floor", "relax.ceil", "relax.round", "relax.sign",
    "relax.nn.dropout", "relax.nn.softplus", "relax.nn.hardswish", "relax.nn.hardsigmoid",
}


# main calls the batch-1 function once per image, unrolled: a larger batch stays at batch N (in TVM)
MAX_IMAGES = 64


def batch_of(shapes: list[list[int]]) -> int:
    """The batch every input shares (the leading axis of inputs of rank 2 or more, up to MAX_IMAGES), or 1 when
    there is none: a rank-1 input's only axis is not a batch of images."""
    leading = {s[0] for s in shapes if len(s) >= 2}
    if len(leading) != 1 or any(len(s) < 2 for s in shapes):
        return 1
    n = leading.pop()
    return n if n <= MAX_IMAGES else 1


def why_images_mix(at_n: tvm.IRModule, at_1: tvm.IRModule, n: int) -> str | None:
    """None when the model computes each image on its own (at_1: at_n rebuilt by at_batch_one), else the first
    call that shows otherwise."""
    calls_n, calls_1 = calls_in(at_n["main"]), calls_in(at_1["main"])
    if [_name(c) for c in calls_n] != [_name(c) for c in calls_1]:
        return "its graph at batch 1 is not its graph at batch N"
    for big, one in zip(calls_n, calls_1):
        name = _name(big)
        if name not in PER_IMAGE and name not in AXIS_ATTRS and name not in ("relax.permute_dims",
                                                                              "relax.strided_slice"):
            return f"{name} may combine images"
        if name == "relax.permute_dims" and big.attrs.axes is not None and int(big.attrs.axes[0]) != 0:
            return "permute_dims moves the batch axis"
        if name in AXIS_ATTRS and 0 in _axes(big, AXIS_ATTRS[name]):
            return f"{name} works along the batch axis"
        if name == "relax.strided_slice" and 0 in [int(a) for a in big.args[1]]:
            return "strided_slice cuts the batch axis"
        for a, b in [(big, one), *[(x, y) for x, y in zip(big.args, one.args) if isinstance(x.ty, relax.TensorType)]]:
            if not _batched(a, b, n):
                return f"{name} has a tensor without the batch as its leading axis ({shape_of(a)})"
    return None


def _name(call) -> str:
    return getattr(call.op, "name", "a call of a function")


def _batched(big, one, n: int) -> bool:
    """The call's value at batch n (big) and at batch 1 (one) differ only in a leading n against 1; constants
    are the same in both."""
    if is_constant(big):
        return shape_of(big) == shape_of(one)
    if isinstance(big.ty, relax.TupleType):
        return all(_leads(static_shape(x), static_shape(y), n) for x, y in zip(big.ty.fields, one.ty.fields))
    return _leads(shape_of(big), shape_of(one), n)


def _leads(a, b, n: int) -> bool:
    return a is not None and b is not None and len(a) == len(b) > 0 and a[0] == n and b[0] == 1 and a[1:] == b[1:]


def _axes(call, attr: str) -> list[int]:
    """The axes an op's attribute names, counted from 0 (an absent or empty one means every axis)."""
    data = call.args[0]  # a tensor, or concat's tuple of them
    rank = len((shape_of(data) if isinstance(data.ty, relax.TensorType) else static_shape(data.ty.fields[0])) or [])
    value = getattr(call.attrs, attr, None)
    if value is None:
        return list(range(rank))
    values = list(value) if hasattr(value, "__len__") else [value]
    return [int(v) % rank for v in values] if values else list(range(rank))


def at_batch_one(mod: tvm.IRModule, n: int) -> tvm.IRModule | None:
    """main rebuilt for batch 1 from its batch-n form: the same calls on inputs with a leading 1, a reshape or
    broadcast that carried the batch n along carrying 1 instead. None when that does not type-check (a call
    that needs the n). why_images_mix then compares the two."""
    main = mod["main"]
    params = [relax.Var(p.name, relax.TensorType([1, *shape_of(p)[1:]], p.ty.dtype)) for p in main.params]
    remap = dict(zip(main.params, params))
    bb = relax.BlockBuilder()
    try:
        with bb.function("main", params, main.attrs and dict(main.attrs)):
            out = _rebuilt_body(bb, main.body, remap, n)
            bb.emit_func_output(out)
    except Exception:  # TVM's type inference refused a call at batch 1: the batch is not only a batch
        return None
    rebuilt = mod.copy() if hasattr(mod, "copy") else tvm.IRModule(dict(mod.functions))
    rebuilt["main"] = bb.get()["main"]
    return rebuilt


def _rebuilt_body(bb, body, remap: dict, n: int):
    for block in body.blocks:
        if isinstance(block, relax.DataflowBlock):
            with bb.dataflow():
                for binding in block.bindings:
                    value = _at_one(binding.value, remap, n)
                    local = isinstance(binding.var, relax.DataflowVar)
                    remap[binding.var] = bb.emit(value) if local else bb.emit_output(value)
        else:
            for binding in block.bindings:
                remap[binding.var] = bb.emit(_at_one(binding.value, remap, n))
    return _at_one(body.body, remap, n)


def _at_one(expr, remap: dict, n: int):
    if isinstance(expr, relax.Var):
        return remap[expr]
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_at_one(f, remap, n) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(_at_one(expr.tuple_value, remap, n), expr.index)
    if not isinstance(expr, relax.Call):
        return expr
    if expr.ty_args:  # call_tir and its kind state their output shapes, at batch n
        raise ValueError("a call with stated output shapes")
    args = [_at_one(a, remap, n) for a in expr.args]
    carries_batch = _name(expr) in ("relax.reshape", "relax.broadcast_to") and shape_of(expr.args[0])[:1] == [n]
    for i, arg in enumerate(args):
        if isinstance(arg, relax.ShapeExpr) and [int(v) for v in arg.values][:1] == [n]:
            if not carries_batch:
                raise ValueError("a shape with the batch in it")
            args[i] = relax.ShapeExpr([1, *arg.values[1:]])
    return relax.Call(expr.op, args, expr.attrs)


def run_per_image(partitioned: tvm.IRModule, n: int) -> tvm.IRModule:
    """The batch-1 module with a main over batch n: slice, the batch-1 main once per image, concatenate."""
    image_main = partitioned["main"]
    functions = {gv: f for gv, f in partitioned.functions.items() if gv.name_hint != "main"}
    bb = relax.BlockBuilder(tvm.IRModule(functions))
    per_image = bb.add_func(image_main.with_attr("global_symbol", "per_image"), "per_image")
    params = [relax.Var(p.name, relax.TensorType([n, *shape_of(p)[1:]], p.ty.dtype)) for p in image_main.params]
    with bb.function("main", params):
        with bb.dataflow():
            results = []
            for i in range(n):
                image = [bb.emit(relax.op.strided_slice(p, [0], [i], [i + 1])) for p in params]
                results.append(bb.emit(relax.Call(per_image, image)))
            if isinstance(results[0].ty, relax.TupleType):
                count = len(results[0].ty.fields)
                out = relax.Tuple([bb.emit(relax.op.concat([relax.TupleGetItem(r, k) for r in results], axis=0))
                                   for k in range(count)])
            else:
                out = relax.op.concat(results, axis=0)
            out = bb.emit_output(out)
        bb.emit_func_output(out)
    return bb.get()
