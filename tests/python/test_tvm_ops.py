"""Ops that stay in TVM run in model.so: one small model per Relax op family ncnn does not take (sort, argsort,
top-k, cumsum, roll, take, gather/scatter elements, where, einsum, argmax, a resize mode ncnn lacks), exported and
run by deploy_app and by tvm_ncnn.load against onnxruntime (numpy for the Relax-only sort and argsort); one model
with them all on aarch64 under qemu. Sorting inputs hold ties: the lower index comes first, as ONNX says.

TVM lowers sort, argsort and top-k to calls of tvm.contrib.sort.*, which the runtime carries
(runtime/src/tvm_extern/sort.cc); export refuses a model whose compiled code calls a function the runtime lacks
(tvm_ncnn/runtime_functions.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tvm_ncnn
from tvm_ncnn import ModelError
from tvm_ncnn.compile import runtime_functions
from tvm_ncnn.runtime import native

from conftest import ROOT, deploy_app_output, max_rel_error, onnxruntime_run

SORT_FUNCTIONS = ("tvm.contrib.sort.sort", "tvm.contrib.sort.argsort", "tvm.contrib.sort.topk")
TOLERANCE = 1e-5


def _ties(shape, seed=0) -> np.ndarray:
    """Small integers as floats: every row has repeated values, so a sort's tie order shows."""
    return np.random.default_rng(seed).integers(-3, 4, size=shape).astype(np.float32)


def _const(name, array):
    return helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape, array.flatten())


def _onnx(nodes, shape, inits=(), opset=17) -> onnx.ModelProto:
    """One float input x of `shape`, one float output y."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _as_float(src, dst):
    return helper.make_node("Cast", [src], [dst], to=TensorProto.FLOAT)


def _flat(src, dst):
    return helper.make_node("Flatten", [src], [dst], axis=0)


# name -> (nodes, input shape, initializers, the Relax op that must stay in TVM). Every index output is cast to
# float and joined with the values, so one output carries both.
CASES = {
    "topk_largest": ([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1), _as_float("i", "fi"),
                      helper.make_node("Concat", ["v", "fi"], ["y"], axis=-1)],
                     [1, 5, 12], [_const("k", np.array([4], np.int64))], "relax.topk"),
    "topk_smallest": ([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=0), _as_float("i", "fi"),
                       helper.make_node("Concat", ["v", "fi"], ["y"], axis=1)],
                      [1, 9, 4], [_const("k", np.array([3], np.int64))], "relax.topk"),
    "cumsum": ([helper.make_node("CumSum", ["x", "axis"], ["y"])],
               [1, 6, 5], [_const("axis", np.array(1, np.int64))], "relax.cumsum"),
    # torch.roll as ONNX spells it: two slices joined the other way round, along the batch axis (which no ncnn
    # region takes: a per-image batch would run them in ncnn)
    "roll": ([helper.make_node("Slice", ["x", "s0", "e0", "ax"], ["a"]),
              helper.make_node("Slice", ["x", "s1", "e1", "ax"], ["b"]),
              helper.make_node("Concat", ["b", "a"], ["y"], axis=0)],
             [4, 3, 8], [_const("s0", np.array([0], np.int64)), _const("e0", np.array([3], np.int64)),
                         _const("s1", np.array([3], np.int64)), _const("e1", np.array([4], np.int64)),
                         _const("ax", np.array([0], np.int64))], "relax.concat"),
    "take": ([helper.make_node("Gather", ["x", "idx"], ["y"], axis=2)],
             [1, 4, 7], [_const("idx", np.array([[3, 0], [6, 6]], np.int64))], "relax.take"),
    "gather_elements": ([helper.make_node("GatherElements", ["x", "idx"], ["y"], axis=1)],
                        [1, 4, 3], [_const("idx", np.array([[[3, 0, 1], [2, 2, 0]]], np.int64))],
                        "relax.gather_elements"),
    "scatter_elements": ([helper.make_node("ScatterElements", ["x", "idx", "upd"], ["y"], axis=1)],
                         [1, 4, 3], [_const("idx", np.array([[[3, 0, 1], [1, 2, 0]]], np.int64)),
                                     _const("upd", np.arange(6, dtype=np.float32).reshape(1, 2, 3) + 10)],
                         "relax.scatter_elements"),
    "where": ([helper.make_node("Greater", ["x", "zero"], ["c"]), helper.make_node("Mul", ["x", "tenth"], ["s"]),
               helper.make_node("Where", ["c", "x", "s"], ["y"])],
              [1, 3, 4, 4], [_const("zero", np.array(0, np.float32)), _const("tenth", np.array(0.1, np.float32))],
              "relax.where"),
    # TVM's ONNX importer writes Einsum as topi's einsum, already a call_tir
    "einsum": ([helper.make_node("Einsum", ["x", "x"], ["y"], equation="bij,bkj->bik")], [1, 5, 6], [],
               "relax.call_tir"),
    "argmax": ([helper.make_node("ArgMax", ["x"], ["i"], axis=1, keepdims=1), _as_float("i", "y")],
               [1, 6, 5], [], "relax.argmax"),
    # cubic with A = -0.5 and asymmetric coordinates: ncnn's bicubic is A = -0.75, half-pixel / align-corners
    "resize_cubic": ([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", cubic_coeff_a=-0.5,
                                       coordinate_transformation_mode="asymmetric")],
                     [1, 2, 5, 5], [_const("scales", np.array([1, 1, 2, 2], np.float32))], "relax.image.resize2d"),
}


def _relax_sorts():
    """sort and argsort, which no ONNX op imports to: a Relax IRModule (export takes one) with both, descending
    sort on axis 1 and ascending argsort on the last axis, joined into one float output."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 5), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            s = bb.emit(relax.op.sort(x, axis=1, descending=True))
            a = bb.emit(relax.op.astype(relax.op.argsort(x, axis=-1, descending=False, dtype="int64"), "float32"))
            y = bb.emit_output(relax.op.concat([s, a], axis=-1))
        bb.emit_func_output(y)
    return bb.get()


