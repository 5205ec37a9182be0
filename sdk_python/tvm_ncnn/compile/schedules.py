"""Default CPU schedules for the TIR functions left to TVM: no tuning, applied at export for the target.

tvm.compile's default Relax pipeline for llvm neither fuses nor schedules: every op becomes its own serial
loop nest (conv2d, then add, then relu, each through memory). build() compiles with TVM's CPU pipeline instead
(relax.backend.cpu_generic: legalize, FuseOps, FuseTIR -- so elementwise epilogues join their conv/matmul) and
schedules every PrimFunc before the Relax VM lowering, trying these rules in order and keeping the first that
applies:

  gemv         TVM's dlight CPU GEMV rule (matrix x vector)
  contraction  one big reduction block (conv2d, matmul, pooling): a register tile of `REG_TILE` rows by one
               vector of the output's last axis accumulates in a local buffer across the whole reduction, the
               elementwise epilogue is applied on the way out, the tiles run in parallel
  reduction    TVM's dlight CPU Reduction rule (softmax, layer norm: reductions followed by elementwise)
  spatial      anything else: elementwise producers inlined, every remaining block's outer spatial loops fused
               and parallel, its innermost spatial loop vectorized

Legalization maps float32 erf/exp/tanh/sigmoid to TVM's polynomial versions, which vectorize (_fast_math).
Parallel loops run on TVM's thread pool, which deploy_app and tvm_ncnn.load size to the model's thread count
(TVM_NUM_THREADS, runtime/src/threads/thread_policy.cc), like ncnn's. A rule that raises leaves the function
unscheduled, and if the scheduled module fails to build, build() compiles the unscheduled one: a schedule never
costs a model its export. The rule each function got is in the returned report (ExportResult.schedules).
TVM_NCNN_SCHEDULES=0 in the environment compiles as before (no fusion, no schedules), to measure the difference.
"""

from __future__ import annotations

import math
import os

import tvm
from tvm import relax, s_tir, tirx, topi
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic  # its stages; the package exports only some
from tvm.s_tir import dlight
from tvm.target.codegen import llvm_get_vector_width

from . import tir_loops
from .tuning_db import apply_database

ENV = "TVM_NCNN_SCHEDULES"
# Accumulator rows of the contraction tile: 8 vectors in registers plus the operands fit in AVX2's 16 and
# NEON's / AVX-512's 32 vector registers.
REG_TILE = 8
# A reduction block is a contraction worth tiling from this many output elements x reduction steps.
MIN_CONTRACTION_WORK = 4096


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def build(mod: tvm.IRModule, target: tvm.target.Target, tuning: str | None = None):
    """tvm.compile `mod` for `target` with fusion and default schedules: (executable, {function: rule}).
    tuning: a `tvm-ncnn tune` directory (tuning_db.py): the functions its database has take their tuned schedule."""
    if not enabled():
        return tvm.compile(mod, target=target), {}
    report: dict[str, str] = {}
    try:
        return tvm.compile(mod, target=target, relax_pipeline=pipeline(target, report, tuning)), report
    except Exception as err:  # noqa: BLE001 -- whatever broke, the unscheduled module is what TVM always built
        report = {"(module)": "unscheduled: the scheduled build failed: " + _first_line(err)}
        return tvm.compile(mod, target=target), report


