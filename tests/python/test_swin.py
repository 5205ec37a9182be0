"""Window attention (issue 24 item 3): shapes computed from static shapes fold to constants before TVM's importer
(frontend/static_shapes.py), rank-6 window partitions run as ncnn Permutes (frontend/window_layout.py).

Small graphs of the legacy exporter's Shape -> Gather -> arithmetic -> Concat chains feeding Pad, Reshape,
Slice and Expand export and match onnxruntime; a dynamic-size input keeps its chain symbolic. Swin-T (developed
on) and window-attention models export with export's own verification on, in one ncnn region, and match
onnxruntime: a Swin-V2-CR (its cosine attention was then taken into ncnn: unit_batch's lifted reductions), and,
held out (checked only here), Swin-T at 160x160 where the windows need padding and a Swin-V2 with 8x8 windows
at 256x256."""

from __future__ import annotations

import sys
import types

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import tvm_ncnn
from tvm_ncnn.frontend import static_shapes
from tvm_ncnn.frontend.window_layout import merged_permute, permute_steps

from conftest import max_rel_error, onnx_model, onnxruntime_run

TOLERANCE = 1e-4
LEVELS = 12


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _dim(x, axis, out):
    """Shape(x)[axis] as a [1] tensor: the legacy exporter's x.size(axis)."""
    return [helper.make_node("Shape", [x], [f"{out}_shape"]),
            helper.make_node("Gather", [f"{out}_shape", f"axis{axis}"], [f"{out}_s"], axis=0),
            helper.make_node("Unsqueeze", [f"{out}_s", "zero1"], [out])]


def chain_model(kind: str, shape=(1, 4, 10, 10), dims=None):
    """One op whose shape operand is computed from the input's shape. dims: the input's dims (names for
    dynamic ones), default `shape`."""
    inits = [_i64("zero1", [0]), _i64("four", [4]), _i64("two", [2]), _i64("zeros4", [0, 0, 0, 0]),
             *(_i64(f"axis{a}", a) for a in range(4))]
    # s = x.reshape(0, C, H + (2 - H % 2) % 2, W), LEVELS times over: H rounded up to even as Swin pads to whole
    # windows (H is even here). onnx's shape inference propagates no values through Mod, so each level's shape is
    # known only once the level before has folded; onnxslim alternates folding and inference at most 10 rounds
    # (ONNXSLIM_MAX_ITER), fewer than Swin-T's 15 blocks and merges in a row, and leaves the rest.
    nodes, source = [], "x"
    for level in range(LEVELS):
        p, out = f"l{level}", "s" if level == LEVELS - 1 else f"l{level}_out"
        nodes += _dim(source, 1, f"{p}c") + _dim(source, 2, f"{p}h") + _dim(source, 3, f"{p}w") + [
            helper.make_node("Mod", [f"{p}h", "two"], [f"{p}h_m"]),
            helper.make_node("Sub", ["two", f"{p}h_m"], [f"{p}h_r"]),
            helper.make_node("Mod", [f"{p}h_r", "two"], [f"{p}h_pad"]),
            helper.make_node("Add", [f"{p}h", f"{p}h_pad"], [f"{p}h1"]),
            helper.make_node("Concat", ["zero1", f"{p}c", f"{p}h1", f"{p}w"], [f"{p}same"], axis=0),
            helper.make_node("Reshape", [source, f"{p}same"], [out])]
        source = out
    nodes += _dim("s", 2, "h") + _dim("s", 3, "w") + _dim("s", 1, "c")
    if kind == "Pad":  # Swin's window padding: pad H and W at the end up to a multiple of 4
        for d in "hw":
            nodes += [helper.make_node("Mod", [d, "four"], [f"{d}_m"]),
                      helper.make_node("Sub", ["four", f"{d}_m"], [f"{d}_r"]),
                      helper.make_node("Mod", [f"{d}_r", "four"], [f"{d}_pad"])]
        nodes += [helper.make_node("Concat", ["zeros4", "zero1", "zero1", "h_pad", "w_pad"], ["pads"], axis=0),
                  helper.make_node("Pad", ["s", "pads"], ["y"], mode="constant")]
    elif kind == "Reshape":  # window partition: [1, C, H, W] -> [1, C, H/2, 2, W] -> ... as rank-4 [1, C*H/2, 2, W]
        nodes += [helper.make_node("Div", ["h", "two"], ["h2"]),
                  helper.make_node("Mul", ["c", "h2"], ["ch2"]),
                  helper.make_node("Concat", ["zero1", "ch2", "two", "w"], ["target"], axis=0),
                  helper.make_node("Reshape", ["s", "target"], ["r"]),
                  helper.make_node("Relu", ["r"], ["y"])]
    elif kind == "Slice":  # x[:, :, :H - 2, W // 2:]
        nodes += [helper.make_node("Sub", ["h", "two"], ["h_end"]),
                  helper.make_node("Div", ["w", "two"], ["w_start"]),
                  helper.make_node("Concat", ["zero1", "zero1"], ["starts_a"], axis=0),
                  helper.make_node("Concat", ["h_end", "w_end"], ["ends"], axis=0),
                  helper.make_node("Concat", ["zero1", "w_start"], ["starts"], axis=0),
                  helper.make_node("Slice", ["s", "starts", "ends", "axes23"], ["y"])]
        nodes.insert(-1, helper.make_node("Identity", ["w"], ["w_end"]))
        inits.append(_i64("axes23", [2, 3]))
    elif kind == "Expand":  # a per-channel bias broadcast to x's shape, then added
        inits.append(numpy_helper.from_array(np.arange(shape[1], dtype=np.float32).reshape(1, -1, 1, 1) / 4,
                                             "bias"))
        nodes += [helper.make_node("Concat", ["zero1", "c", "h", "w"], ["sizes0"], axis=0),
                  helper.make_node("Add", ["sizes0", "one_first"], ["sizes"]),
                  helper.make_node("Expand", ["bias", "sizes"], ["b"]),
                  helper.make_node("Mul", ["s", "b"], ["y"])]
        inits.append(_i64("one_first", [1, 0, 0, 0]))
    else:
        raise ValueError(kind)
    return onnx_model(nodes, {"x": dims or shape}, ["y"], inits, kind.lower())


