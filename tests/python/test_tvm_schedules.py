"""The default CPU schedules (tvm_ncnn/compile/schedules.py) change how fast TVM's code runs, never what it computes,
and never whether a model exports.

Small ONNX graphs of ops that stay in TVM, with awkward shapes (sizes no vector width divides, rank 1 to 5,
strided and depthwise convs, reductions, int64 indices, float16), compiled the way export compiles them, each
against onnxruntime; every TIR function is accounted for (a rule, or why none); a failing rule or a failing
scheduled build falls back to the unscheduled code; model.so files made with --no-offload and with ncnn regions
around a TVM op run through the runtime; an rpi4 export is scheduled for NEON and runs under qemu-aarch64.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

import tvm_ncnn
from tvm_ncnn.compile import schedules as tvm_schedules
from tvm_ncnn.frontend.importer import import_model
from tvm_ncnn.compile.targets import get_target

from conftest import max_rel_error

TOLERANCE = 1e-4
RNG = np.random.default_rng(7)
F32, F16, I64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64


def const(name: str, shape, dtype=np.float32):
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.5).astype(dtype), name)


def graph(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    """inputs/outputs: [(name, onnx type, shape)]; weights as initializers, as a model file holds them."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def conv(name, x_shape, w_shape, out_shape, epilogue=None, **attrs):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if epilogue else "y"], **attrs)]
    if epilogue:
        nodes.append(helper.make_node(epilogue, ["c"], ["y"]))
    return name, graph(nodes, [("x", F32, x_shape)], [("y", F32, out_shape)],
                       [const("w", w_shape), const("b", (w_shape[0],))])


def unary_chain(shape, dtype=F32):
    nodes = [helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Mul", ["s", "x"], ["m"]),
             helper.make_node("Add", ["m", "x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    return graph(nodes, [("x", dtype, shape)], [("y", dtype, shape)])


CASES = dict([
    conv("conv_odd", [1, 5, 13, 11], [7, 5, 3, 3], [1, 7, 13, 11], "Relu", pads=[1, 1, 1, 1]),
    conv("conv_stride2_erf", [1, 3, 17, 17], [6, 3, 3, 3], [1, 6, 8, 8], "Erf", strides=[2, 2]),
    conv("conv_depthwise", [1, 8, 9, 9], [8, 1, 3, 3], [1, 8, 9, 9], "Sigmoid", pads=[1, 1, 1, 1], group=8),
    conv("conv_1x1_wide", [1, 32, 20, 20], [24, 32, 1, 1], [1, 24, 20, 20]),
    ("matmul_odd", graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                         [("x", F32, [3, 37])], [("y", F32, [3, 19])], [const("w", (37, 19)), const("b", (19,))])),
    ("matmul_batched", graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F32, [2, 45, 33])],
                             [("y", F32, [2, 45, 17])], [const("w", (33, 17))])),
    ("gemm_vector", graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], [("x", F32, [1, 64])],
                          [("y", F32, [1, 30])], [const("w", (30, 64)), const("b", (30,))])),
    ("softmax", graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", F32, [2, 7, 45])],
                      [("y", F32, [2, 7, 45])])),
    ("layernorm", graph([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)],
                        [("x", F32, [3, 11, 40])], [("y", F32, [3, 11, 40])], [const("g", (40,)), const("b", (40,))])),
    ("reduce_sum_mid", graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
                             [("x", F32, [4, 33, 7])], [("y", F32, [4, 7])],
                             [numpy_helper.from_array(np.array([1], np.int64), "axes")])),
    ("argmax_int64", graph([helper.make_node("ArgMax", ["x"], ["y"], axis=-1, keepdims=0)], [("x", F32, [5, 37])],
                           [("y", I64, [5])])),
    ("cumsum", graph([helper.make_node("CumSum", ["x", "axis"], ["y"])], [("x", F32, [3, 29])], [("y", F32, [3, 29])],
                     [numpy_helper.from_array(np.array(1, np.int64), "axis")])),
    ("gather_int64", graph([helper.make_node("Gather", ["w", "i"], ["y"], axis=0)], [("i", I64, [4, 5])],
                           [("y", F32, [4, 5, 13])], [const("w", (10, 13))])),
    ("maxpool", graph([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                        pads=[1, 1, 1, 1])], [("x", F32, [1, 4, 15, 15])], [("y", F32, [1, 4, 8, 8])])),
    ("avgpool", graph([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                      [("x", F32, [1, 6, 18, 18])], [("y", F32, [1, 6, 9, 9])])),
    ("transpose", graph([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", F32, [2, 3, 5, 7])],
                        [("y", F32, [2, 5, 7, 3])])),
    ("rank1", unary_chain([37])),
    ("rank2", unary_chain([3, 19])),
    ("rank3", unary_chain([2, 3, 29])),
    ("rank4_large", unary_chain([1, 16, 30, 37])),
    ("rank5", unary_chain([1, 2, 3, 4, 23])),
    ("float16", unary_chain([3, 37], F16)),
])
# The rule each case's main function must get (others may be scheduled by any rule).
EXPECTED_RULE = {"conv_odd": "contraction", "conv_stride2_erf": "contraction", "conv_depthwise": "contraction",
                 "conv_1x1_wide": "contraction", "matmul_batched": "contraction", "softmax": "reduction",
                 "rank4_large": "spatial"}


