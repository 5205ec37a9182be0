"""Partitioning: whole regions, fallbacks to TVM with reasons, and the ncnn graph text."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.ncnn.codegen import convert_region
from tvm_ncnn.compile.lower import TvmFallbackWarning
from tvm_ncnn.partition.regions import partition, region_vars, report

from conftest import max_rel_error, onnxruntime_run
from nets import ShuffleBlock, SplitByUnsupported


def conv_chain(n_convs: int) -> tvm.IRModule:
    """conv -> bias -> relu, n times: every op offloadable."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 16, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = x
            for _ in range(n_convs):
                w = relax.const(rng.standard_normal((4, 4, 3, 3)).astype("float32"))
                b = relax.const(rng.standard_normal((1, 4, 1, 1)).astype("float32"))
                y = bb.emit(relax.op.nn.conv2d(y, w, padding=(1, 1)))
                y = bb.emit(relax.op.add(y, b))
                y = bb.emit(relax.op.nn.relu(y))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return bb.get()


def test_offloadable_chain_is_one_region():
    mod = partition(tvm_ncnn.import_model(conv_chain(6)).mod)
    regions = region_vars(mod)
    assert len(regions) == 1
    placement = report(mod)
    assert placement.regions == 1 and all(op.place == "ncnn:0" for op in placement.ops)
    # conv + bias + relu fuse into one ncnn Convolution layer each
    param = convert_region(mod[regions[0]]).param
    assert param.count("Convolution") == 6 and "ReLU" not in param and "BinaryOp" not in param


