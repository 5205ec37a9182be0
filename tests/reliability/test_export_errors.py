"""Issue #7, part 3: export. Invalid ONNX, dynamic sizes a graph does not take, ops no one supports, ops only TVM
supports (reported, not an error), outputs that cannot be written: a ModelError from tvm_ncnn.export and one
line from `tvm-ncnn export`."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from support import assert_model_error, deploy_app, python_cases, run
from reliability_fixtures import models  # noqa: F401  (the fixture)


def cli(*args):
    return run([sys.executable, "-m", "tvm_ncnn.cli", *map(str, args)], timeout=300)


def assert_cli_error(done, *needles):
    assert not done.crashed, done.describe()
    assert done.returncode == 1, done.describe()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvm-ncnn: error: "), done.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def export_case(model, output, **extra) -> dict:
    return {"op": "export", "model": str(model), "output": str(output), **extra}


def with_dynamic_dims(onnx_path, out_path, names: dict[int, str]):
    """The ONNX with the input's dimensions at these axes made symbolic (named)."""
    model = onnx.load(onnx_path)
    for axis, name in names.items():
        dim = model.graph.input[0].type.tensor_type.shape.dim[axis]
        dim.ClearField("dim_value")
        dim.dim_param = name
    onnx.save(model, out_path)
    return out_path


def test_invalid_onnx(models, tmp_path):
    (tmp_path / "garbage.onnx").write_bytes(np.random.default_rng(2).integers(0, 256, 3000, np.uint8).tobytes())
    (tmp_path / "cut.onnx").write_bytes(models["classifier"]["onnx"].read_bytes()[:500])
    garbage, cut = python_cases([export_case(tmp_path / name, tmp_path / "out.so")
                                 for name in ("garbage.onnx", "cut.onnx")])
    assert_model_error(garbage, "garbage.onnx", "not a readable ONNX model")
    assert_model_error(cut, "cut.onnx")
    assert_cli_error(cli("export", tmp_path / "garbage.onnx", "-o", tmp_path / "out.so"), "garbage.onnx",
                     "not a readable ONNX model")
    assert not (tmp_path / "out.so").exists()


def test_dynamic_dimensions_export_or_are_refused_in_one_line(models, tmp_path):
    """A dynamic dimension other than the batch stays dynamic (README "Dynamic sizes"): the model exports as it
    is; a graph that takes one size only (flattened into a Linear layer) is refused in one line naming the
    dimension and --input; a dynamic batch alone exports as batch 1, with a note (tests/python/test_batch.py)."""
    dynamic = with_dynamic_dims(models["classifier"]["onnx"], tmp_path / "dynamic.onnx", {0: "batch", 2: "height"})
    flat = tmp_path / "flat.onnx"
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "height", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [192, 4], np.ones(768, np.float32).tolist())])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), flat)
    exported, unknown, refused = python_cases([
        export_case(dynamic, tmp_path / "d.so"),
        export_case(dynamic, tmp_path / "d.so", input_shapes={"image": [1, 3, 16, 16]}),
        export_case(flat, tmp_path / "f.so"),
    ])
    assert exported["ok"], exported
    assert_model_error(unknown, "no input named image", "inputs: input")
    assert_model_error(refused, "flat.onnx", "no size rule", "x:height", "--input")
    assert_cli_error(cli("export", flat, "-o", tmp_path / "f2.so"), "no size rule", "--input")
    done = cli("export", dynamic, "-o", tmp_path / "d2.so")
    assert done.returncode == 0, done.describe()
    shown = cli("inspect", tmp_path / "d2.so")
    assert "[1,3,height,16]" in shown.stdout, shown.describe()
    done = cli("export", dynamic, "-o", tmp_path / "d3.so", "--input", "input:1,3,16,16")
    assert done.returncode == 0, done.describe()
    batch_only = with_dynamic_dims(models["classifier"]["onnx"], tmp_path / "batch.onnx", {0: "batch"})
    done = cli("export", batch_only, "-o", tmp_path / "d4.so")
    assert done.returncode == 0 and "note: " in done.stderr and "exporting batch 1" in done.stderr, done.describe()


def test_op_no_one_supports(tmp_path):
    node = helper.make_node("MyCustomOp", ["input"], ["output"], domain="com.example")
    graph = helper.make_graph([node], "custom", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, tmp_path / "custom.onnx")
    result, = python_cases([export_case(tmp_path / "custom.onnx", tmp_path / "c.so")])
    assert_model_error(result, "custom.onnx", "not supported", "MyCustomOp")


def test_op_ncnn_lacks_falls_back_to_tvm_and_is_reported(models, tmp_path):
    """erf has no ncnn layer: it runs in TVM between two ncnn regions, the report says so and why, and the
    result is still right."""
    result, = python_cases([export_case(models["two_regions"]["onnx"], tmp_path / "fallback.so")])
    assert result["ok"], result
    erf = [p for p in result["placement"] if p["op"] == "relax.erf"]
    assert erf and erf[0]["place"] == "tvm" and "no ncnn layer for relax.erf" in erf[0]["reason"], result
    assert {p["place"] for p in result["placement"]} >= {"ncnn:0", "ncnn:1", "tvm"}
    report = cli("inspect", models["two_regions"]["so"])
    assert report.returncode == 0 and "no ncnn layer for relax.erf" in report.stdout, report.describe()

    import onnxruntime as ort

    x = np.load(models["x"])
    session = ort.InferenceSession(str(models["two_regions"]["onnx"]), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    done = deploy_app(tmp_path / "fallback.so", models["x"], "--output", tmp_path / "y.npy", "--repeat", "1")
    assert done.returncode == 0, done.describe()
    got = np.load(tmp_path / "y.npy")
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_output_place_checked_before_the_slow_work(models, tmp_path):
    onnx_path = models["classifier"]["onnx"]
    (tmp_path / "taken").mkdir()
    no_dir, is_dir, no_permission = python_cases([
        export_case(onnx_path, tmp_path / "no" / "such" / "dir" / "m.so"),
        export_case(onnx_path, tmp_path / "taken"),
        export_case(onnx_path, "/proc/1/m.so"),  # not writable even by root
    ])
    assert_model_error(no_dir, "m.so", "does not exist")
    assert_model_error(is_dir, "taken", "is a directory")
    assert_model_error(no_permission, "/proc/1/m.so", "cannot write")
    assert_cli_error(cli("export", onnx_path, "-o", tmp_path / "no" / "m.so"), "does not exist")


def test_write_failure_is_one_line_from_the_cli(models):
    # /proc passes the access() check as root, but no file can be created there: the write itself fails.
    assert_cli_error(cli("export", models["classifier"]["onnx"], "-o", "/proc/m.so"), "/proc/m.so", "cannot write")


def test_write_failure_is_a_model_error(models):
    result, = python_cases([export_case(models["classifier"]["onnx"], "/proc/m.so")])
    assert_model_error(result, "/proc/m.so")


def test_missing_labels_file(models, tmp_path):
    done = cli("export", models["classifier"]["onnx"], "-o", tmp_path / "l.so", "--labels", tmp_path / "none.txt")
    assert_cli_error(done, "none.txt", "cannot read labels")