def inputs_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == I64:
            feeds[value.name] = RNG.integers(0, 10, shape).astype(np.int64)
        else:
            dtype = np.float16 if value.type.tensor_type.elem_type == F16 else np.float32
            feeds[value.name] = RNG.standard_normal(shape).astype(dtype)
    return feeds


def compile_scheduled(path: str, target: str = "host"):
    mod = import_model(path).mod
    return tvm_schedules.build(mod, get_target(target).tvm_target())


def run_vm(executable, feeds: dict) -> np.ndarray:
    vm = relax.VirtualMachine(executable, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(v) for v in feeds.values()])
    return (out if hasattr(out, "numpy") else out[0]).numpy()  # a tensor, or a tuple of them (top-k)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sched")


def save(model: onnx.ModelProto, directory, name: str) -> str:
    path = str(directory / f"{name}.onnx")
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_scheduled_equals_onnxruntime(name, onnx_dir):
    import onnxruntime as ort

    model = CASES[name]
    path = save(model, onnx_dir, name)
    feeds = inputs_for(model)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    executable, report = compile_scheduled(path)
    assert "(module)" not in report, report  # the scheduled build itself worked
    # every TIR function is accounted for: the rule it got, or why it got none
    assert report and all(rule for rule in report.values()), report
    got = run_vm(executable, feeds)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if ref.dtype == np.int64:
        np.testing.assert_array_equal(got, ref)
    else:
        tolerance = 2e-3 if ref.dtype == np.float16 else TOLERANCE
        assert max_rel_error(got, ref.astype(np.float64)) <= tolerance, name
    if name in EXPECTED_RULE:
        assert EXPECTED_RULE[name] in report.values(), report


def test_every_prim_func_is_reported(onnx_dir):
    """The report names every PrimFunc the fused module has, scheduled or not."""
    from tvm.relax.backend.cpu_generic import pipeline as stages

    path = save(CASES["conv_stride2_erf"], onnx_dir, "every")
    target = get_target("host").tvm_target()
    with target:
        fused = tvm.transform.Sequential(stages.library_dispatch_passes(target)
                                         + stages.legalize_passes(target))(import_model(path).mod)
    names = {gv.name_hint for gv, f in fused.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}
    _, report = compile_scheduled(path)
    assert set(report) == names


def test_a_failing_rule_leaves_the_function_unscheduled(onnx_dir, monkeypatch):
    def broken(*_args):
        raise RuntimeError("this rule is broken")

    monkeypatch.setattr(tvm_schedules, "RULES", [("broken", broken)] + tvm_schedules.RULES[-1:])
    model = CASES["conv_odd"]
    path = save(model, onnx_dir, "broken_rule")
    feeds = inputs_for(model)
    executable, report = compile_scheduled(path)
    conv_rule = next(rule for name, rule in report.items() if "conv2d" in name)
    assert conv_rule == "spatial" or conv_rule.startswith("unscheduled: broken: this rule is broken"), report
    from conftest import onnxruntime_run

    assert max_rel_error(run_vm(executable, feeds), onnxruntime_run(path, feeds["x"])) <= TOLERANCE


