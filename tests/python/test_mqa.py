"""Multi-query attention (issue 24 item 5): one shared K/V head broadcast over the query heads. A MatMul whose
leading (head) dimensions broadcast, [1, h, M, K] @ [1, 1, K, N], runs as ncnn's MatMul, which reuses an operand's
channel or depth of size 1 (ncnn/ops/matmul.py); an operand of lower rank is reshaped to the other's rank first.

Small hand-built ONNX graphs of the broadcasting MatMul (either side, rank 3 against 4, rank 5 against 3, the
transB form, a whole MQA) export in one ncnn region and match onnxruntime. timm's MobileNetV4 hybrid (its
MultiQueryAttention2d, developed on) exports in one region with all its FLOPs in ncnn and matches onnxruntime;
the large variant was held out (checked only here)."""

from __future__ import annotations

import sys
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tvm_ncnn

from conftest import max_rel_error

TOLERANCE = 1e-4


def _save(nodes, inputs: dict, output: str, path, inits=()) -> str:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
                                           for n, s in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def _check(onnx_path: str, inputs: dict, tmp_path) -> None:
    """Exported (export verifies against onnxruntime itself) in one ncnn region holding every FLOP, and equal to
    onnxruntime within the suite's tolerance."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs.items()}
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "m.so"))
    assert [o.reason for o in result.report.ops if o.place == "tvm"] == []
    assert result.report.regions == 1
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = tvm_ncnn.load(result.path, threads=1)(*feeds.values())[0]
    assert max_rel_error(got, ref) <= TOLERANCE


# a @ b with leading dimensions that broadcast (numpy's rules); a ReLU after so the region is more than the MatMul
MATMULS = {
    "shared_right": ([1, 4, 16, 8], [1, 1, 8, 12]),    # MQA's q @ k^T: one K head for every query head
    "shared_left": ([1, 1, 16, 8], [1, 4, 8, 12]),
    "right_rank3": ([1, 4, 16, 8], [1, 8, 12]),        # the missing head axis counts as 1
    "left_rank3": ([1, 16, 8], [1, 3, 8, 12]),
    "rank5_both": ([1, 2, 1, 16, 8], [1, 1, 3, 8, 12]),  # each side broadcast along another axis
    "rank5_rank3": ([1, 2, 3, 16, 8], [1, 8, 12]),     # ncnn 4-D against 2-D: reshaped to equal ranks first
}


@pytest.mark.parametrize("kind", sorted(MATMULS))
def test_broadcast_matmul(kind, tmp_path):
    a, b = MATMULS[kind]
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    _check(_save(nodes, {"a": a, "b": b}, "y", tmp_path / f"{kind}.onnx"), {"a": a, "b": b}, tmp_path)


def test_broadcast_matmul_transposed_right(tmp_path):
    """q @ k.transpose(-2, -1) with one K head: MatMul's transB with the broadcast."""
    q, k = [1, 4, 16, 8], [1, 1, 12, 8]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    _check(_save(nodes, {"q": q, "k": k}, "y", tmp_path / "transb.onnx"), {"q": q, "k": k}, tmp_path)


