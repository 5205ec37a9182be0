"""Model import: ONNX files, torch.export programs and Relax IRModules become one Relax IRModule with constants
folded, plus the names and shapes of its inputs. Shapes are static, except the input sizes a model leaves dynamic
(frontend/dynamic.py): those stay variables, with the rule of the sizes they take."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import tvm
from tvm import relax

from ..errors import ModelError
import tvm.tirx

from ..relax_util import scalar_constant, static_shape
from . import onnx_nodes, onnx_symbolic, quantized, recurrent, static_shapes
from .dynamic import DynamicDim, Sizes, check_names, parse_dim, symbolic_import


class DefaultBatchWarning(UserWarning):
    """An input's only dynamic dimension was its batch, and export chose 1."""


@dataclass
class TensorSpec:
    name: str
    shape: list[int]  # -1 where the size is dynamic
    dtype: str
    dynamic: list[DynamicDim] | None = None  # an input's dynamic dimensions and their rules

    def to_json(self) -> dict:
        found = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.dynamic:
            found["dynamic"] = [d.to_json() for d in self.dynamic]
        return found


@dataclass
class Imported:
    mod: tvm.IRModule
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    source: str  # what was imported, for messages
    sizes: Sizes | None = None  # the dynamic dimensions; None: every shape is static

    def probes(self) -> list[dict] | None:
        """The sizes partition and codegen read a dynamic model at (frontend/dynamic.py), None when static."""
        return self.sizes.probes() if self.sizes else None

    def at_probe(self, k: int) -> list[TensorSpec]:
        """The inputs with each dynamic dimension at probe size k (a static model: its inputs)."""
        if not self.sizes:
            return self.inputs
        values = self.sizes.probes()[k]
        specs = []
        for spec in self.inputs:
            shape = list(spec.shape)
            for d in spec.dynamic or []:
                shape[d.axis] = values[self.sizes.param[id(d)]]
            specs.append(TensorSpec(spec.name, shape, spec.dtype))
        return specs


def import_model(model, input_shapes: dict[str, list[int]] | None = None, example_inputs=None) -> Imported:
    """Import a path (.onnx, .pt2), an onnx.ModelProto, a torch.export.ExportedProgram, a torch.nn.Module
    (with example_inputs) or a Relax IRModule."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelError(f"{path}: no such file")
        if os.path.isdir(path):
            raise ModelError(f"{path}: is a directory, expected a model file (.onnx or .pt2)")
        ext = os.path.splitext(path)[1].lower()
        if ext == ".onnx":
            return _from_onnx_file(path, input_shapes)
        if ext in (".pt2", ".pt"):
            return _from_torch_file(path)
        raise ModelError(f"{path}: unknown model format '{ext}', expected .onnx or .pt2")
    if isinstance(model, tvm.IRModule):
        return _finish(model, source="IRModule")
    kind = type(model).__module__ + "." + type(model).__name__
    if kind.startswith("onnx"):
        return _from_onnx(model, input_shapes, source="onnx.ModelProto")
    if "ExportedProgram" in kind:
        return _from_exported_program(model, source="ExportedProgram")
    if _is_torch_module(model):
        if example_inputs is None:
            raise ModelError("a torch.nn.Module needs example_inputs (a tuple of tensors) to be exported")
        import torch

        program = torch.export.export(model.eval(), tuple(example_inputs))
        return _from_exported_program(program, source=type(model).__name__)
    raise ModelError(f"cannot import a {kind}: pass an .onnx/.pt2 path, an ONNX model, a torch.export "
                     "ExportedProgram, an nn.Module with example_inputs, or a Relax IRModule")


# ---------------------------------------------------------------------------------------------- ONNX

def _from_onnx_file(path: str, input_shapes) -> Imported:
    import onnx

    try:
        model = onnx.load(path)
    except Exception as err:  # protobuf raises DecodeError, truncated files raise others
        raise ModelError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    return _from_onnx(model, input_shapes, source=path)


def _from_onnx(model, input_shapes, source: str) -> Imported:
    if not model.graph.node:
        raise ModelError(f"{source}: the ONNX graph has no nodes")
    model, dynamic = _fix_input_shapes(model, input_shapes or {}, source)
    model = _simplify_onnx(model, source)
    model = onnx_nodes.fix_or_refuse(model, source)
    from tvm.relax.frontend.onnx import from_onnx

    def convert(shape_dict=None):
        with _relax_ops_for_onnx():
            return from_onnx(model, shape_dict=shape_dict, keep_params_in_input=False)

    sizes = None
    try:
        if dynamic:
            mod, sizes = symbolic_import(convert, _static_dims(model), dynamic, source)
        else:
            mod = convert()
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(f"{source}: TVM's ONNX importer failed: {err}".splitlines()[0]) from err
    # The graph's own output names ('boxes', 'scores', ultralytics' 'output0'), in the order Relax returns them.
    return _finish(mod, source, [o.name for o in model.graph.output], sizes)


def _static_dims(model) -> dict[str, list]:
    """Each graph input's dimensions: the number, or None where dynamic."""
    initializers = {i.name for i in model.graph.initializer}
    return {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input if i.name not in initializers}


