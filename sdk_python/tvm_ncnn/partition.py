"""Partition a Relax module: ncnn takes every maximal run of ops it can execute (one region each), TVM keeps
the rest; and the report that says, op by op, where each runs and why not ncnn."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from .ops import ncnn_patterns, why_not
from .relax_util import calls_in, region_ops, shape_of
from .relax_rewrites import simplify_for_ncnn
from .unit_batch import restore_unit_batch


def partition(mod: tvm.IRModule) -> tvm.IRModule:
    mod = _isolate_extern_calls(restore_unit_batch(simplify_for_ncnn(mod)))
    mod = relax.transform.FuseOpsByPattern(ncnn_patterns(), bind_constants=True, annotate_codegen=False)(mod)
    mod = relax.transform.MergeCompositeFunctions()(mod)
    return _name_regions(mod)


@relax.expr_functor.mutator
class _ExternCalls(relax.PyExprMutator):
    """Each call of an external function by name (call_dps_packed("f", ...)) moves into a small Relax function
    of its own: TVM's MergeCompositeFunctions cannot visit the ExternFunc such a call takes as an argument."""

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if not any(isinstance(a, relax.ExternFunc) for a in call.args):
            return call
        free = list(relax.analysis.free_vars(call))
        params = {v: relax.Var(v.name, v.ty) for v in free}

        def renamed(arg):
            return relax.Tuple([renamed(f) for f in arg.fields]) if isinstance(arg, relax.Tuple) else params.get(arg, arg)

        body = relax.Call(call.op, [renamed(a) for a in call.args], call.attrs, call.ty_args)
        extern = next(a for a in call.args if isinstance(a, relax.ExternFunc))
        name = f"call_{extern.global_symbol.replace('.', '_')}"  # the builder makes it unique
        func = relax.Function(list(params.values()), body, call.ty, is_pure=True).with_attr("global_symbol", name)
        return relax.Call(self.builder_.add_func(func, name), free)


def _isolate_extern_calls(mod: tvm.IRModule) -> tvm.IRModule:
    mutator = _ExternCalls(mod)
    main = mutator.visit_expr(mod["main"])
    mod = mutator.builder_.get()
    mod["main"] = main
    return mod


def _name_regions(mod: tvm.IRModule) -> tvm.IRModule:
    """Short, ordered symbols (ncnn_region_0, ...) in place of the op-list names TVM generates."""
    for index, gv in enumerate(region_vars(mod)):
        mod.update_func(gv, mod[gv].with_attr("global_symbol", f"ncnn_region_{index}"))
    return mod


def region_vars(mod: tvm.IRModule) -> list:
    """The ncnn regions in the order main calls them."""
    order = []
    for call in calls_in(mod["main"]):
        if isinstance(call.op, tvm.ir.GlobalVar) and _is_region(mod[call.op]) and call.op not in order:
            order.append(call.op)
    return order


def _is_region(func) -> bool:
    return isinstance(func, relax.Function) and func.attrs is not None and "Codegen" in func.attrs \
        and str(func.attrs["Codegen"]) == "ncnn"


# ---------------------------------------------------------------------------------------------- report

# What makes export warn that TVM keeps real work: this share of the FLOPs, or any op on a tensor this large
WARN_FLOPS_SHARE = 0.01
WARN_ELEMENTS = 4096


@dataclass
class OpPlacement:
    op: str
    shape: list[int] | None
    place: str          # "ncnn:<region>" or "tvm"
    reason: str         # why not ncnn; empty when it runs in ncnn
    flops: int


