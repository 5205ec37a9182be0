"""Loop facts and the loop transformations the default schedules (schedules.py) share: which loops around a
block are spatial or reduction, how many vector lanes its output type takes, which vector width divides a loop,
and the parallel + vectorized form every rule ends with for the blocks it does not tile itself."""

from __future__ import annotations

import math

import tvm
from tvm import tirx

# Below this many loop iterations a parallel launch (a few microseconds on TVM's pool) costs more than it saves.
MIN_PARALLEL_WORK = 8192


def static_extent(sch, loop):
    extent = sch.get(loop).extent
    return int(extent) if isinstance(extent, tirx.IntImm) else None


def root_blocks(sch) -> list:
    root = sch.get_sblock(sch.mod["main"].body.block.name_hint)
    return list(sch.get_child_blocks(root))


block_realize = tvm.get_global_func("s_tir.schedule.GetSBlockRealize")


def loop_kinds(sch, block, loops) -> list[str]:
    """Per loop around `block`: "S" when it feeds only data-parallel block iters (safe to run in parallel or
    vectorized), "R" when it feeds a reduction iter, "O" otherwise (opaque iters, or a loop of extent > 1
    the block does not depend on, which would run the same writes concurrently)."""
    block_stmt = sch.get(block)
    values = block_realize(sch, block).iter_values
    kinds = []
    for loop in loops:
        var = sch.get(loop).loop_var
        used = {iv.iter_type for iv, value in zip(block_stmt.iter_vars, values) if uses(value, var)}
        if not used:
            kinds.append("S" if static_extent(sch, loop) == 1 else "O")
        elif used == {tirx.IterVar.DataPar}:
            kinds.append("S")
        elif used <= {tirx.IterVar.DataPar, tirx.IterVar.CommReduce}:
            kinds.append("R")
        else:
            kinds.append("O")
    return kinds


def uses(expr, var) -> bool:
    return any(free.same_as(var) for free in tirx.analysis.undefined_vars(expr))


def vector_lanes(sch, block, vector_bits: int) -> int:
    """Vector lanes for the block's output type: 16 fp32 on AVX-512, 8 on AVX2, 4 on NEON."""
    writes = sch.get(block).writes
    bits = writes[0].source.dtype.bits if writes else 32
    return max(vector_bits // max(bits, 8), 1)


def vector_factor(extent: int | None, lanes: int) -> int | None:
    """How many iterations of a loop of `extent` to run as one vector: the largest power of two up to the
    target's lanes that divides it (LLVM turns a 28-lane vector carried across a loop into shuffles and stack
    traffic: 5x slower than seven 4-lane ones), else the whole loop when it fits in one vector (a 7-wide row),
    else None: a remainder puts a predicate in the loop, and TVM's vectorizer then emits scalar code."""
    if extent is None or extent < 2 or lanes < 2:
        return None
    factor = lanes
    while factor >= 4:
        if extent % factor == 0:
            return factor
        factor //= 2
    return extent if extent <= lanes else None


def loop_work(sch, loops) -> int:
    return math.prod(static_extent(sch, loop) or 1024 for loop in loops)  # a symbolic extent: assume it is large


def parallel_vectorize(sch, block, vector_bits: int) -> bool:
    """Fuse the block's leading spatial loops into one parallel loop and vectorize its innermost spatial loop
    when nothing inside it is a reduction; reductions stay serial, inside. False when nothing applied."""
    loops = sch.get_loops(block)
    kinds = loop_kinds(sch, block, loops)
    spatial = len(kinds) - len("".join(kinds).lstrip("S"))
    if spatial == 0:
        return False
    work = loop_work(sch, loops)
    outer = list(loops[:spatial])
    changed = False
    if spatial == len(loops):  # the innermost loop is spatial: vectorize it
        factor = vector_factor(static_extent(sch, loops[-1]), vector_lanes(sch, block, vector_bits))
        if factor is not None:
            if factor == static_extent(sch, loops[-1]):
                inner = outer.pop()
            else:
                head, inner = sch.split(loops[-1], factors=[None, factor])
                outer[-1] = head
            sch.vectorize(inner)
            changed = True
        elif len(outer) > 1:
            # No vector width divides it: the innermost loop stays a plain loop, outside the parallel one, so
            # LLVM vectorizes it with a remainder and its index needs no division by the fused extents.
            outer.pop()
    if outer and work >= MIN_PARALLEL_WORK:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        sch.parallel(fused)
        changed = True
    return changed