def _fix_input_shapes(model, input_shapes: dict, source: str):
    """Pin the graph inputs' sizes given as numbers (--input), leave dynamic those given as names and those the
    graph leaves dynamic (a dim_param), a dynamic batch excepted: it becomes 1. (model, [DynamicDim])."""
    initializers = {i.name for i in model.graph.initializer}
    unknown = set(input_shapes) - {i.name for i in model.graph.input}
    if unknown:
        names = ", ".join(i.name for i in model.graph.input if i.name not in initializers)
        raise ModelError(f"{source}: no input named {', '.join(sorted(unknown))} (inputs: {names})")
    dynamic = []
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    for index, inp in enumerate(graph_inputs):
        dims = inp.type.tensor_type.shape.dim
        if inp.name in input_shapes:
            shape = input_shapes[inp.name]
            if len(shape) != len(dims):
                raise ModelError(f"{source}: input {inp.name} has rank {len(dims)}, --input gave {shape}")
            for axis, (d, v) in enumerate(zip(dims, shape)):
                v = parse_dim(v)
                d.ClearField("dim_param")
                if isinstance(v, int):
                    d.dim_value = v
                else:
                    d.dim_param = v[0]
                    dynamic.append(DynamicDim(inp.name, axis, v[0], index, given_min=v[1], given_max=v[2]))
            continue
        if any(d.HasField("dim_value") and d.dim_value == 0 for d in dims):
            shown = [d.dim_value for d in dims]
            raise ModelError(f"{source}: input {inp.name} has a zero-sized dimension {shown}; tensors need every "
                             "dimension >= 1")
        if len(dims) > 1 and _dynamic(dims[0]):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
            if not any(_dynamic(d) for d in dims[1:]):
                warnings.warn(f"{source}: input {inp.name} has a dynamic batch; exporting batch 1 (--input "
                              f"{inp.name}:N,{','.join(str(d.dim_value) for d in dims[1:])} for batch N)",
                              DefaultBatchWarning, stacklevel=2)
        for axis, d in enumerate(dims):
            if _dynamic(d):
                name = d.dim_param if d.dim_param and d.dim_param.isidentifier() else "HW"[axis - 2] \
                    if len(dims) == 4 and axis >= 2 else f"d{axis}"
                dynamic.append(DynamicDim(inp.name, axis, name, index))
    check_names(dynamic, source)
    return model, dynamic


def _dynamic(dim) -> bool:
    return not dim.HasField("dim_value") or dim.dim_value <= 0