@dataclass
class PartitionReport:
    ops: list[OpPlacement] = field(default_factory=list)
    regions: int = 0
    batch_loop: int = 0  # main runs these ops once per image of a batch this large (batch.py); 0: at once

    @property
    def ncnn_flops_share(self) -> float:
        total = sum(o.flops for o in self.ops)
        return sum(o.flops for o in self.ops if o.place != "tvm") / total if total else 0.0

    @property
    def ncnn_ops(self) -> int:
        return sum(o.place != "tvm" for o in self.ops)

    def tvm_warning(self) -> str | None:
        """One line when the part left to TVM may cost real time, naming its ops; else None. FLOPs alone hide
        it: elementwise ops count one FLOP an element, yet each one in TVM is a serial loop over a whole tensor
        and splits the ncnn region around it (a ConvNeXt with 99.8% of its FLOPs in ncnn ran 2.4x slower)."""
        left = [o for o in self.ops if o.place == "tvm" and o.op.startswith("relax.")]
        heavy = [o for o in left if o.shape and int(np.prod(o.shape)) >= WARN_ELEMENTS]
        share = 1.0 - self.ncnn_flops_share
        if share < WARN_FLOPS_SHARE and not heavy:
            return None
        kinds: dict[str, int] = {}
        for o in heavy or left:
            kinds[o.op.removeprefix("relax.")] = kinds.get(o.op.removeprefix("relax."), 0) + 1
        named = ", ".join(f"{n}x {op}" for op, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
        return (f"{len(left)} ops stay in TVM ({100 * share:.1f}% of FLOPs, {self.regions} ncnn regions): {named}; "
                "`tvm-ncnn inspect` says why")

    def to_json(self) -> dict:
        return {"regions": self.regions, "ncnn_flops_share": self.ncnn_flops_share, "batch_loop": self.batch_loop,
                "ops": [o.__dict__ for o in self.ops]}

    @staticmethod
    def from_json(data: dict) -> "PartitionReport":
        return PartitionReport([OpPlacement(**o) for o in data.get("ops", [])], int(data.get("regions", 0)),
                               int(data.get("batch_loop", 0)))

    def table(self) -> str:
        rows = [("#", "op", "output shape", "runs in", "why not ncnn")]
        for i, o in enumerate(self.ops):
            shape = "x".join(str(d) for d in o.shape) if o.shape else "-"
            rows.append((str(i), o.op.removeprefix("relax."), shape, o.place, o.reason))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
        lines.append(f"{self.ncnn_ops}/{len(self.ops)} ops in {self.regions} ncnn region(s); "
                     f"{100 * self.ncnn_flops_share:.1f}% of FLOPs in ncnn"
                     + (f"; run once per image of the batch of {self.batch_loop}" if self.batch_loop else ""))
        return "\n".join(line.rstrip() for line in lines)


def report(partitioned: tvm.IRModule) -> PartitionReport:
    """Placement of every op of main, regions expanded into the ops they hold."""
    regions = {gv: i for i, gv in enumerate(region_vars(partitioned))}
    result = PartitionReport(regions=len(regions))
    for call in calls_in(partitioned["main"]):
        if isinstance(call.op, tvm.ir.GlobalVar) and call.op in regions:
            region = partitioned[call.op]
            for inner in region_ops(region):
                result.ops.append(_placement(inner, f"ncnn:{regions[call.op]}", ""))
        elif isinstance(call.op, tvm.ir.Op):
            reason = why_not(call) or "supported alone, but no ncnn pattern took it here"
            result.ops.append(_placement(call, "tvm", reason))
        else:
            result.ops.append(OpPlacement(str(getattr(call.op, "name_hint", call.op)), shape_of(call),
                                          "tvm", "call into a TVM function", 0))
    return result


def _placement(call, place: str, reason: str) -> OpPlacement:
    return OpPlacement(call.op.name, shape_of(call), place, reason, flops(call))


def flops(call) -> int:
    """Multiply-adds count twice; elementwise ops count one per output element."""
    out = shape_of(call)
    if out is None:
        return 0
    elems = int(np.prod(out))
    name = call.op.name
    if name == "relax.nn.conv2d":
        w = shape_of(call.args[1])
        return 2 * elems * w[1] * w[2] * w[3]
    if name == "relax.matmul":
        k = shape_of(call.args[0])[-1]
        return 2 * elems * k
    if name in ("relax.nn.max_pool2d", "relax.nn.avg_pool2d"):
        return elems * int(np.prod([int(k) for k in call.attrs.pool_size]))
    if name in ("relax.mean", "relax.nn.adaptive_avg_pool2d"):
        return int(np.prod(shape_of(call.args[0])))
    if name == "relax.reshape":
        return 0
    return elems