def _relax_sorts_reference(x: np.ndarray) -> np.ndarray:
    descending = -np.sort(-x, axis=1, kind="stable")
    ascending_index = np.argsort(x, axis=-1, kind="stable").astype(np.float32)
    return np.concatenate([descending, ascending_index], axis=-1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("tvm_ops")


def _export(name, work, target="host"):
    """(model.so, reference function, placement report) for a case."""
    so = str(work / f"{name}-{target}.so")
    if name == "relax_sorts":
        result = tvm_ncnn.export(_relax_sorts(), so, target=target)
        return so, _relax_sorts_reference, result.report
    nodes, shape, inits, _ = CASES[name]
    path = str(work / f"{name}.onnx")
    onnx.save(_onnx(nodes, shape, inits), path)
    result = tvm_ncnn.export(path, so, target=target)
    return so, (lambda x: onnxruntime_run(path, x)), result.report


def _input(name) -> np.ndarray:
    shape = (1, 6, 5) if name == "relax_sorts" else CASES[name][1]
    return _ties(shape)


@pytest.mark.parametrize("name", [*CASES, "relax_sorts"])
def test_op_stays_in_tvm_and_runs(name, work, deploy_app):
    so, reference, report = _export(name, work)
    family = ["relax.sort", "relax.argsort"] if name == "relax_sorts" else [CASES[name][3]]
    for op in family:
        assert any(o.op == op and o.place == "tvm" for o in report.ops), f"{op} did not stay in TVM: {report.ops}"
    x = _input(name)
    ref = reference(x)
    got, _ = deploy_app_output(so, x, work)  # deploy_app: the runtime library alone, as on a device
    assert max_rel_error(got, ref) <= TOLERANCE
    assert max_rel_error(tvm_ncnn.load(so).single(x), ref) <= TOLERANCE


def test_runtime_carries_the_sort_functions():
    have = runtime_functions.provided(native.library_path())
    assert set(SORT_FUNCTIONS) <= have
    assert "relax.run.unique" not in have  # TVM's compiler has it; the runtime does not (export refuses it)


def test_export_refuses_a_function_the_runtime_lacks(work, monkeypatch):
    have = runtime_functions.provided(native.library_path())
    monkeypatch.setattr(runtime_functions, "provided", lambda library: have - {"tvm.contrib.sort.topk"})
    path = str(work / "refused.onnx")
    onnx.save(_onnx(*CASES["topk_largest"][:3]), path)
    out = work / "refused.so"
    with pytest.raises(ModelError) as err:
        tvm_ncnn.export(path, str(out))
    message = str(err.value)
    assert "\n" not in message and "topk" in message and "tvm.contrib.sort.topk" in message
    assert not out.exists()


def test_export_refuses_a_vm_call_the_runtime_lacks(work):
    """A packed function the Relax VM would look up when it starts (an IRModule calling an extern by name); the
    add after it still goes to ncnn."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = relax.TensorType((1, 4), "float32")
            y = bb.emit(relax.call_dps_packed("tvm_ncnn.test.no_such_function", [x], out))
            z = bb.emit_output(relax.op.add(y, x))
        bb.emit_func_output(z)
    with pytest.raises(ModelError, match="the Relax VM calls tvm_ncnn.test.no_such_function, which the tvm-ncnn"):
        tvm_ncnn.export(bb.get(), str(work / "vm-refused.so"))
    assert not (work / "vm-refused.so").exists()


def test_runtime_loads_before_and_after_tvm():
    """Both TVM's libtvm_runtime_extra.so and the runtime offer tvm.contrib.sort.*; a name registered twice aborts.
    The runtime first (tvm_ncnn.load needs no TVM), then `import tvm` (an export in the same process)."""
    code = ("from tvm_ncnn.runtime import native; native.library_path(); import tvm, tvm_ffi; "
            "print(tvm_ffi.get_global_func('tvm.contrib.sort.topk') is not None)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT), env={**os.environ})
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]


# ---- aarch64 under qemu: every family in one model.so, so the emulator starts once


def _all_in_one() -> tuple[onnx.ModelProto, list[int]]:
    """Every ONNX case in one graph: each reads its own slice of one flat input and writes its result flattened
    into one concatenated output. Names get the case's prefix."""
    nodes, inits, parts, start = [], [_const("axis1", np.array([1], np.int64))], [], 0
    for name, (case_nodes, shape, case_inits, _) in CASES.items():
        size = int(np.prod(shape))
        local = {"x", *(i.name for i in case_inits), *(o for node in case_nodes for o in node.output)}
        rename = lambda n: f"{name}/{n}" if n in local else n  # noqa: E731
        inits += [_const(f"{name}/begin", np.array([start], np.int64)),
                  _const(f"{name}/end", np.array([start + size], np.int64)),
                  _const(f"{name}/shape", np.array(shape, np.int64))]
        inits += [_const(rename(i.name), onnx.numpy_helper.to_array(i)) for i in case_inits]
        nodes += [helper.make_node("Slice", ["flat", f"{name}/begin", f"{name}/end", "axis1"], [f"{name}/slice"]),
                  helper.make_node("Reshape", [f"{name}/slice", f"{name}/shape"], [rename("x")])]
        for node in case_nodes:
            copy = helper.make_node(node.op_type, [rename(i) if i else "" for i in node.input],
                                    [rename(o) for o in node.output])
            copy.attribute.extend(node.attribute)
            nodes.append(copy)
        nodes.append(_flat(rename("y"), f"{name}/out"))
        parts.append(f"{name}/out")
        start += size
    nodes = [_flat("x", "flat"), *nodes, helper.make_node("Concat", parts, ["y"], axis=1)]
    return _onnx(nodes, [1, start], inits), [1, start]


if os.environ.get("TVM_NCNN_SKIP_AARCH64") != "1":
    from test_aarch64 import bare_sysroot, bundle, run_json  # noqa: F401,E402  (fixtures: the unpacked bundle)


@pytest.mark.skipif(os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1", reason="TVM_NCNN_SKIP_AARCH64=1")
def test_all_families_on_aarch64_under_qemu(work, bundle, bare_sysroot):
    model, shape = _all_in_one()
    path = str(work / "all.onnx")
    onnx.save(model, path)
    so = str(work / "all-rpi4.so")
    tvm_ncnn.export(path, so, target="rpi4")
    sorts_so, sorts_reference, _ = _export("relax_sorts", work, target="rpi4")
    for model_so, x, reference in ((so, _ties(shape, seed=1), lambda x: onnxruntime_run(path, x)),
                                   (sorts_so, _ties((1, 6, 5), seed=2), sorts_reference)):
        inp = work / f"{os.path.basename(model_so)}.npy"
        np.save(inp, x)
        got, _ = run_json(bundle, bare_sysroot, "cortex-a72", model_so, inp, work)
        assert max_rel_error(got, reference(x)) <= TOLERANCE


# ---- the runtime's own sort functions, called directly in a process without TVM (where `import tvm` runs, TVM's
# copies are the registered ones)

_DIRECT = r"""
import ctypes, math, sys
import numpy as np, tvm_ffi

ctypes.CDLL(sys.argv[1], ctypes.RTLD_GLOBAL)
sort, argsort, topk = (tvm_ffi.get_global_func("tvm.contrib.sort." + n) for n in ("sort", "argsort", "topk"))
T = tvm_ffi.from_dlpack

def order(row, ascend):  # stable; NaN the largest value
    big = lambda v: isinstance(v, float) and math.isnan(v)
    key = (lambda j: (big(row[j]), 0 if big(row[j]) else row[j])) if ascend else \
          (lambda j: (not big(row[j]), 0 if big(row[j]) else -row[j]))
    return sorted(range(len(row)), key=key)

rng = np.random.default_rng(0)
for dtype in ("float32", "float16", "float64", "int8", "int32", "int64", "uint8"):
    x = rng.integers(0, 4, size=(3, 4, 5)).astype(dtype)
    if x.dtype.kind == "f":
        x[0, 1, 2] = x[2, 3, 4] = np.nan
    for axis in (0, 1, -1):
        for ascend in (True, False):
            want = np.apply_along_axis(lambda r: np.array(order(r.tolist(), ascend)), axis, x)
            values, index = np.empty_like(x), np.empty(x.shape, "int64")
            sort(T(x), T(values), axis, ascend)
            argsort(T(x), T(index), axis, int(ascend))
            assert (index == want).all(), (dtype, axis, ascend)
            np.testing.assert_array_equal(values, np.take_along_axis(x, want, axis))
            k = 2
            shape = list(x.shape); shape[axis] = k
            top_v, top_i = np.empty(shape, dtype), np.empty(shape, "int32")
            topk(T(x), T(top_v), T(top_i), k, axis, "both", ascend)
            first = np.take(want, range(k), axis=axis)
            assert (top_i == first).all(), (dtype, axis, ascend)
            np.testing.assert_array_equal(top_v, np.take_along_axis(x, first, axis))
            only = np.empty(shape, "float32")
            topk(T(x), T(only), k, axis, "indices", ascend)
            assert (only == first).all()
try:
    topk(T(x), T(np.empty((3, 4, 9), "float32")), 2, -1, "values", True)
except Exception as err:
    assert "tvm.contrib.sort.topk" in str(err), err
else:
    raise AssertionError("a wrong output shape was not refused")
print("ok")
"""


def test_runtime_sort_functions_match_a_stable_reference():
    """Every data dtype TVM passes, each axis, both directions, ties and NaN; int64/int32/float indices."""
    proc = subprocess.run([sys.executable, "-c", _DIRECT, native.library_path()], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
