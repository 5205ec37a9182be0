"""Token tensors run in ncnn: Linear on tokens (Gemm), attention (one SDPA layer), the qkv
split, class token and position embedding -- a whole ViT in one ncnn region, equal to onnxruntime."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.ncnn.codegen import convert_region
from tvm_ncnn.partition.regions import partition, region_vars

from conftest import max_rel_error, onnxruntime_run
from transformer_nets import ConvAttentionHybrid, TinyViT

NETS = {"vit": (TinyViT, (1, 3, 32, 32)), "hybrid": (ConvAttentionHybrid, (1, 3, 16, 16))}


@pytest.fixture(scope="module", params=sorted(NETS))
def exported(request, tmp_path_factory):
    net, shape = NETS[request.param]
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp(request.param)
    onnx_path = zoo.to_onnx(net().eval(), str(tmp / "net.onnx"), shape)
    return onnx_path, tvm_ncnn.export(onnx_path, tmp / "net.so"), shape


def test_whole_transformer_is_one_ncnn_region(exported):
    onnx_path, result, _ = exported
    left = [(o.op, o.reason) for o in result.report.ops if o.place == "tvm"]
    assert result.report.regions == 1 and not left, left


def test_attention_layers(exported):
    onnx_path, _, _ = exported
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    layers = Counter(line.split()[0] for line in convert_region(mod[region_vars(mod)[0]]).param.splitlines()[2:])
    assert layers["SDPA"] >= 1 and "MatMul" not in layers and "Softmax" not in layers
    assert layers["Gemm"] >= 4 and layers["LayerNorm"] >= 2 and "Sigmoid" not in layers


def test_matches_onnxruntime(exported):
    onnx_path, result, shape = exported
    x = np.random.default_rng(3).standard_normal(shape).astype("float32")
    assert max_rel_error(tvm_ncnn.load(result.path).single(x), onnxruntime_run(onnx_path, x)) <= 1e-4


def test_token_rows_keep_values_without_offload(exported, tmp_path):
    """The rewrite that gives token tensors their batch of 1 back changes no value: TVM alone, on the rewritten
    module, equals onnxruntime too."""
    import tvm
    from tvm import relax

    from tvm_ncnn.frontend.unit_batch import restore_unit_batch

    onnx_path, _, shape = exported
    mod = restore_unit_batch(tvm_ncnn.import_model(onnx_path).mod)
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    x = np.random.default_rng(4).standard_normal(shape).astype("float32")
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    assert max_rel_error(got, onnxruntime_run(onnx_path, x)) <= 1e-5