def _simplify_onnx(model, source: str):
    """Fold constants and propagate static shapes; TVM's importer rejects shape arithmetic left in graphs
    that the legacy torch exporter writes (dynamic pads, Shape->Gather->Concat chains)."""
    try:
        import onnxslim

        model = onnxslim.slim(model)
    except Exception as err:  # a model onnxslim cannot handle may still import as it is
        warnings.warn(f"{source}: onnxslim could not simplify the model ({err}); importing it unsimplified")
        return model
    return static_shapes.fold_after_onnxslim(model)  # the chains onnxslim's 10 rounds leave (Swin's)


@contextlib.contextmanager
def _relax_ops_for_onnx():
    """TVM's ONNX importer lowers Clip and constant Pad straight to TIR kernels (call_tir), which no pattern can
    offload. Import the common cases as the Relax ops instead: Clip with constant bounds (ReLU6) as relax.clip,
    constant-mode Pad of a float tensor as relax.nn.pad. TVM compiles both to the same kernels when they stay.
    Resize and Range keep a symbolic size exact (onnx_symbolic.py)."""
    from tvm.relax.frontend.onnx import onnx_frontend as frontend

    original_map = frontend._get_convert_map
    table = original_map()
    patched = {"Clip": _relax_clip(table["Clip"]), "Pad": _relax_pad(table["Pad"]), **recurrent.converters(),
               **quantized.converters(table), **onnx_symbolic.converters(table)}

    def convert_map():
        return {**original_map(), **patched}

    frontend._get_convert_map = convert_map
    try:
        yield
    finally:
        frontend._get_convert_map = original_map


def _relax_clip(original):
    class Clip(original):
        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            if inputs[0].ty.dtype not in ("float32", "float16", "float64"):
                return super()._impl_v13(bb, inputs, attr, params)
            bounds = [_constant_scalar(b) for b in inputs[1:3]] + [None] * (3 - len(inputs))
            if all(b is not None or inputs[i + 1] is None for i, b in enumerate(bounds[:2])):
                lo = bounds[0] if bounds[0] is not None else float("-inf")
                hi = bounds[1] if bounds[1] is not None else float("inf")
                return relax.op.clip(inputs[0], min(lo, hi), hi)  # ONNX: min > max gives max everywhere
            return super()._impl_v13(bb, inputs, attr, params)

        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            if inputs[0].ty.dtype not in ("float32", "float16", "float64"):
                return super()._impl_v1(bb, inputs, attr, params)
            lo, hi = float(attr.get("min", float("-inf"))), float(attr.get("max", float("inf")))
            return relax.op.clip(inputs[0], min(lo, hi), hi)  # ONNX: min > max gives max everywhere

    return Clip


def _relax_pad(original):
    class Pad(original):
        @classmethod
        def _lower_pad(cls, bb, inputs, attr, params, allowed_modes):
            if attr.get("mode", b"constant") != b"constant" or inputs[0].ty.dtype != "float32":
                return super()._lower_pad(bb, inputs, attr, params, allowed_modes)
            before, after, value = cls._parse_pads_and_axes(inputs, params)
            width = [int(p) for pair in zip(before, after) for p in pair]  # relax interleaves (before, after)
            return relax.op.nn.pad(inputs[0], width, "constant", float(value))

    return Pad


def _constant_scalar(expr):
    value = None if expr is None else scalar_constant(expr)
    return None if value != value else value  # a NaN bound means unbounded: leave it to TVM's converter


# ---------------------------------------------------------------------------------------------- PyTorch

def _is_torch_module(model) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


def _from_torch_file(path: str) -> Imported:
    import torch

    try:
        program = torch.export.load(path)
    except Exception as err:
        raise ModelError(f"{path}: not a torch.export program ({type(err).__name__}: {err})".splitlines()[0]) \
            from None
    return _from_exported_program(program, source=path)


def _from_exported_program(program, source: str) -> Imported:
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(program, keep_params_as_input=False)
    except Exception as err:
        raise ModelError(f"{source}: TVM's torch.export importer failed: {err}".splitlines()[0]) from err
    return _finish(mod, source, _torch_output_names(program))