def test_relax_module_exports_and_matches_tvm(tmp_path):
    mod = conv_chain(3)
    x = np.random.default_rng(2).standard_normal((1, 4, 16, 16)).astype("float32")
    ref_exec = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    ref = relax.VirtualMachine(ref_exec, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    tvm_ncnn.export(mod, tmp_path / "chain.so")
    assert max_rel_error(tvm_ncnn.load(tmp_path / "chain.so").single(x), ref) <= 1e-4


def test_unsupported_op_falls_back_to_tvm(tmp_path):
    onnx_path = zoo.to_onnx(SplitByUnsupported().eval(), str(tmp_path / "split.onnx"), (1, 3, 20, 20))
    result = tvm_ncnn.export(onnx_path, tmp_path / "split.so")
    placement = result.report
    erf = [op for op in placement.ops if op.op == "relax.erf"]
    assert erf and erf[0].place == "tvm" and "no ncnn layer" in erf[0].reason
    assert placement.regions == 2
    x = np.random.default_rng(3).standard_normal((1, 3, 20, 20)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(tmp_path / "split.so").single(x), onnxruntime_run(onnx_path, x)) <= 1e-4


class _MinusBatchMean(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y - y.mean(dim=0, keepdim=True)


def test_batch_that_mixes_images_stays_in_tvm_with_the_reason(tmp_path):
    """(A batch whose images stay apart runs once per image in ncnn: test_batch.py.)"""
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(_MinusBatchMean().eval(), str(tmp_path / "b2.onnx"), (2, 3, 12, 12))
    result = tvm_ncnn.export(onnx_path, tmp_path / "b2.so")
    assert result.report.regions == 0 and result.report.batch_loop == 0
    assert all("batch 2" in op.reason for op in result.report.ops if op.op == "relax.nn.conv2d")
    x = np.random.default_rng(4).standard_normal((2, 3, 12, 12)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(tmp_path / "b2.so").single(x), onnxruntime_run(onnx_path, x)) <= 1e-4


def test_no_offload_exports_pure_tvm(tmp_path):
    result = tvm_ncnn.export(conv_chain(2), tmp_path / "ref.so", offload=False)
    assert result.report.regions == 0
    assert tvm_ncnn.load(tmp_path / "ref.so").info["ncnn_regions"] == 0


def test_shufflenet_unit_becomes_pnnx_layers(tmp_path):
    """chunk -> Slice and view/transpose/reshape -> ShuffleChannel: the layers native ncnn (pnnx) runs."""
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(ShuffleBlock().eval(), str(tmp_path / "shuffle.onnx"), (1, 16, 10, 10))
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    param = convert_region(mod[region_vars(mod)[0]]).param
    layers = [line.split()[0] for line in param.splitlines()[2:]]
    assert layers.count("ShuffleChannel") == 1 and "Permute" not in layers and "Reshape" not in layers
    assert layers.count("Slice") == 1 and "Crop" not in layers and "Split" not in layers
    assert "0=2" in next(line for line in param.splitlines() if line.startswith("ShuffleChannel"))
    tvm_ncnn.export(onnx_path, tmp_path / "shuffle.so")
    x = np.random.default_rng(5).standard_normal((1, 16, 10, 10)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(tmp_path / "shuffle.so").single(x), onnxruntime_run(onnx_path, x)) <= 1e-4


def test_weights_are_stored_once(tmp_path):
    """The weights live in the ncnn module's bytes only: no const_loader copy next to them."""
    result = tvm_ncnn.export(conv_chain(6), tmp_path / "chain.so")
    data = open(result.path, "rb").read()
    assert b"const_loader" not in data
    w = conv_chain(6)["main"].body.blocks[0].bindings[0].value.args[1].value.numpy()
    assert data.count(w.tobytes()) == 1


def _lrn_onnx(path, size: int) -> str:
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=1e-3, beta=0.75, bias=2.0)
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 16, 8, 8]) for n in ("x", "y")]
    graph = helper.make_graph([node], "lrn", info[:1], info[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_lrn_is_one_ncnn_layer(tmp_path):
    x = np.random.default_rng(6).standard_normal((1, 16, 8, 8)).astype("float32") * 4
    onnx_path = _lrn_onnx(tmp_path / "lrn5.onnx", 5)
    result = tvm_ncnn.export(onnx_path, tmp_path / "lrn5.so")
    assert result.report.regions == 1 and all(op.place == "ncnn:0" for op in result.report.ops)
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    param = convert_region(mod[region_vars(mod)[0]]).param
    assert [line.split()[0] for line in param.splitlines()[2:]] == ["Input", "LRN"]
    assert max_rel_error(tvm_ncnn.load(result.path).single(x), onnxruntime_run(onnx_path, x)) <= 1e-5


def test_torch_lrn_and_zero_pad_run_in_ncnn(tmp_path):
    """torch's ONNX exporter spells LRN as Mul, Reshape, Pad, AveragePool, ...: still one LRN layer; and a
    constant Pad of its own becomes ncnn Padding, not a TVM kernel."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.LocalResponseNorm(3, 1e-2, 0.75, 1.5),
                              torch.nn.ZeroPad2d((1, 2, 0, 1)), torch.nn.ReLU()).eval()
    onnx_path = zoo.to_onnx(net, str(tmp_path / "lrn_pad.onnx"), (1, 3, 12, 12))
    result = tvm_ncnn.export(onnx_path, tmp_path / "lrn_pad.so")
    assert result.report.regions == 1 and all(op.place == "ncnn:0" for op in result.report.ops)
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    layers = [line.split()[0] for line in convert_region(mod[region_vars(mod)[0]]).param.splitlines()[2:]]
    assert layers.count("LRN") == 1 and layers.count("Padding") == 1
    x = np.random.default_rng(7).standard_normal((1, 3, 12, 12)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(result.path).single(x), onnxruntime_run(onnx_path, x)) <= 1e-5


def _conv_op_conv(op) -> tvm.IRModule:
    """conv -> op -> conv on a 1x8x32x32 tensor."""
    rng = np.random.default_rng(1)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 32, 32), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            w1, w2 = (relax.const(rng.standard_normal((8, 8, 1, 1)).astype("float32")) for _ in range(2))
            y = bb.emit(op(bb.emit(relax.op.nn.conv2d(x, w1))))
            out = bb.emit_output(bb.emit(relax.op.nn.conv2d(y, w2)))
        bb.emit_func_output(out)
    return bb.get()


def test_export_warns_when_tvm_keeps_tensor_work(tmp_path):
    """An erf on a whole feature map is 0.4% of the FLOPs but a serial loop that splits the region: warned,
    by name; a model wholly in ncnn exports silently."""
    with pytest.warns(TvmFallbackWarning, match=r"1 ops stay in TVM .*2 ncnn regions\): 1x erf"):
        tvm_ncnn.export(_conv_op_conv(relax.op.erf), tmp_path / "erf.so")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TvmFallbackWarning)
        tvm_ncnn.export(_conv_op_conv(relax.op.sin), tmp_path / "sin.so")


def test_power_of_a_negative_base(tmp_path):
    """x ** 2 of negative values (a decomposed LayerNorm squares x - mean) runs in ncnn as a UnaryOp square;
    ncnn's BinaryOp pow, exp(2 log x), would give NaN. x ** 3 stays in TVM, with the reason."""
    x = np.linspace(-3, 3, 8 * 32 * 32, dtype="float32").reshape(1, 8, 32, 32)
    for exponent, place in ((2.0, "ncnn:0"), (3.0, "tvm")):
        mod = _conv_op_conv(lambda y, p=exponent: relax.op.power(y, relax.const(p, "float32")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TvmFallbackWarning)
            result = tvm_ncnn.export(mod, tmp_path / "pow.so")
        power = next(o for o in result.report.ops if o.op == "relax.power")
        assert power.place == place, power
        ref = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
        expected = relax.VirtualMachine(ref, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
        assert max_rel_error(tvm_ncnn.load(result.path).single(x), expected) <= 1e-5


class CopiesBetweenTvmOps(torch.nn.Module):
    """conv, a cumulative sum (no ncnn layer), a reshape, split and concat of what it computed, another
    cumulative sum, conv: the reshape, split and concat between the two sums would be an ncnn region that only copies TVM's values
    in and out (YOLOv10's NMS-free head had two between its top-ks)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        r = self.a(x).cumsum(3).reshape(1, 8, 8, 32)
        left, right = r.split(16, dim=3)  # a split's parts feeding the concat: the region's ops in order
        y = torch.cat([right, left, r], 3).cumsum(2)
        return self.b(y.reshape(1, 8, 16, 32))


def test_a_region_that_only_moves_tvm_data_stays_in_tvm(tmp_path):
    from tvm_ncnn.partition.copy_only import REASON

    onnx_path = zoo.to_onnx(CopiesBetweenTvmOps().eval(), str(tmp_path / "c.onnx"), (1, 3, 16, 16))
    with pytest.warns(TvmFallbackWarning):
        result = tvm_ncnn.export(onnx_path, tmp_path / "c.so")
    moved = [op for op in result.report.ops if op.op in ("relax.reshape", "relax.split", "relax.concat")
             and op.place == "tvm"]
    assert result.report.regions == 2 and all(op.reason == REASON for op in moved)
    assert {op.op for op in moved} == {"relax.reshape", "relax.split", "relax.concat"}
    x = np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype("float32")
    assert max_rel_error(tvm_ncnn.load(tmp_path / "c.so").single(x), onnxruntime_run(onnx_path, x)) <= 1e-4


def test_a_model_input_only_moved_still_runs_in_ncnn():
    """A region fed by the model's input is no copy of TVM's values: it stays (a model of a lone reshape)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 8, 8), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.reshape(x, [1, 4, 64])))
        bb.emit_func_output(out)
    assert report(partition(tvm_ncnn.import_model(bb.get()).mod)).regions == 1
