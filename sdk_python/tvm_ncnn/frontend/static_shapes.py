"""Fold shape arithmetic computed from static shapes to constants before TVM's importer.

The TorchScript ONNX exporter writes a model's Python size arithmetic as nodes: Swin's window padding is
Shape -> Gather -> Mod -> Sub -> Concat -> Pad, its window partition Shape -> Gather -> Div -> Concat -> Reshape.
onnx's shape inference propagates values only through a few ops (Shape, Gather, Concat, Add/Sub/Mul, Slice,
(Un)Squeeze, Cast), not through Mod or Div, so the Reshape after such a chain gets unknown dims, every Shape
downstream reads an unknown shape until the chain before it folds. onnxslim alternates folding and inference for
at most 10 rounds (ONNXSLIM_MAX_ITER), so it leaves the chains of later blocks (Swin-T has 15 blocks and merges
in a row; and onnxslim 0.1.98's own symbolic inference raises on its LayerNormalization, falling back to onnx's).
TVM's importer then refuses the Pad ("Dynamic pads are not supported yet") or imports a dynamic Reshape.

fold() alternates onnx's shape inference with folding: a Shape (or Size) node whose input has every dim a number
becomes a constant, and so does every node whose inputs are all constants (evaluated by onnx's reference
implementation, small tensors only). Each round makes more shapes known; it stops when a round folds no Shape.
A tensor with a symbolic dim (a dynamic-size model) is never folded, so dynamic models keep their shape graphs.
"""

from __future__ import annotations

import numpy as np

# Ops whose all-constant instances are evaluated here: shape arithmetic and what feeds it.
_FOLDABLE = frozenset(
    "Gather Concat Unsqueeze Squeeze Add Sub Mul Div Mod Neg Abs Cast Slice Range Equal Less Greater LessOrEqual "
    "GreaterOrEqual Not And Or Where Min Max Floor Ceil Sqrt Reshape Expand ConstantOfShape Identity ReduceProd "
    "ReduceSum ReduceMax ReduceMin Tile Transpose Flatten Shape Size Sign Clip".split())
_MAX_ELEMENTS = 1 << 16  # fold only small tensors: shapes and index arithmetic, never weights
_MAX_ROUNDS = 64


def fold(model):
    """(model, number of Shape/Size nodes folded). The model is modified in place and returned."""
    from onnx import shape_inference

    folded_total = 0
    for _ in range(_MAX_ROUNDS):
        try:
            inferred = shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # a graph onnx cannot infer stays as it is
            break
        shapes = _static_shapes(inferred.graph)
        opsets = {o.domain or "": o.version for o in model.opset_import}
        count = _fold_round(model.graph, shapes, opsets)
        if count == 0:
            break
        folded_total += count
    return model, folded_total


def fold_after_onnxslim(model):
    """fold(), then onnxslim once more to clean up what the folding made static (it left these chains because
    it alternates folding and shape inference at most 10 rounds, one level of Mod/Div arithmetic a round)."""
    model, folded = fold(model)
    if folded:
        try:
            import onnxslim

            model = onnxslim.slim(model)
        except Exception:  # the folded model imports as it is
            pass
    return model


def _static_shapes(graph) -> dict[str, list[int]]:
    """Each value's shape where every dim is a known number."""
    shapes = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        t = value.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if all(d is not None and d >= 0 for d in dims):
            shapes[value.name] = dims
    return shapes


def _fold_round(graph, shapes: dict, opsets: dict) -> int:
    """Fold what is static now; returns how many Shape/Size nodes became constants."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in graph.initializer}
    constants: dict[str, np.ndarray] = {}

    def value(name):
        if name in constants:
            return constants[name]
        init = initializers.get(name)
        if init is not None and _elements(init.dims) <= _MAX_ELEMENTS:
            constants[name] = numpy_helper.to_array(init)
            return constants[name]
        return None

    outputs = {o.name for o in graph.output}
    removed, shape_folds = [], 0
    for node in graph.node:
        if any(a.type in (5, 10) for a in node.attribute) or node.domain not in ("", "ai.onnx"):
            continue  # subgraphs (If, Loop) and custom domains stay
        if any(o in outputs for o in node.output):
            continue
        result = None
        if node.op_type in ("Shape", "Size") and node.input[0] in shapes:
            result = [_shape_value(node, shapes[node.input[0]])]
            shape_folds += 1
        elif node.op_type == "Constant":
            result = _evaluate(node, [], opsets)
        elif node.op_type in _FOLDABLE:
            inputs = [value(i) if i else None for i in node.input]
            if all(x is not None for x, name in zip(inputs, node.input) if name):
                result = _evaluate(node, inputs, opsets)
        if result is None or any(r is None or r.size > _MAX_ELEMENTS for r in result):
            continue
        for name, array in zip(node.output, result):
            constants[name] = array
        removed.append(node)
    if not removed:
        return 0
    _replace(graph, removed, constants, initializers)
    return shape_folds


def _shape_value(node, dims: list[int]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    rank = len(dims)
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    start, end = (s + rank if s < 0 else s for s in (start, end))
    return np.array(dims[max(0, min(start, rank)):max(0, min(end, rank))], dtype=np.int64)


def _evaluate(node, inputs, opsets: dict):
    """The node's outputs by onnx's reference implementation at the model's opset (Unsqueeze's axes, Slice's
    starts are attributes in old opsets and inputs in new ones)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    try:
        feeds = {name: x for name, x in zip(node.input, inputs) if name}
        graph = helper.make_graph([node], "fold", [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                                                   for n in feeds],
                                  [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                                   for n in node.output])
        return [np.asarray(r) for r in ReferenceEvaluator(graph, opsets=opsets).run(None, feeds)]
    except Exception:  # an op the reference cannot run here stays in the graph
        return None


def _replace(graph, removed, constants, initializers):
    """Drop the folded nodes; their outputs that remaining nodes read become initializers."""
    from onnx import numpy_helper

    removed_ids = {id(n) for n in removed}
    keep = [n for n in graph.node if id(n) not in removed_ids]
    needed = {i for n in keep for i in n.input} | _subgraph_reads(keep)
    for node in removed:
        for name in node.output:
            if name in needed and name not in initializers:
                graph.initializer.append(numpy_helper.from_array(constants[name], name))
    del graph.node[:]
    graph.node.extend(keep)
    stale = {o for n in removed for o in n.output}
    kept_info = [v for v in graph.value_info if v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)


def _subgraph_reads(nodes) -> set:
    reads = set()
    for node in nodes:
        for attr in node.attribute:
            for g in [attr.g] if attr.type == 5 else list(attr.graphs) if attr.type == 10 else []:
                reads |= {i for n in g.node for i in n.input} | _subgraph_reads(g.node)
    return reads


def _elements(dims) -> int:
    return int(np.prod(list(dims), dtype=np.int64)) if len(dims) else 1
