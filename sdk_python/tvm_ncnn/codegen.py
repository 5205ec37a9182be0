"""relax.ext.ncnn: each merged region (a function of composite calls) becomes one ncnn graph, wrapped in an
`ncnn` runtime module that model.so carries (see runtime/FORMAT.md)."""

from __future__ import annotations

from dataclasses import dataclass

import tvm_ffi
from tvm import relax

from . import native, quantize
from .graph_passes import run_passes
from .ncnn_graph import NcnnGraph
from .ops import Match, rule_for
from .relax_util import bound_calls, calls_in, composite_calls, shape_of, static_shape


@dataclass
class Region:
    symbol: str
    param: str
    weights: bytes
    inputs: list[str]
    input_shapes: list[list[int]]
    outputs: list[str]
    output_shapes: list[list[int]]


def convert_region(func: relax.Function) -> Region:
    """Convert the region's composite calls in order, run the graph passes, write the graph. A value maps to
    one blob, or to a list of blobs when it is a tuple (split)."""
    graph = NcnnGraph()
    blobs = {}
    for param in func.params:
        blobs[param] = graph.add_input(shape_of(param)[1:])
    composite_of = {call: composite for _, composite, call in composite_calls(func)}
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Function):
                continue  # a composite's definition: converted where it is called
            if isinstance(value, relax.Call) and value in composite_of:
                composite = composite_of[value]
                match = Match(calls_in(composite), dict(zip(composite.params, (blobs[a] for a in value.args))),
                              bound_calls(composite))
                rule = rule_for(str(composite.attrs["Composite"]), match.root.op.name)
                written = len(graph.layers)
                blobs[binding.var] = rule.convert(graph, match)
                _check_declared(rule, graph.layers[written:])
                _record_shapes(graph, blobs[binding.var], binding.var)
            elif isinstance(value, relax.TupleGetItem):
                blobs[binding.var] = blobs[value.tuple_value][value.index]
            elif isinstance(value, relax.Tuple):
                blobs[binding.var] = [blobs[f] for f in value.fields]
            elif isinstance(value, relax.Var):
                blobs[binding.var] = blobs[value]
            else:
                raise NotImplementedError(f"ncnn codegen: unexpected binding {type(value).__name__} in region")
    results = _flatten(func.body.body, blobs)
    outputs = run_passes(graph, [blob for blob, _ in results])
    inputs = [blobs[p] for p in func.params]
    quantize.rewrite(str(func.attrs["global_symbol"]), graph, inputs, outputs)  # int8 export only (quantize.py)
    param, weights = graph.serialize()
    return Region(
        symbol=str(func.attrs["global_symbol"]),
        param=param,
        weights=weights,
        inputs=inputs,
        input_shapes=[shape_of(p) for p in func.params],
        outputs=outputs,
        output_shapes=[shape for _, shape in results],
    )


def _check_declared(rule, layers) -> None:
    """A converter writes only the layer types its op module declares: the declaration is what the vendored
    ncnn layer list is checked against, so a layer missing from it would fail on the device, not here."""
    undeclared = {layer.type for layer in layers} - set(rule.layers)
    if undeclared:
        raise AssertionError(f"ncnn codegen: {rule.name} wrote undeclared layer types {sorted(undeclared)}")


def _record_shapes(graph: NcnnGraph, blob, var) -> None:
    """The converted value's shape (without the batch) on its blob(s), for the graph passes."""
    if isinstance(blob, list):
        for b, field in zip(blob, var.ty.fields):
            graph.shapes[b] = static_shape(field)[1:]
    else:
        graph.shapes[blob] = shape_of(var)[1:]


def _flatten(expr, blobs) -> list[tuple[str, list[int]]]:
    """(blob, shape) of every tensor a region returns, tuples flattened in order."""
    if isinstance(expr, relax.Tuple):
        return [item for field in expr.fields for item in _flatten(field, blobs)]
    value = blobs[expr]
    if isinstance(value, list):
        return list(zip(value, (static_shape(f) for f in expr.ty.fields)))
    return [(value, shape_of(expr))]


def region_module(region: Region):
    create = native.get_function("tvm_ncnn.ncnn_module_create")
    return create(region.symbol, region.param, region.weights, region.inputs, region.input_shapes,
                  region.outputs, region.output_shapes)


@tvm_ffi.register_global_func("relax.ext.ncnn", override=True)
def ncnn_codegen(functions, options, constant_names):
    """Called by relax.transform.RunCodegen with every function annotated Codegen="ncnn". The weights are
    written into each module's own bytes, so constant_names (TVM's const-loader route) stays unused."""
    return [region_module(convert_region(f)) for f in functions]
