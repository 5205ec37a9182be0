"""ONNX's own backend node tests for the ops tvm-ncnn offloads, run through export + load, against the
outputs ONNX ships with each test (computed by its reference implementation).

Tensors a real model holds as constants (weights, shapes, axes, scales, bounds, slopes) are frozen into
initializers, as they would be in a model file; both operands of elementwise ops stay inputs. Every test
must export (unsupported ops fall back to TVM); the ones that cannot pass are listed with the reason.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tvm_ncnn
from tvm_ncnn import ModelError

OPS = ["conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool", "globalmaxpool", "relu", "leakyrelu",
       "prelu", "clip", "sigmoid", "hardsigmoid", "hardswish", "tanh", "softmax", "concat", "split", "slice",
       "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "pad", "resize", "reduce_mean", "reduce_sum",
       "reduce_max", "add", "sub", "mul", "div", "gemm", "matmul", "batchnorm", "layer_normalization", "gelu",
       "mish", "elu", "abs", "neg", "floor", "ceil", "sqrt", "exp", "log", "sin", "cos", "tan", "asin", "acos", "atan",
       "sinh", "cosh", "asinh", "acosh", "atanh", "round", "sign", "reciprocal", "erf", "max", "min", "pow", "gather",
       "lstm", "gru", "rnn", "simple_rnn", "convinteger", "basic_convinteger", "matmulinteger", "dynamicquantizelinear"]
BINARY = {"Add", "Sub", "Mul", "Div", "MatMul", "Concat", "Max", "Min", "Pow"}

TVM_IMPORTER = "TVM's ONNX importer does not support it"
# Cases export refuses, in one line matching the pattern: no import computes them right (frontend/onnx_nodes.py).
REFUSED = {
    "test_batchnorm_example_training_mode": "in training mode",
    "test_batchnorm_epsilon_training_mode": "in training mode",
    "test_resize_downsample_scales_linear": "downsamples",
    "test_resize_downsample_scales_cubic": "downsamples",
    "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside": "downsamples",
    "test_resize_downsample_scales_linear_align_corners": "downsamples",
    "test_resize_downsample_scales_cubic_align_corners": "downsamples",
}
for _name in ("scales_linear", "sizes_linear", "scales_cubic", "sizes_cubic"):
    REFUSED[f"test_resize_downsample_{_name}_antialias"] = "antialiases"
EXPECTED_FAILURES = {
    # 5.6e-5 off (1.6e-4 of max|ref|, over the 1e-4 bound) because the expected values are given to 4 decimals
    "test_averagepool_2d_ceil_last_window_starts_on_pad": "ONNX's expected output is rounded to 4 decimals",
    "test_maxpool_with_argmax_2d_precomputed_pads": TVM_IMPORTER + " (MaxPool indices output)",
    "test_maxpool_with_argmax_2d_precomputed_strides": TVM_IMPORTER + " (MaxPool indices output)",
    "test_reduce_max_bool_inputs": TVM_IMPORTER + " (ReduceMax of bool)",
    "test_resize_downsample_scales_linear_half_pixel_symmetric": TVM_IMPORTER + " (half_pixel_symmetric)",
    "test_resize_upsample_scales_linear_half_pixel_symmetric": TVM_IMPORTER + " (half_pixel_symmetric)",
}
for _name in ("upsample_scales_nearest_axes_2_3", "upsample_scales_nearest_axes_3_2", "upsample_sizes_nearest_axes_2_3",
              "upsample_sizes_nearest_axes_3_2", "tf_crop_and_resize_axes_2_3", "tf_crop_and_resize_axes_3_2",
              "upsample_sizes_nearest_not_larger", "upsample_sizes_nearest_not_smaller",
              "downsample_sizes_nearest_not_larger", "downsample_sizes_nearest_not_smaller"):
    EXPECTED_FAILURES[f"test_resize_{_name}"] = TVM_IMPORTER + " (Resize axes / keep_aspect_ratio_policy)"
for _name in ("4d_axis0", "4d_axis_negative_4", "4d_axis1", "4d_axis_negative_3", "4d_axis2", "4d_axis_negative_2",
              "4d_axis3", "4d_axis_negative_1", "default_axis", "2d_axis0", "2d_axis_negative_2", "2d_axis1",
              "2d_axis_negative_1", "3d_axis0_epsilon", "3d_axis_negative_3_epsilon", "3d_axis1_epsilon",
              "3d_axis_negative_2_epsilon", "3d_axis2_epsilon", "3d_axis_negative_1_epsilon"):
    EXPECTED_FAILURES[f"test_layer_normalization_{_name}"] = TVM_IMPORTER + " (LayerNormalization Mean/InvStdDev outputs)"
# ... so test_layer_normalization_output checks their output Y alone
for _name in ("reduce_max_empty_set", "reduce_max_empty_set_bool", "reduce_sum_empty_set",
              "reduce_sum_empty_set_non_reduced_axis_zero", "reduce_sum_square_empty_set", "reshape_allowzero_reordered",
              "slice_start_out_of_bounds", "split_zero_size_splits_opset13", "split_zero_size_splits_opset18"):
    EXPECTED_FAILURES[f"test_{_name}"] = "zero-sized tensors: model inputs and outputs must have every dimension >= 1"
for _name in ("1", "2", "nokeepdims"):
    EXPECTED_FAILURES[f"test_split_to_sequence_{_name}"] = "sequence outputs: model outputs are tensors"
for _types in ("float32_int64", "int64_float32", "float32_int32", "int32_float32", "float32_uint64", "float32_uint32"):
    EXPECTED_FAILURES[f"test_pow_types_{_types}"] = TVM_IMPORTER + " (Pow of mixed dtypes)"
for _types in ("int64_int64", "int32_int32"):
    EXPECTED_FAILURES[f"test_pow_types_{_types}"] = "TVM compiles power of floats only"
# dtypes the C++ runtime has no tensor type for
for _op in ("add", "div", "mul", "sub", "max", "min"):
    for _dtype in ("uint32", "uint64"):
        EXPECTED_FAILURES[f"test_{_op}_{_dtype}"] = f"{_dtype} model inputs: the runtime's tensors do not take them"


def _cases():
    from onnx.backend.test.loader import load_model_tests

    pattern = re.compile(r"^test_(" + "|".join(OPS) + r")(_|$)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if pattern.match(c.name) and "_expanded" not in c.name]


def freeze_constant_inputs(model, inputs):
    """Move every input but the data (and both operands of elementwise ops) into initializers."""
    graph = model.graph
    node_inputs = {name: (node.op_type, i) for node in graph.node for i, name in enumerate(node.input)}
    kept_inputs, kept_values = [], []
    for value_info, value in zip(list(graph.input), inputs):
        op_type, position = node_inputs.get(value_info.name, ("", 0))
        if position == 0 or op_type in BINARY:
            kept_inputs.append(value_info)
            kept_values.append(value)
        else:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), value_info.name))
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return model, kept_values


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node(case, tmp_path, request):
    if case.name in EXPECTED_FAILURES:
        # Run, and strictly: a fix turns the case red until the list is updated, so no reason outlives its cause.
        request.applymarker(pytest.mark.xfail(reason=EXPECTED_FAILURES[case.name], strict=True))
    inputs, expected = case.data_sets[0]
    model, inputs = freeze_constant_inputs(onnx.ModelProto.FromString(case.model.SerializeToString()), inputs)
    if case.name in REFUSED:
        with pytest.raises(ModelError, match=REFUSED[case.name]) as refused:
            tvm_ncnn.export(model, tmp_path / "node.so")
        assert "\n" not in str(refused.value)
        return
    try:
        tvm_ncnn.export(model, tmp_path / "node.so")
    except ModelError as err:
        pytest.fail(f"export failed: {err}")
    got = tvm_ncnn.load(tmp_path / "node.so")(*inputs)  # one array per output
    assert len(got) == len(expected)
    for out, ref in zip(got, expected):
        assert out.shape == ref.shape
        if ref.dtype.kind == "f":
            scale = max(float(np.abs(ref).max()), 1e-6) if ref.size else 1.0
            assert float(np.abs(out.astype(np.float64) - ref).max(initial=0)) <= 1e-4 * scale
        else:
            np.testing.assert_array_equal(out, ref)


LAYER_NORMS = [c for c in CASES if c.name.startswith("test_layer_normalization_")]


@pytest.mark.parametrize("case", LAYER_NORMS, ids=[c.name for c in LAYER_NORMS])
def test_layer_normalization_output(case, tmp_path):
    """Y alone of every LayerNormalization case (its Mean/InvStdDev outputs are what TVM's importer cannot take):
    each axis placed where it is computed right, in ncnn or in TVM."""
    inputs, expected = case.data_sets[0]
    model, inputs = freeze_constant_inputs(onnx.ModelProto.FromString(case.model.SerializeToString()), inputs)
    del model.graph.output[1:]
    for node in model.graph.node:
        del node.output[1:]
    tvm_ncnn.export(model, tmp_path / "y.so")
    got = tvm_ncnn.load(tmp_path / "y.so")(*inputs)[0]
    ref = expected[0]
    assert got.shape == ref.shape
    assert float(np.abs(got.astype(np.float64) - ref).max()) <= 1e-4 * max(float(np.abs(ref).max()), 1e-6)
