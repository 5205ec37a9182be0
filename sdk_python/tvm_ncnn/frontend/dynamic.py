"""Dynamic input sizes: an input dimension left symbolic (an ONNX dim_param, or a letter in --input) stays a
variable through import, partition and compile, so that one model.so runs every size the graph accepts.

The graph decides which sizes those are. A detector concatenates a feature map upsampled from stride 32 with one at
stride 16: the two agree only when the side is a multiple of 32. Export finds that rule by importing the model with
each side written as `m * q` for m = 1, 2, 4, ... and keeping the first m for which TVM knows every tensor's shape
(Relax proves (32q - 1) // 32 + 1 == q, but not (H - 1) // 32 * 2 + 2 == (H - 1) // 16 + 1), and where the model
imported statically at two sizes agrees. The smallest size is the smallest q that gives every tensor a positive
shape; the largest is the user's bound or MAX_SIDE. The runtime refuses a size outside the rule in one line
(runtime/FORMAT.md "Dynamic inputs").

The quotient is the expression q = H // m of main's plain variable H (what the VM binds from the input's shape):
main views its input as [.., m * (H // m), ..] for the rest of the graph, a reshape while partitioning and a shape
check (match_cast) in the build (as_shape_checks)."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import sys
from dataclasses import dataclass, field, replace

import tvm
from tvm import relax, tirx
from tvm.sym import Analyzer

from ..errors import ModelError

MULTIPLES = (1, 2, 4, 8, 16, 32, 64, 128)  # the size rules tried, smallest first
VIEW_SUFFIX = "_by_rule"  # the variable main views its input through (as_shape_checks)
MAX_SIDE = 4096  # the default largest size of a dynamic dimension (--input NAME:1,3,H=32..8192,W for more)
_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:=(\d*)\.\.(\d*))?$")


@dataclass
class DynamicDim:
    """One symbolic dimension of an input and the sizes it takes: a multiple of `multiple`, from `min` to `max`."""
    input: str
    axis: int
    name: str
    index: int = 0  # the input's position among main's parameters
    multiple: int = 1
    min: int = 1
    max: int = MAX_SIDE
    given_min: int | None = None  # the user's bounds (--input H=32..1280), kept inside what the graph takes
    given_max: int | None = None

    def to_json(self) -> dict:
        return {"axis": self.axis, "name": self.name, "multiple": self.multiple, "min": self.min, "max": self.max}

    def rule_text(self) -> str:
        step = f"a multiple of {self.multiple}, " if self.multiple > 1 else ""
        return f"{self.name}: {step}{self.min}..{self.max}"


def parse_dim(token) -> int | tuple[str, int | None, int | None]:
    """A dimension as --input or input_shapes gives it: a number pins it; a name ('H') leaves it dynamic,
    optionally bounded ('H=32..1280')."""
    if isinstance(token, int):
        return token
    text = str(token).strip()
    if text.isdigit():
        return int(text)
    found = _SPEC.match(text)
    if not found:
        raise ModelError(f"'{token}' is not a dimension: a number, a name (H) or a bounded name (H=32..1280)")
    name, lo, hi = found.group(1), found.group(2), found.group(3)
    lo = int(lo) if lo else None
    hi = int(hi) if hi else None
    if (lo is not None and lo < 1) or (hi is not None and lo is not None and hi < lo):
        raise ModelError(f"'{token}': the bounds must be 1 <= min <= max")
    return name, lo, hi


def check_names(dynamic: list[DynamicDim], source: str) -> None:
    """Each dynamic dimension of an input has its own name (H, W; not H, H)."""
    seen = set()
    for d in dynamic:
        if (d.input, d.name) in seen:
            raise ModelError(f"{source}: input {d.input} names two dimensions {d.name}; give each its own name")
        seen.add((d.input, d.name))


# ---------------------------------------------------------------------------------------------- the size rule

@dataclass
class Sizes:
    """The dynamic dimensions of a model and the variables Relax carries for them: `param[d]` the one main's
    parameter binds (H), `quotient[d]` the expression the graph's shapes are written in (H // multiple)."""
    dims: list[DynamicDim]
    param: dict = field(default_factory=dict)
    quotient: dict = field(default_factory=dict)

    def probes(self) -> list[dict]:
        """Two sizes for every dimension, different from each other and between dimensions: partition converts
        each op at both and keeps in ncnn only what converts the same way (ncnn computes shapes as it runs,
        but a constant in a layer's params freezes a size)."""
        found = []
        for k in (0, 1):
            values = {}
            for i, d in enumerate(self.dims):
                q = max(d.min // d.multiple, min(d.max // d.multiple, _probe_quotient(d, i, k)))
                values[self.param[id(d)]] = q * d.multiple
            found.append(values)
        return found


def _probe_quotient(d: DynamicDim, index: int, k: int) -> int:
    base = max(1, 160 // d.multiple) + 3 * index
    return base + k * (2 + index)


def symbolic_import(convert, shapes: dict[str, list], dims: list[DynamicDim], source: str) -> tuple:
    """(module, Sizes): `convert(shape_dict)` imports the model; each dynamic dimension is tried as m * q for the
    multiples in order, and the first m that leaves no tensor of unknown shape wins."""
    failure = ""
    for m in MULTIPLES:
        sizes = Sizes([replace(d, multiple=m) for d in dims])
        shape_dict = {name: list(shape) for name, shape in shapes.items()}
        for d in sizes.dims:
            # the graph sees m * (H // m): equal to H for every size the rule admits, and a form TVM can follow
            sizes.param[id(d)] = tirx.Var(d.name, "int64")
            sizes.quotient[id(d)] = tirx.floordiv(sizes.param[id(d)], m) if m > 1 else sizes.param[id(d)]
            shape_dict[d.input][d.axis] = sizes.quotient[id(d)] * m if m > 1 else sizes.param[id(d)]
        mod, failure = _attempt(convert, shape_dict)
        if mod is None:  # a size rule the graph does not take often fails inside TVM
            continue
        if not _shapes_known(mod["main"], sizes):
            failure = "some tensor's shape depends on the size in a way TVM cannot follow"
            continue
        _find_bounds(mod["main"], sizes, source)
        failure = _static_mismatch(convert, shapes, sizes, mod["main"])
        if failure:
            continue
        return _bind_params(mod, sizes), sizes
    names = ", ".join(sorted({f"{d.input}:{d.name}" for d in dims}))
    failure = failure if len(failure) <= 160 else failure[:157] + "..."
    first = dims[0].input  # its shape with the dynamic sizes named: the user replaces the fixed ones by numbers
    spec = list(shapes[first])
    for d in dims:
        if d.input == first:
            spec[d.axis] = d.name
    raise ModelError(f"{source}: no size rule makes dimension(s) {names} dynamic (tried multiples up to "
                     f"{MULTIPLES[-1]}; {failure}): give a number for each size that must be fixed "
                     f"(--input {first}:{','.join(map(str, spec))}, a name where the size may vary)")


def _static_mismatch(convert, shapes: dict, sizes: Sizes, main: relax.Function) -> str:
    """"" when the model imported at each probe size, static, has the output shapes the symbolic import gives there;
    else what differs. Where TVM cannot prove two sizes equal it may also assume them (a matmul's reduction over a
    flattened feature map, against a Linear layer's fixed width): at a static size its importer checks them."""
    symbolic = _tensor_dims(main.body.body.ty)
    for values in sizes.probes():
        shape_dict = {name: list(shape) for name, shape in shapes.items()}
        for d in sizes.dims:
            shape_dict[d.input][d.axis] = values[sizes.param[id(d)]]
        static, failure = _attempt(convert, shape_dict)
        if static is None:  # the static import refuses the size: the rule is wrong
            return failure
        static = static["main"]
        expected = _evaluate(symbolic, values)
        if expected is None or _evaluate(_tensor_dims(static.body.body.ty), {}) != expected:
            return f"at {shape_dict} the outputs' shapes differ from what the symbolic import gives"
    return ""


def _tensor_dims(ty) -> list:
    if isinstance(ty, relax.TensorType):
        return list(ty.shape) if ty.shape is not None else [None]
    if isinstance(ty, relax.TupleType):
        return [d for f in ty.fields for d in _tensor_dims(f)]
    return []


def _all_dims(func: relax.Function) -> list:
    dims = [d for p in func.params for d in _tensor_dims(p.ty)]
    for block in func.body.blocks:
        for binding in block.bindings:
            dims += _tensor_dims(binding.var.ty)
    return dims + _tensor_dims(func.body.body.ty)


def _evaluate(dims: list, values: dict) -> list[int] | None:
    """Every dimension at the given sizes, or None when one is unknown or depends on another variable."""
    analyzer = Analyzer()
    for var, value in values.items():
        analyzer.bind(var, tirx.IntImm("int64", value))
    out = []
    for d in dims:
        if d is None:
            return None
        d = analyzer.simplify(d) if not isinstance(d, tirx.IntImm) else d
        if not isinstance(d, tirx.IntImm):
            return None
        out.append(int(d))
    return out


def _shapes_known(func: relax.Function, sizes: Sizes) -> bool:
    return _evaluate(_all_dims(func), {sizes.param[id(d)]: 7 * d.multiple for d in sizes.dims}) is not None


def _find_bounds(func: relax.Function, sizes: Sizes, source: str) -> None:
    """Each dimension's smallest size (every tensor keeps a positive shape, the others at a middling size), and
    the largest (the user's bound or MAX_SIDE), as multiples of the rule."""
    dims = _all_dims(func)
    for d in sizes.dims:
        m = d.multiple
        others = {sizes.param[id(o)]: max(1, 256 // o.multiple) * o.multiple for o in sizes.dims if o is not d}
        lowest = next((q for q in range(1, 257)
                       if all(v >= 1 for v in _evaluate(dims, {**others, sizes.param[id(d)]: q * m}))), None)
        if lowest is None:
            raise ModelError(f"{source}: input {d.input} dimension {d.name}: no size up to {256 * m} gives every "
                             "tensor a positive shape")
        d.min = lowest * m
        if d.given_min is not None:
            d.min = max(d.min, -(-d.given_min // m) * m)
        top = d.given_max if d.given_max is not None else MAX_SIDE
        d.max = max(d.min, top // m * m)
        if d.given_max is not None and d.given_max < d.min:
            raise ModelError(f"{source}: input {d.input}: {d.name}={d.given_min}..{d.given_max} leaves no size the "
                             f"graph takes ({d.rule_text()})")


def _bind_params(mod: tvm.IRModule, sizes: Sizes) -> tvm.IRModule:
    """Where the rule is a multiple, main's parameter gets the plain variable (H) the VM binds from the input's
    shape, and main first views the input as the [.., m * (H // m), ..] the graph was imported with: the same
    tensor, since the runtime admits only multiples."""
    main = mod["main"]
    params, prefix = [], []
    for index, param in enumerate(main.params):
        mine = [d for d in sizes.dims if d.index == index and d.multiple > 1]
        if not mine:
            params.append(param)
            continue
        shape = list(param.ty.shape)
        for d in mine:
            shape[d.axis] = sizes.param[id(d)]
        outer = relax.Var(param.name, relax.TensorType(shape, param.ty.dtype))
        params.append(outer)
        viewed = relax.DataflowVar(param.name + VIEW_SUFFIX, param.ty)
        prefix.append(relax.VarBinding(viewed, relax.op.reshape(outer, relax.ShapeExpr(list(param.ty.shape)))))
        prefix.append(relax.VarBinding(param, viewed))
    if not prefix:
        return mod
    blocks = list(main.body.blocks)
    if blocks and isinstance(blocks[0], relax.DataflowBlock):  # in a dataflow block the reshape is a view
        blocks[0] = relax.DataflowBlock(prefix + list(blocks[0].bindings))
    else:
        blocks.insert(0, relax.DataflowBlock(prefix))
    body = relax.SeqExpr(blocks, main.body.body)
    mod["main"] = relax.Function(params, body, main.body.body.ty, main.is_pure, main.attrs)
    return relax.transform.Normalize()(mod)


def as_shape_checks(mod: tvm.IRModule) -> tvm.IRModule:
    """The input views become shape checks (match_cast) for the build: a reshape between sizes TVM cannot prove
    equal (H and 32 * (H // 32)) is a copy of the whole input on every run; the runtime admits only sizes where
    they are. Partitioning cannot take match_cast, hence the reshape until here."""
    main = mod["main"]
    if not any(b.var.name.endswith(VIEW_SUFFIX) for block in main.body.blocks for b in block.bindings):
        return mod
    blocks = []
    for block in main.body.blocks:
        bindings = [relax.MatchCast(b.var, b.value.args[0], b.var.ty)
                    if b.var.name.endswith(VIEW_SUFFIX) and isinstance(b.value, relax.Call) else b
                    for b in block.bindings]
        blocks.append(type(block)(bindings))
    mod["main"] = relax.Function(main.params, relax.SeqExpr(blocks, main.body.body), main.ret_ty, main.is_pure,
                                 main.attrs)
    return mod


def _attempt(convert, shape_dict: dict) -> tuple:
    """(module, "") or (None, the error's last line): TVM prints each failed conversion, and its BlockBuilder
    warns when destroyed, which happens once the exception is gone -- inside _quiet here."""
    with _quiet():
        try:
            return convert(shape_dict), ""
        except Exception as err:  # noqa: BLE001 -- any failure of a try is an answer
            text = str(err).strip()
            failure = text.splitlines()[-1] if text else type(err).__name__
    return None, failure


@contextlib.contextmanager
def _quiet():
    """Standard output and error to /dev/null, at the file descriptors (TVM's C++ logs there too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with contextlib.redirect_stdout(io.StringIO()):  # TVM's importer prints with print()
            yield
    finally:
        gc.collect()  # a failed import's BlockBuilder warns when it is destroyed
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