def _mqa_graph(path, heads=4, dim=8, channels=16, size=6, kv_stride=2) -> str:
    """timm's MultiQueryAttention2d as its TorchScript export spells it: q from a 1x1 conv split into heads, one
    K and one V head from a strided depthwise conv and a 1x1 conv each, softmax((q * s) @ (k^T * s)) @ v, the
    heads merged back into channels and projected."""
    rng = np.random.default_rng(1)

    def weight(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32),
                                       name)

    def i64(name, values):
        return numpy_helper.from_array(np.array(values, dtype=np.int64), name)

    tokens, kv_tokens = size * size, (size // kv_stride) ** 2
    inits = [weight("wq", heads * dim, channels, 1, 1), weight("wk_dw", channels, 1, 3, 3), weight("wk", dim, channels, 1, 1),
             weight("wv_dw", channels, 1, 3, 3), weight("wv", dim, channels, 1, 1), weight("wo", channels, heads * dim, 1, 1),
             numpy_helper.from_array(np.array(dim ** -0.25, dtype=np.float32), "s"),
             i64("q_shape", [1, heads, dim, tokens]), i64("kv_shape", [1, 1, dim, kv_tokens]),
             i64("o_shape", [1, heads * dim, size, size])]
    dw = dict(kernel_shape=[3, 3], strides=[kv_stride] * 2, pads=[1, 1, 1, 1], group=channels)
    nodes = [
        helper.make_node("Conv", ["x", "wq"], ["q0"]),
        helper.make_node("Reshape", ["q0", "q_shape"], ["q1"]),
        helper.make_node("Transpose", ["q1"], ["q"], perm=[0, 1, 3, 2]),               # [1, h, N, d]
        helper.make_node("Conv", ["x", "wk_dw"], ["k0"], **dw),
        helper.make_node("Conv", ["k0", "wk"], ["k1"]),
        helper.make_node("Reshape", ["k1", "kv_shape"], ["kt"]),                         # [1, 1, d, Nk]: k^T
        helper.make_node("Conv", ["x", "wv_dw"], ["v0"], **dw),
        helper.make_node("Conv", ["v0", "wv"], ["v1"]),
        helper.make_node("Reshape", ["v1", "kv_shape"], ["v2"]),
        helper.make_node("Transpose", ["v2"], ["v"], perm=[0, 1, 3, 2]),               # [1, 1, Nk, d]
        helper.make_node("Mul", ["q", "s"], ["qs"]),
        helper.make_node("Mul", ["kt", "s"], ["kts"]),
        helper.make_node("MatMul", ["qs", "kts"], ["scores"]),                           # [1, h, N, Nk]
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["o0"]),                               # [1, h, N, d]
        helper.make_node("Transpose", ["o0"], ["o1"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["o1", "o_shape"], ["o2"]),
        helper.make_node("Conv", ["o2", "wo"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["y"]),
    ]
    return _save(nodes, {"x": [1, channels, size, size]}, "y", path, inits)


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_multi_query_attention(kv_stride, tmp_path):
    shape = [1, 16, 6, 6]
    _check(_mqa_graph(tmp_path / "mqa.onnx", kv_stride=kv_stride), {"x": shape}, tmp_path)


def _timm_onnx(name: str, size: int, path) -> str:
    """timm's model with random weights, exported as zoo.modern does. timm starts every layer scale at 1e-5, which
    leaves each attention's share of its block's output below the tolerance: the scales are drawn in [0.2, 0.5]
    instead (larger ones make the random network's activations grow without bound), so the comparison sees the
    attention."""
    import torch

    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("layer_scale.gamma"):
                param.uniform_(0.2, 0.5)
        torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(path), input_names=["input"],
                          opset_version=17, dynamo=False)
    return str(path)


# name -> input size (timm's are 256 and 384), small enough to export within a minute; the large variant was held
# out while developing
TIMM_MQA = {"mobilenetv4_hybrid_medium": 224, "mobilenetv4_hybrid_large": 224}


@pytest.mark.parametrize("name", sorted(TIMM_MQA))
def test_mobilenetv4_hybrid(name, tmp_path):
    from conftest import onnxruntime_run

    size = TIMM_MQA[name]
    onnx_path = _timm_onnx(name, size, tmp_path / f"{name}.onnx")
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "m.so"))  # verify=True: refuses a mismatch
    left = [(o.op, o.reason) for o in result.report.ops if o.place == "tvm"]
    assert result.report.regions == 1, left
    assert result.report.ncnn_flops_share >= 0.995, left
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    ref = onnxruntime_run(onnx_path, x)
    assert np.abs(ref).max() > 1e-3  # timm's own layer scales shrink the output to ~1e-15
    assert max_rel_error(tvm_ncnn.load(result.path, threads=1).single(x), ref) <= TOLERANCE
