"""The op tables agree: every supported op has a converter and a pattern, and every ncnn layer type a
converter or graph pass may write is built into the vendored ncnn (cmake/ncnn.cmake TVM_NCNN_LAYERS).
Converters writing only what they declare is checked on every conversion (codegen._check_declared)."""

from __future__ import annotations

import pathlib
import re

from tvm_ncnn.ncnn import ops
from tvm_ncnn.ncnn import passes as graph_passes
from tvm_ncnn.ncnn import window_padding

ROOT = pathlib.Path(__file__).resolve().parents[2]


def vendored_layers() -> set[str]:
    text = (ROOT / "cmake" / "ncnn.cmake").read_text()
    block = re.search(r"set\(TVM_NCNN_LAYERS(.*?)\)", text, re.S).group(1)
    return {word for line in block.splitlines() for word in line.split("#")[0].split()}


def test_every_supported_op_converts():
    for name, op in ops.SUPPORTED.items():
        assert callable(op.why_not) and callable(op.convert), name
        assert op.layers, f"{name} declares no ncnn layer"


def test_every_supported_op_has_a_pattern():
    roots = {_op_name(p.annotations["root"]) for p in ops.pattern_table()}
    assert set(ops.SUPPORTED) <= roots, f"no pattern offloads {sorted(set(ops.SUPPORTED) - roots)}"


def test_fused_patterns_have_a_converter():
    for fused in ops.FUSED:
        rule = fused if fused.convert else ops.rule_for(fused.name, _op_name(fused.annotations["root"]))
        assert callable(rule.convert) and rule.layers, fused.name


def test_layers_written_are_vendored():
    written = ops.layer_types() | set(graph_passes.LAYERS) | set(window_padding.LAYERS)
    missing = written - vendored_layers()
    assert not missing, f"converters write {sorted(missing)}, not built into the vendored ncnn"


def test_pattern_names_are_unique():
    names = [p.name for p in ops.pattern_table()]
    assert len(names) == len(set(names))


def _op_name(pattern) -> str:
    """The op of a call pattern; '' for an alternative (a|b) or a function call, whose entry has its own
    converter."""
    expr = getattr(getattr(pattern, "op", None), "expr", None)  # none for a call of a function (ops/recurrent.py)
    return str(expr.name) if expr is not None else ""