def _torch_output_names(program) -> list[str] | None:
    """The names a module gave its outputs by returning a dict or a namedtuple ('boxes', 'scores'; nested ones
    joined with '.'), None for plain tensors and tuples: the graph signature's own names are node names ('add_3'),
    which mean nothing to the model's user."""
    try:
        spec = program.call_spec.out_spec
    except AttributeError:
        return None
    named = False

    def leaves(node, prefix):
        nonlocal named
        children = node.children() if node is not None and hasattr(node, "children") else \
            list(getattr(node, "children_specs", []) or [])
        if not children:  # a leaf: one tensor
            return [prefix]
        if node.type is dict:
            keys = [str(k) for k in node.context]
            named = True
        elif hasattr(node.context, "_fields"):  # namedtuple: context is the class
            keys = list(node.context._fields)
            named = True
        else:
            keys = [str(i) for i in range(len(children))]
        if len(keys) != len(children):
            return [None] * node.num_leaves
        return [n for key, child in zip(keys, children) for n in leaves(child, f"{prefix}.{key}" if prefix else key)]

    names = leaves(spec, "")
    return names if named and None not in names else None


# ---------------------------------------------------------------------------------------------- common

def _finish(mod: tvm.IRModule, source: str, output_names: list[str] | None = None, sizes: Sizes | None = None) \
        -> Imported:
    if "main" not in [gv.name_hint for gv in mod.functions]:
        raise ModelError(f"{source}: the IRModule has no 'main' function")
    mod = tvm.transform.Sequential([
        # torch.export keeps batch_norm after each conv: fold it into the conv's weights and bias (one ncnn
        # Convolution, as ONNX exporters do) before what is left decomposes into elementwise arithmetic
        relax.transform.FoldBatchnormToConv2D(),
        relax.transform.DecomposeOpsForInference(),  # batch_norm in eval mode -> arithmetic
        relax.transform.FoldConstant(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.DeadCodeElimination(["main"]),  # torch.export leaves unused batch_norm statistics
    ])(mod)
    main = mod["main"]
    inputs = []
    for i, param in enumerate(main.params):
        spec = _spec(param.name, param.ty)
        if spec is None or (-1 in spec.shape and sizes is None):
            raise ModelError(f"{source}: input {param.name} is not a tensor with a static shape; "
                             "give a static shape (--input NAME:1,3,224,224)")
        spec.dynamic = [d for d in sizes.dims if d.index == i] if sizes else None
        inputs.append(spec)
    outputs = _output_specs(main, source, output_names)
    return Imported(mod, inputs, outputs, source, sizes)


def _spec(name: str, ty) -> TensorSpec | None:
    """The tensor's name, shape (-1 where the size is dynamic) and dtype; None for anything else."""
    shape = static_shape(ty)
    if shape is None and isinstance(ty, relax.TensorType) and ty.shape is not None:
        shape = [int(d) if isinstance(d, tvm.tirx.IntImm) else -1 for d in ty.shape]
    return None if shape is None else TensorSpec(name, shape, str(ty.dtype))


def _output_specs(main, source: str, names: list[str] | None) -> list[TensorSpec]:
    ret = main.ret_ty
    fields = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    names = _output_names(names, len(fields))
    specs = []
    for i, field in enumerate(fields):
        spec = _spec(names[i], field)
        if spec is None:
            raise ModelError(f"{source}: output {i} has no static tensor shape")
        specs.append(spec)
    return specs


def _output_names(names: list[str] | None, count: int) -> list[str]:
    """The model's names when there is one per output, else 'output' (one) or 'output0', 'output1', ...; an empty
    or repeated name gets its index, so that every name is unique and non-empty (they key .npz entries)."""
    default = ["output"] if count == 1 else [f"output{i}" for i in range(count)]
    if names is None or len(names) != count:
        return default
    names = [n if n else default[i] for i, n in enumerate(names)]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            name = f"{name}_{i}"
        names[i] = name
        seen.add(name)
    return names
