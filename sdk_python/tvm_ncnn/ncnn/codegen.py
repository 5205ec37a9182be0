"""relax.ext.ncnn: each merged region (a function of composite calls) becomes one ncnn graph, wrapped in an
`ncnn` runtime module that model.so carries (see runtime/FORMAT.md). Its one option, "int8_plan" (a
quantize.Plan as JSON), writes the plan's layers in int8; compile/lower.py passes it through RunCodegen."""

from __future__ import annotations

from dataclasses import dataclass

import tvm_ffi
from tvm import relax, tirx

from ..runtime import native
from .graph import NcnnGraph
from .passes import run_passes
from .window_padding import pad_in_front
from .quantize import Plan
from .ops import Match, rule_for
from ..relax_util import bound_calls, calls_in, composite_calls, shape_of, static_shape


CODEGEN = "ncnn"  # the Codegen attribute of a region (partition/), the name RunCodegen finds relax.ext.<name> by


@dataclass
class Region:
    symbol: str
    graph: NcnnGraph
    inputs: list[str]
    input_shapes: list[list[int]]
    outputs: list[str]
    output_shapes: list[list[int]]

    @property
    def param(self) -> str:
        """The graph's .param text."""
        return self.graph.serialize()[0]


def region_graphs(mod) -> dict[str, Region]:
    """symbol -> the finished fp32 graph of every ncnn region of a partitioned module (what int8 calibrates)."""
    return {r.symbol: r for r in (convert_region(f) for _, f in mod.functions_items()
                                  if isinstance(f, relax.Function) and f.attrs and
                                  f.attrs.get("Codegen") == CODEGEN)}


def convert_region(func: relax.Function) -> Region:
    """Convert the region's composite calls in order, run the graph passes, write the graph. A value maps to
    one blob, or to a list of blobs when it is a tuple (split)."""
    graph = NcnnGraph()
    blobs = {}
    # A region of a model with dynamic sizes may also take the sizes (a shape parameter TVM adds so that it can
    # compute its output shapes): ncnn needs none, the module skips them (runtime/FORMAT.md).
    params = [p for p in func.params if isinstance(p.ty, relax.TensorType)]
    for param in params:
        blobs[param] = graph.add_input(shape_of(param)[1:], dynamic=_dynamic_axes(param.ty))
    composite_of = {call: composite for _, composite, call in composite_calls(func)}
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Function):
                continue  # a composite's definition: converted where it is called
            if isinstance(value, relax.Call) and value in composite_of:
                composite = composite_of[value]
                fed = {p: blobs[a] for p, a in zip(composite.params, value.args) if a in blobs}
                match = Match(calls_in(composite), fed, bound_calls(composite))
                rule = rule_for(str(composite.attrs["Composite"]), getattr(match.root.op, "name", None))
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
    inputs = [blobs[p] for p in params]
    return Region(
        symbol=str(func.attrs["global_symbol"]),
        graph=graph,
        inputs=inputs,
        input_shapes=[_recorded(p.ty, shape_of(p)) for p in params],
        outputs=outputs,
        output_shapes=[_recorded(ty, shape) for (_, shape), ty in zip(results, _flat_types(func.body.body.ty))],
    )


def _dynamic_axes(ty) -> list[int]:
    """The axes of a tensor type whose size is symbolic (a model with dynamic sizes, frontend/dynamic.py)."""
    return [i for i, d in enumerate(ty.shape) if not isinstance(d, tirx.IntImm)]


def _recorded(ty, shape: list[int]) -> list[int]:
    """The shape the runtime checks a region's tensor against: -1 where the size is dynamic (FORMAT.md)."""
    dynamic = _dynamic_axes(ty)
    return [-1 if i in dynamic else d for i, d in enumerate(shape)]


def _flat_types(ty) -> list:
    return [t for f in ty.fields for t in _flat_types(f)] if isinstance(ty, relax.TupleType) else [ty]


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
    elif shape_of(var) is not None:  # unknown after a resize to a dynamic size inside a composite
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
    param, weights = region.graph.serialize()
    create = native.get_function("tvm_ncnn.ncnn_module_create")
    return create(region.symbol, param, weights, region.inputs, region.input_shapes, region.outputs,
                  region.output_shapes)


@tvm_ffi.register_global_func(f"relax.ext.{CODEGEN}", override=True)
def ncnn_codegen(functions, options, constant_names):
    """Called by relax.transform.RunCodegen with every function annotated Codegen="ncnn". The weights are
    written into each module's own bytes, so constant_names (TVM's const-loader route) stays unused."""
    plan = Plan.from_json(str(options["int8_plan"])) if options and "int8_plan" in options else None
    modules = []
    for func in functions:
        region = convert_region(func)
        if plan is not None:
            plan.apply(region.symbol, region.graph)
        pad_in_front(region.graph)  # after the int8 plan, which leaves int8 convolutions their own padding
        modules.append(region_module(region))
    return modules
