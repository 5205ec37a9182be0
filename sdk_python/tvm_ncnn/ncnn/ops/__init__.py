"""The ops ncnn runs, one module per family; this file assembles their tables.

Each module declares `OPS` (one Relax op each: its support check with the reason, its converter, the ncnn layer
types it writes) and optionally `PATTERNS` (fused patterns of several calls). Supporting a new op touches one
module, its test, and cmake/ncnn.cmake's TVM_NCNN_LAYERS if it writes a new layer type (tests/python/
test_op_tables.py checks that the three agree).
"""

from __future__ import annotations

from tvm.ir import GlobalVar
from tvm.relax.backend.pattern_registry import get_patterns_with_prefix, register_patterns

from . import (activation, attention, conv, elementwise, matmul, norm, pool, recurrent, reduce, resize, shape,
               spelled_activation, unary_math)
from .base import PREFIX, Fused, Match, Op, single
from .size_free import why_not_at_every_size

# Fused patterns are tried in this order (the earlier the module, the higher its patterns' priority), then
# every op alone.
MODULES = (recurrent, attention, shape, norm, spelled_activation, conv, matmul, pool, reduce, activation, elementwise,
           unary_math, resize)

SUPPORTED: dict[str, Op] = {op.name: op for module in MODULES for op in getattr(module, "OPS", [])}
FUSED: list[Fused] = [p for module in MODULES for p in getattr(module, "PATTERNS", [])]


def why_not(call) -> str | None:
    """The reason a single Relax call cannot run in ncnn, or None when it can (for a model with dynamic sizes:
    at every size, size_free.py)."""
    name = getattr(call.op, "name", None)
    if isinstance(call.op, GlobalVar):  # a function of main's: ONNX's recurrent nodes (ops/recurrent.py)
        return recurrent.why_not_recurrent(call)
    if name not in SUPPORTED:
        return f"no ncnn layer for {name or 'this call'}"
    return why_not_at_every_size(call, SUPPORTED[name])


def pattern_table() -> list[Fused]:
    """Highest priority first: the fused forms, then each op alone."""
    alone = [single(op, extra) for op in SUPPORTED.values() if op.alone for extra in op.extra_args]
    return FUSED + alone


_OWN_CONVERTER = {p.name: p for p in FUSED if p.convert is not None}


def rule_for(pattern: str, root_op: str) -> Op | Fused:
    """The entry that converts a match of `pattern`: the fused pattern itself when it has its own converter,
    else the root op's."""
    return _OWN_CONVERTER.get(pattern) or SUPPORTED[root_op]


def layer_types() -> set[str]:
    """Every ncnn layer type a converter may write."""
    return {t for op in SUPPORTED.values() for t in op.layers} | {t for p in FUSED for t in p.layers}


# The registry gives later entries higher priority; the table lists the highest first.
register_patterns([(p.name, p.pattern, p.annotations, p.check) for p in reversed(pattern_table())])


def ncnn_patterns():
    return get_patterns_with_prefix(PREFIX)


__all__ = ["Match", "Op", "Fused", "why_not", "pattern_table", "rule_for", "layer_types", "ncnn_patterns",
           "SUPPORTED"]