@pytest.mark.parametrize("kind", ["Pad", "Reshape", "Slice", "Expand"])
def test_shape_chain_exports_and_matches_onnxruntime(kind, tmp_path):
    onnx_path = str(tmp_path / f"{kind}.onnx")
    onnx.save(chain_model(kind, shape=(1, 4, 10, 10)), onnx_path)
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "m.so"))  # verifies against onnxruntime itself
    assert result.report.ncnn_flops_share == pytest.approx(1.0)
    x = np.random.default_rng(0).standard_normal((1, 4, 10, 10)).astype(np.float32)
    ref = onnxruntime_run(onnx_path, x)
    got = tvm_ncnn.load(str(tmp_path / "m.so"), threads=1).single(x)
    assert max_rel_error(got, ref) <= TOLERANCE


@pytest.mark.parametrize("kind", ["Pad", "Reshape", "Slice", "Expand"])
def test_static_chain_folds_to_constants(kind):
    model, folded = static_shapes.fold(chain_model(kind))
    assert folded == 3 * (LEVELS + 1) and not any(n.op_type in ("Shape", "Gather", "Mod", "Div") for n in model.graph.node)


def test_fold_evaluates_at_the_models_opset():
    """Opset 11's Unsqueeze takes its axes as an attribute (13's as an input): folded as the model means it."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i"], ["g"], axis=0),
             helper.make_node("Unsqueeze", ["g"], ["u"], axes=[0]),
             helper.make_node("Concat", ["u", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    inits = [_i64("i", 1), _i64("rest", [-1])]
    model = onnx_model(nodes, {"x": [1, 4, 6, 6]}, ["y"], inits, "opset11", opset=11)
    model, folded = static_shapes.fold(model)
    targets = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert folded == 1 and [n.op_type for n in model.graph.node] == ["Reshape"]
    assert targets["target"].tolist() == [4, -1]


@pytest.mark.parametrize("kind", ["Pad", "Reshape", "Slice", "Expand"])
def test_onnxslim_alone_leaves_the_chain(kind):
    """The case static_shapes exists for: more levels of shape arithmetic than onnxslim's rounds."""
    import onnxslim

    assert any(n.op_type == "Shape" for n in onnxslim.slim(chain_model(kind)).graph.node)