def pipeline(target: tvm.target.Target, report: dict | None = None, tuning: str | None = None) -> tvm.transform.Pass:
    """TVM's CPU Relax pipeline (cpu_generic) with the schedules between legalization and lowering."""

    @tvm.transform.module_pass(opt_level=0, name="TvmNcnnCpuPipeline")
    def _pipeline(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        with target:
            mod = legalized(mod, target)
            if tuning is not None:  # tuned functions come marked scheduled; the rest get the rules below
                mod = apply_database(mod, tuning, report)
            mod = schedule_module(mod, target, report)
            mod = tvm.transform.Sequential(cpu_generic.dataflow_lower_passes(target)
                                           + cpu_generic.finalize_passes(target))(mod)
        return mod

    return _pipeline


def legalized(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """cpu_generic's dispatch and legalization stages (fused TIR functions, not yet scheduled), with float32
    erf/exp/tanh/sigmoid legalized to polynomials: what the rules schedule and what tune/search.py tunes."""
    with target:
        legalize = cpu_generic.legalize_passes(target)
        if legalize and legalize[0].info.name == "LegalizeOps":
            legalize = [relax.transform.LegalizeOps(_fast_math())] + legalize[1:]
        return tvm.transform.Sequential(cpu_generic.library_dispatch_passes(target) + legalize)(mod)


def _fast_math() -> dict:
    """Legalizations of float32 erf, exp, tanh and sigmoid to TVM's polynomial versions (topi.fast_*): LLVM has
    no vector erff/expf/tanhf, so in a vectorized loop libm is called lane by lane (ConvNeXt's GELU took 2/3 of
    its 1x1 conv's time); the polynomials vectorize. Measured over [-12, 12] against exact values: erf 3.3e-7,
    exp 1.0e-7, tanh 2.7e-7 relative error (float32 libm: 0.6-1.9e-7). Other types keep TVM's legalization."""

    def sigmoid(x):
        one = tvm.tirx.const(1.0, "float32")
        return topi.divide(one, topi.add(one, topi.fast_exp(topi.negative(x))))

    def rule(op_name: str, fast):
        default = tvm.ir.Op.get(op_name).get_attr("FLegalize")

        def legalize(bb, call):
            if getattr(call.args[0].ty, "dtype", None) != "float32":
                return default(bb, call)
            return bb.call_te(fast, call.args[0], primfunc_name_hint=op_name.split(".")[-1])

        return legalize

    return {name: rule(name, fast) for name, fast in [("relax.erf", topi.fast_erf), ("relax.exp", topi.fast_exp),
                                                     ("relax.tanh", topi.fast_tanh), ("relax.sigmoid", sigmoid)]}


def schedule_module(mod: tvm.IRModule, target: tvm.target.Target, report: dict | None = None) -> tvm.IRModule:
    """Schedule every PrimFunc of `mod`; report[name] says which rule did, or why none did."""
    report = {} if report is None else report
    vector_bits = llvm_get_vector_width(target)
    vector_bits = vector_bits if vector_bits > 0 else 128
    updates = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if func.attrs is not None and func.attrs.get("tirx.is_scheduled"):
            report.setdefault(gvar.name_hint, "already scheduled")  # tuning_db.apply_database says "tuned"
            continue
        rule, scheduled = schedule_function(func, target, vector_bits)
        report[gvar.name_hint] = rule
        if scheduled is not None:
            updates[gvar] = scheduled
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


def schedule_function(func: tirx.PrimFunc, target, vector_bits: int) -> tuple[str, tirx.PrimFunc | None]:
    """(rule name, scheduled function), or ("unscheduled: why", None)."""
    failures = []
    for name, rule in RULES:
        try:
            sch = rule(func, target, vector_bits)
        except Exception as err:  # noqa: BLE001 -- a rule that cannot apply leaves the function as it was
            failures.append(f"{name}: {_first_line(err)}")
            continue
        if isinstance(sch, list):
            sch = sch[0] if sch else None
        if sch is not None:
            return name, sch.mod["main"].with_attr("tirx.is_scheduled", True)
    return "unscheduled" + (": " + "; ".join(failures) if failures else ": no rule applies"), None


def _dlight(rule):
    return lambda func, target, _bits: rule.apply(func, target, False)


# ---- helpers ----------------------------------------------------------------------------------------------

def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:200]


# ---- rules ------------------------------------------------------------------------------------------------

def spatial_rule(func: tirx.PrimFunc, _target, vector_bits: int):
    sch = s_tir.Schedule(func)
    blocks = tir_loops.root_blocks(sch)
    if not blocks:
        return None  # no blocks: an extern call (sort, top-k) or hand-written code, nothing to schedule
    for block in blocks[:-1]:
        # Inline elementwise producers into their consumers: one pass over memory instead of one per op.
        # compute_inline refuses reductions and blocks that write the function's outputs; a refusal leaves
        # the schedule unchanged (checked before anything is rewritten), so try each on a copy anyway.
        trial = sch.copy()
        try:
            trial.compute_inline(block)
        except Exception:  # noqa: BLE001
            continue
        sch = trial
    changed = False
    for block in tir_loops.root_blocks(sch):
        trial = sch.copy()
        try:
            if tir_loops.parallel_vectorize(trial, block, vector_bits):
                sch, changed = trial, True
        except Exception:  # noqa: BLE001 -- this block stays serial; the others still get their schedule
            continue
    return sch if changed else None


def contraction_rule(func: tirx.PrimFunc, _target, vector_bits: int):
    sch = s_tir.Schedule(func)
    blocks = tir_loops.root_blocks(sch)
    reductions = [b for b in blocks if "R" in tir_loops.loop_kinds(sch, b, sch.get_loops(b))]
    if len(reductions) != 1:
        return None
    block = reductions[0]
    loops = sch.get_loops(block)
    kinds = "".join(tir_loops.loop_kinds(sch, block, loops))
    spatial = len(kinds) - len(kinds.lstrip("S"))
    extents = [tir_loops.static_extent(sch, loop) for loop in loops]
    # The legalized form: spatial loops, then reduction loops, static extents; a last spatial axis to vectorize.
    if spatial < 2 or set(kinds[spatial:]) != {"R"} or None in extents:
        return None
    if math.prod(extents) < MIN_CONTRACTION_WORK:
        return None
    lanes = tir_loops.vector_lanes(sch, block, vector_bits)
    vec = tir_loops.vector_factor(extents[spatial - 1], lanes)
    padded = False
    if vec is None and extents[spatial - 1] > lanes:
        # A matmul with an odd width (N = 17): computed padded to whole vectors (pad_einsum adds the copies
        # in and out), else it would run scalar. A conv is not an einsum: pad_einsum refuses it.
        trial = sch.copy()
        try:
            trial.pad_einsum(block, [1] * (spatial - 1) + [lanes] + [1] * (len(loops) - spatial))
            sch, padded, vec = trial, True, lanes
            loops = sch.get_loops(block)
            extents = [tir_loops.static_extent(sch, loop) for loop in loops]
        except Exception:  # noqa: BLE001
            pass
    if vec is None:
        # A conv row no vector divides (14 or 7 wide with NEON's 4 lanes): narrower vectors, down to one lane,
        # still register-tiled and parallel (dlight's Reduction rule, next in line, recomputes a conv's padding
        # for every output)
        vec = max(d for d in range(1, lanes + 1) if extents[spatial - 1] % d == 0)
    # Phase-splitting costs a strided pass over the input: worth it where each input element feeds many
    # multiply-adds (a stem conv: 3x7x7), not in a depthwise 3x3 (9).
    strided = _strided_reads(sch, block, loops[spatial - 1]) if math.prod(extents[spatial:]) >= 16 else []
    for index in strided:
        trial = sch.copy()
        try:
            _split_phases(trial, block, index)
        except Exception:  # noqa: BLE001 -- the read stays strided: gathered lane by lane, but right
            continue
        sch = trial
    # The register tile's other axis: the largest other spatial axis (conv: output channels, matmul: rows).
    row_axis = max(range(spatial - 1), key=lambda i: extents[i])
    # as many rows as keep REG_TILE vector accumulators (a 17-wide row takes two vectors: half the rows)
    max_rows = max(REG_TILE // -(-vec // lanes), 1)
    rows = next((f for f in range(max_rows, 0, -1) if extents[row_axis] % f == 0), 1)

    # Accumulate in a local buffer (registers, once the tile is unrolled and vectorized), written back once.
    writeback = sch.cache_write(block, 0, "local")
    # Elementwise consumers (bias, residual add, activation) fold into the write-back. Not after pad_einsum:
    # folding its unpadding copy in drops the copy's bound, and the write-back would store past the output.
    while not padded:
        consumers = sch.get_consumers(writeback)
        if len(consumers) != 1:
            break
        trial = sch.copy()
        try:
            trial.reverse_compute_inline(consumers[0])
        except Exception:  # noqa: BLE001
            break
        sch = trial

    row_outer, row_inner = sch.split(loops[row_axis], factors=[None, rows])
    if vec == extents[spatial - 1]:
        col_outer, col_inner = None, loops[spatial - 1]
    else:
        col_outer, col_inner = sch.split(loops[spatial - 1], factors=[None, vec])
    outer = [row_outer if i == row_axis else loops[i] for i in range(spatial - 1)]
    if col_outer is not None:
        outer.append(col_outer)
    sch.reorder(*outer, *loops[spatial:], row_inner, col_inner)
    tile = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    sch.reverse_compute_at(writeback, tile)
    # parallel and vectorize while the block is still one reduction block: after decompose_reduction its
    # update part is neither a complete nor a reduction block, which both primitives refuse
    sch.unroll(row_inner)
    sch.parallel(tile)
    if vec > 1:
        sch.vectorize(col_inner)
        sch.vectorize(sch.get_loops(writeback)[-1])
    init = sch.decompose_reduction(block, loops[spatial])
    init_inner = sch.get_loops(init)[-1]
    if vec > 1 and sch.get(init_inner).kind != tirx.ForKind.VECTORIZED:
        sch.vectorize(init_inner)
    # Producers (conv's padding, a transpose) stay materialized: in parallel and vectorized themselves.
    tiled = {sch.get(b).name_hint for b in (block, init, writeback)}
    for other in tir_loops.root_blocks(sch):
        if sch.get(other).name_hint in tiled:
            continue
        trial = sch.copy()
        try:
            if tir_loops.parallel_vectorize(trial, other, vector_bits):
                sch = trial
        except Exception:  # noqa: BLE001
            continue
    return sch


def _strided_reads(sch, block, loop) -> list[tuple[int, int]]:
    """(read index, stride) of the block's reads whose last index steps by stride > 1 with `loop` (a strided
    conv's input): a vector along `loop` would be assembled lane by lane from them."""
    from tvm.sym.pattern import detect_linear_equation

    var = sch.get(loop).loop_var
    block_stmt = sch.get(block)
    bound = [iv.var for iv, value in zip(block_stmt.iter_vars, tir_loops.block_realize(sch, block).iter_values)
             if value.same_as(var)]
    if len(bound) != 1:
        return []
    found = []
    for index, region in enumerate(block_stmt.reads):
        coeffs = detect_linear_equation(region.region[-1].min, [bound[0]])
        if len(coeffs) == 2 and isinstance(coeffs[0], tirx.IntImm) and int(coeffs[0]) > 1:
            found.append((index, int(coeffs[0])))
    return found


def _split_phases(sch, block, read: tuple[int, int]) -> None:
    """Store a stride-s read's last axis as (w % s, w // s): the vector of outputs x..x+n then reads one
    contiguous run (phase r % s, from x + r // s). A function argument is first copied (cache_read): its layout
    is the caller's."""
    index, stride = read
    buffer = sch.get(block).reads[index].source
    root = sch.get(sch.get_sblock(sch.mod["main"].body.block.name_hint))
    if not any(buffer.same_as(b) for b in root.alloc_buffers):
        sch.cache_read(block, index, "global")
    width = int(sch.get(block).reads[index].source.shape[-1])
    if width % stride:
        raise ValueError(f"width {width} is not a multiple of the stride {stride}")
    sch.transform_layout(block, ("read", index), lambda *axes: (*axes[:-1], axes[-1] % stride, axes[-1] // stride))


RULES = [
    ("gemv", _dlight(dlight.cpu.GEMV())),
    # before dlight's Reduction, which takes a conv2d for a softmax-like chain and recomputes its padding
    # for every output element
    ("contraction", contraction_rule),
    ("reduction", _dlight(dlight.cpu.Reduction())),
    ("spatial", spatial_rule),
]