def test_a_failing_scheduled_build_falls_back_to_the_unscheduled_one(onnx_dir, monkeypatch):
    def broken_schedule(mod, target, report=None):
        raise RuntimeError("schedules broke the build")

    monkeypatch.setattr(tvm_schedules, "schedule_module", broken_schedule)
    model = CASES["conv_odd"]
    path = save(model, onnx_dir, "broken_build")
    executable, report = compile_scheduled(path)
    assert list(report) == ["(module)"] and "schedules broke the build" in report["(module)"]
    from conftest import onnxruntime_run

    feeds = inputs_for(model)
    assert max_rel_error(run_vm(executable, feeds), onnxruntime_run(path, feeds["x"])) <= TOLERANCE


def test_schedules_off_compiles_as_before(onnx_dir, monkeypatch):
    monkeypatch.setenv(tvm_schedules.ENV, "0")
    _, report = compile_scheduled(save(CASES["conv_odd"], onnx_dir, "off"))
    assert report == {}


def test_host_target_names_its_cpu():
    """{kind: llvm} alone compiles for generic x86-64 (SSE2): the schedules' vectors need the CPU named."""
    llvm = get_target("host").llvm
    vector_bits = tvm.target.codegen.llvm_get_vector_width(get_target("host").tvm_target())
    assert llvm.get("mcpu") or vector_bits <= 128, llvm


TWO_CONVS_AND_ERF = graph(
    [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
     helper.make_node("Erf", ["r1"], ["e"]), helper.make_node("CumSum", ["e", "axis"], ["s"]),
     helper.make_node("Conv", ["s", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c2"], ["y"])],
    [("x", F32, [1, 3, 24, 24])], [("y", F32, [1, 8, 24, 24])],
    [const("w1", (8, 3, 3, 3)), const("b1", (8,)), const("w2", (8, 8, 3, 3)), const("b2", (8,)),
     numpy_helper.from_array(np.array(3, np.int64), "axis")])


@pytest.mark.parametrize("offload", [False, True], ids=["no_offload", "ncnn_regions_around_tvm"])
def test_model_so_runs_scheduled(offload, onnx_dir, tmp_path):
    """Through model.so and the runtime: all in TVM, and ncnn regions with TVM ops (erf, cumsum) between them."""
    from conftest import deploy_app_output, onnxruntime_run

    path = save(TWO_CONVS_AND_ERF, onnx_dir, f"two_convs_{offload}")
    result = tvm_ncnn.export(path, str(tmp_path / "model.so"), offload=offload)
    assert result.schedules and "(module)" not in result.schedules, result.schedules
    if not offload:
        assert "contraction" in result.schedules.values(), result.schedules
    x = RNG.standard_normal((1, 3, 24, 24)).astype(np.float32)
    ref = onnxruntime_run(path, x)
    assert max_rel_error(tvm_ncnn.load(result.path, threads=2)(x)[0], ref) <= TOLERANCE
    got, _ = deploy_app_output(result.path, x, tmp_path)
    assert max_rel_error(got, ref) <= TOLERANCE


def test_rpi4_export_is_scheduled_for_neon_and_runs_under_qemu(onnx_dir, tmp_path):
    """The aarch64 export gets the same rules at NEON's width (4 fp32 lanes) and runs on the Pi's runtime."""
    import os

    from conftest import onnxruntime_run

    path = save(TWO_CONVS_AND_ERF, onnx_dir, "two_convs_rpi4")
    result = tvm_ncnn.export(path, str(tmp_path / "rpi4.so"), target="rpi4", offload=False)
    assert "(module)" not in result.schedules and "contraction" in result.schedules.values(), result.schedules
    if os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1":
        pytest.skip("TVM_NCNN_SKIP_AARCH64=1: exported, not run")
    import test_aarch64 as pi

    if not (pi.QEMU and pi.TARBALL.exists()):
        pytest.skip("no qemu-aarch64 or no aarch64 bundle (bash cmake/build_aarch64.sh)")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    import tarfile

    with tarfile.open(pi.TARBALL) as tar:
        tar.extractall(bundle, filter="data")
    x = RNG.standard_normal((1, 3, 24, 24)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    got, _ = pi.run_json(bundle / "tvm-ncnn-aarch64", pi.SYSROOT, "cortex-a72", result.path, tmp_path / "x.npy",
                         out_dir)
    assert max_rel_error(got, onnxruntime_run(path, x)) <= TOLERANCE