@pytest.mark.parametrize("kind", ["Pad", "Reshape", "Slice", "Expand"])
def test_dynamic_input_keeps_its_shape_chain(kind):
    """A Shape of a tensor with a symbolic H or W is never folded (not even its static C): the chain stays."""
    model, folded = static_shapes.fold(chain_model(kind, dims=(1, 4, "H", "W")))
    assert folded == 0 and sum(n.op_type == "Shape" for n in model.graph.node) == 3 * (LEVELS + 1)


@pytest.mark.parametrize("shape, perm", [([1, 8, 7, 8, 7, 96], [0, 1, 3, 2, 4, 5]),
                                         ([1, 28, 2, 28, 2, 96], [0, 1, 3, 4, 2, 5]),
                                         ([1, 2, 2, 7, 7, 3], [0, 1, 3, 2, 4, 5]),
                                         ([2, 1, 3, 4, 5, 6], [5, 4, 3, 2, 1, 0])])
def test_merged_permute_moves_the_same_data(shape, perm):
    x = np.random.default_rng(0).standard_normal(shape)
    merged, order = merged_permute(shape, perm)
    assert np.array_equal(np.transpose(x, perm).ravel(), np.transpose(x.reshape(merged), order).ravel())


@pytest.mark.parametrize("shape, perm", [([1, 8, 4, 2, 4, 2], [0, 1, 3, 5, 2, 4]),   # MobileViT-v2's unfold
                                         ([1, 8, 2, 2, 4, 4], [0, 1, 4, 2, 5, 3]),   # and its fold
                                         ([2, 3, 4, 5, 6, 7], [5, 3, 1, 4, 0, 2])])
def test_permute_steps_move_the_same_data_in_at_most_four_axes(shape, perm):
    """A permutation moving five axes after merging becomes Permutes of at most four axes (ncnn's rank)."""
    x = np.random.default_rng(0).standard_normal(shape)
    y = x.ravel()
    for merged, order in permute_steps(shape, perm):
        assert len(merged) <= 4
        y = np.transpose(y.reshape(merged), order).ravel()
    assert np.array_equal(y, np.transpose(x, perm).ravel())


class Unfold(torch.nn.Module):
    """MobileViT-v2's unfold to [C, patch, tokens] and fold back around a per-token 1x1 conv: five axes move
    ([C, nh, ph, nw, pw] to [C, ph, pw, nh, nw]), one more than an ncnn Permute takes."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Conv2d(8, 8, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        p = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c, 4, -1)
        p = self.mix(p)
        return p.reshape(b, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h, w)


def test_a_five_axis_unfold_runs_in_one_region(tmp_path):
    onnx_path = tvm_ncnn.zoo.to_onnx(Unfold().eval(), str(tmp_path / "u.onnx"), (1, 8, 12, 16))
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "u.so"))
    assert result.report.regions == 1 and result.report.ncnn_flops_share == pytest.approx(1.0)
    x = np.random.default_rng(0).standard_normal((1, 8, 12, 16)).astype(np.float32)
    got = tvm_ncnn.load(str(tmp_path / "u.so"), threads=1).single(x)
    assert max_rel_error(got, onnxruntime_run(onnx_path, x)) <= TOLERANCE


# ------------------------------------------------------------------------------------------- whole models

SWINS = {  # id: (timm name, input size, created with img_size), the first developed on, the others held out
    "swin_t": ("swin_tiny_patch4_window7_224", 224, False),
    "swinv2_cr_t": ("swinv2_cr_tiny_ns_224", 224, False),
    "swin_t_160": ("swin_tiny_patch4_window7_224", 160, True),  # 40x40 tokens: windows padded to 42
    "swinv2_w8": ("swinv2_tiny_window8_256", 256, False),
}


def _swin_onnx(key: str, path: str):
    import torch

    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import timm

    name, size, resized = SWINS[key]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **({"img_size": size} if resized else {})).eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, size, size), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return size


@pytest.mark.parametrize("key", list(SWINS))
def test_swin_exports_in_one_region_and_matches_onnxruntime(key, tmp_path):
    onnx_path = str(tmp_path / f"{key}.onnx")
    size = _swin_onnx(key, onnx_path)
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "m.so"))  # verify=True: refuses a mismatch
    assert result.report.ncnn_flops_share >= 0.99
    assert result.report.regions == 1
    x = np.random.default_rng(1).standard_normal((1, 3, size, size)).astype(np.float32)
    got = tvm_ncnn.load(str(tmp_path / "m.so"), threads=1).single(x)
    assert max_rel_error(got, onnxruntime_run(onnx_path, x)) <= TOLERANCE
