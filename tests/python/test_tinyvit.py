"""TinyViT (issue 24 item 5): window attention on channels-last [1, H, W, C] maps, padded to whole windows and
cropped back, with per-head attention biases gathered from a table by a constant index matrix, then a depthwise
conv between two transposes and a LayerNorm MLP.

tiny_vit_5m_224 exported in 5 ncnn regions before the Swin work (its rank-6 window partition and reverse stayed in
TVM); frontend/window_layout.py's rank-5 permutes and static_shapes.py's folded pad chains took it into one, so
nothing TinyViT-specific was needed for that. Its attention then ran as MatMul, BinaryOp, Softmax, MatMul: k comes
tokens-first and permuted to k^T in one Transpose, and the gathered bias is added between the scores and the
softmax. ncnn/ops/attention.py now takes both (a Permute of k, SDPA's attn_mask input), so attention is one SDPA
layer, as pnnx writes F.scaled_dot_product_attention(attn_mask=...) -- except over several windows with a bias per
head (stage 2 of tiny_vit_5m_224): SDPA would need the bias copied once per window.

These tests: hand-built ONNX graphs of the block (padded and unpadded windows, one window without a partition,
non-square maps) and of attention with each mask form, timm's own TinyVitBlock through the legacy exporter (its
pads come from a Shape->Mod->ConstantOfShape chain) and whole models (bias tables randomized: timm initializes them
to zeros, which onnxslim then drops), each exported with export's own verification on and compared with
onnxruntime here. tiny_vit_5m_224 was developed on; tiny_vit_11m_224 was held out (first run once the region
work was done; it passed then, and again after the SDPA change)."""

from __future__ import annotations

import itertools
import sys
import types
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import tvm_ncnn
from tvm_ncnn.ncnn.codegen import convert_region
from tvm_ncnn.partition.regions import partition, region_vars

from conftest import max_rel_error, onnx_model, onnxruntime_run

TOLERANCE = 1e-4


def bias_index_table(window: int) -> np.ndarray:
    """[N, N] index of each query/key pair's offset (|dy|, |dx|) in the per-head bias table, as TinyViT numbers
    them (first seen first)."""
    points = list(itertools.product(range(window), range(window)))
    offsets: dict = {}
    return np.array([offsets.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(offsets))
                     for a in points for b in points], dtype=np.int64).reshape(len(points), len(points))


class _Graph:
    def __init__(self, seed: int):
        self.nodes, self.inits, self.rng, self.count = [], [], np.random.default_rng(seed), 0

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, *shape, scale=None) -> str:
        scale = scale if scale is not None else 1 / np.sqrt(shape[0])
        return self.const(self.rng.standard_normal(shape) * scale)

    def op(self, kind: str, *inputs, n_out: int = 1, **attrs):
        self.count += 1
        outs = [f"t{self.count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(kind, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def reshape(self, x, shape):
        return self.op("Reshape", x, self.const(shape, np.int64))

    def linear(self, x, cin, cout):
        return self.op("Add", self.op("MatMul", x, self.weight(cin, cout)), self.weight(cout, scale=0.1))

    def layer_norm(self, x, c):
        return self.op("LayerNormalization", x, self.const(1 + 0.1 * self.rng.standard_normal(c)),
                       self.weight(c, scale=0.1), axis=-1, epsilon=1e-5)

    def model(self, y: str, x_shape, name: str) -> onnx.ModelProto:
        """The model from graph input "x" of `x_shape` to `y`, output as "y"."""
        self.nodes.append(helper.make_node("Identity", [y], ["y"]))
        return onnx_model(self.nodes, {"x": x_shape}, ["y"], self.inits, name)

    def gelu(self, x):  # erf form, as the legacy exporter writes nn.GELU
        half = self.op("Mul", x, self.op("Add", self.op("Erf", self.op("Div", x, self.const(np.sqrt(2)))),
                                          self.const(1.0)))
        return self.op("Mul", half, self.const(0.5))


def window_block_model(h: int, w: int, window: int, c: int = 16, heads: int = 2, seed: int = 0,
                       bias: bool = True) -> onnx.ModelProto:
    """One TinyViT block on a [1, C, H, W] input, written node by node as the legacy exporter writes it. bias=False:
    no attention bias (timm's zero-initialized table, which onnxslim drops)."""
    g = _Graph(seed)
    d, n = c // heads, window * window
    x = g.op("Transpose", "x", perm=[0, 2, 3, 1])  # the stage's channels-last [1, H, W, C]
    pad_b, pad_r = -h % window, -w % window
    ph, pw = h + pad_b, w + pad_r
    nh, nw = ph // window, pw // window
    t = x
    if (h, w) != (window, window):  # TinyViT attends over the whole map when it is one window
        if pad_b or pad_r:
            t = g.op("Pad", t, g.const([0, 0, 0, 0, 0, pad_b, pad_r, 0], np.int64), mode="constant")
        t = g.reshape(t, [1, nh, window, nw, window, c])
        t = g.op("Transpose", t, perm=[0, 1, 3, 2, 4, 5])
    t = g.reshape(t, [nh * nw, n, c])
    # attention over each window
    qkv = g.linear(g.layer_norm(t, c), c, 3 * c)
    q, k, v = g.op("Split", g.reshape(qkv, [nh * nw, n, heads, 3 * d]), g.const([d, d, d], np.int64), axis=3,
                   n_out=3)
    root_scale = g.const(d ** -0.25)  # SDPA's export scales q and k by sqrt(scale) each
    q = g.op("Mul", g.op("Transpose", q, perm=[0, 2, 1, 3]), root_scale)
    k = g.op("Mul", g.op("Transpose", k, perm=[0, 2, 3, 1]), root_scale)
    v = g.op("Transpose", v, perm=[0, 2, 1, 3])
    scores = g.op("MatMul", q, k)
    if bias:
        table = g.weight(heads, int(bias_index_table(window).max()) + 1, scale=1.0)  # random: zeros would hide a bug
        scores = g.op("Add", scores, g.op("Gather", table, g.const(bias_index_table(window), np.int64), axis=1))
    attn = g.op("Softmax", scores, axis=-1)
    o = g.op("Transpose", g.op("MatMul", attn, v), perm=[0, 2, 1, 3])
    o = g.linear(g.reshape(o, [nh * nw, n, c]), c, c)
    if (h, w) != (window, window):
        o = g.op("Transpose", g.reshape(o, [1, nh, nw, window, window, c]), perm=[0, 1, 3, 2, 4, 5])
        o = g.reshape(o, [1, ph, pw, c])
        if pad_b or pad_r:
            o = g.op("Slice", o, g.const([0, 0], np.int64), g.const([h, w], np.int64), g.const([1, 2], np.int64))
    x = g.op("Add", x, g.reshape(o, [1, h, w, c]))
    # depthwise "local" conv on [1, C, H, W], back to tokens, then the MLP
    t = g.op("Conv", g.op("Transpose", x, perm=[0, 3, 1, 2]), g.weight(c, 1, 3, 3, scale=0.3),
             g.weight(c, scale=0.1), group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    t = g.op("Transpose", g.reshape(t, [1, c, h * w]), perm=[0, 2, 1])
    mlp = g.linear(g.gelu(g.linear(g.layer_norm(t, c), c, 4 * c)), 4 * c, c)
    y = g.op("Transpose", g.reshape(g.op("Add", t, mlp), [1, h, w, c]), perm=[0, 3, 1, 2])
    return g.model(y, [1, c, h, w], "tinyvit_block")


def _export_and_compare(onnx_path: str, so_path: str, shape, seed: int = 1):
    result = tvm_ncnn.export(onnx_path, so_path)  # verify=True: refuses a mismatch with onnxruntime
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    got = tvm_ncnn.load(so_path, threads=1).single(x)
    return result.report, max_rel_error(got, onnxruntime_run(onnx_path, x))


def ncnn_layers(onnx_path: str) -> tuple[Counter, str]:
    """The layer types of the model's one ncnn region, and its .param text."""
    mod = partition(tvm_ncnn.import_model(onnx_path).mod)
    param = convert_region(mod[region_vars(mod)[0]]).param
    return Counter(line.split()[0] for line in param.splitlines()[2:]), param


BLOCKS = {  # id: (H, W, window)
    "whole_windows": (14, 14, 7),
    "padded": (10, 12, 7),           # padded to 14x14: four windows, three of them partly padding
    "one_window": (7, 7, 7),         # no partition: attention over the whole map
    "one_padded_window": (5, 6, 7),  # padded up to a single window
    "non_square": (8, 16, 4),        # 2x4 windows
}


@pytest.mark.parametrize("key", list(BLOCKS))
def test_window_block_in_one_region_matches_onnxruntime(key, tmp_path):
    h, w, window = BLOCKS[key]
    onnx_path = str(tmp_path / f"{key}.onnx")
    onnx.save(window_block_model(h, w, window), onnx_path)
    report, err = _export_and_compare(onnx_path, str(tmp_path / "m.so"), (1, 16, h, w))
    assert report.regions == 1 and report.ncnn_flops_share == pytest.approx(1.0), report.table()
    assert err <= TOLERANCE
    # one window: the attention, its bias as the mask, is one SDPA layer. Several: the per-head bias would be
    # copied once per window into SDPA's mask, so MatMul, BinaryOp, Softmax, MatMul compute it as before.
    layers, param = ncnn_layers(onnx_path)
    if -(-h // window) * -(-w // window) == 1:
        assert layers["SDPA"] == 1 and "Softmax" not in layers and "MatMul" not in layers, layers
        assert " 5=1 " in next(line for line in param.splitlines() if line.startswith("SDPA")) + " "
    else:
        assert "SDPA" not in layers and layers["Softmax"] == 1, layers


@pytest.mark.parametrize("key", ["padded", "non_square"])
def test_window_attention_without_bias_is_one_sdpa_layer(key, tmp_path):
    """Windows as heads of one SDPA layer: k, tokens-first, permuted to [windows, heads, tokens, dim] for it."""
    h, w, window = BLOCKS[key]
    onnx_path = str(tmp_path / f"{key}.onnx")
    onnx.save(window_block_model(h, w, window, bias=False), onnx_path)
    report, err = _export_and_compare(onnx_path, str(tmp_path / "m.so"), (1, 16, h, w))
    assert report.regions == 1 and err <= TOLERANCE
    layers, _ = ncnn_layers(onnx_path)
    assert layers["SDPA"] == 1 and "Softmax" not in layers and "MatMul" not in layers, layers


def attention_model(mask: str, tokens: int = 12, c: int = 16, heads: int = 2, seed: int = 0) -> onnx.ModelProto:
    """softmax(q k^T * s + mask) v on [1, tokens, C] tokens, k permuted tokens-first to [1, heads, dim, tokens] in
    one Transpose. mask: "per_head" (a constant [heads, N, N]), "shared" (a constant [N, N] for every head),
    "tensor" (computed from the input, [1, heads, N, N]), "scaled_after" ((q k^T + b) * s: not SDPA's order)."""
    g = _Graph(seed)
    d, n = c // heads, tokens
    q, k, v = g.op("Split", g.reshape(g.linear("x", c, 3 * c), [1, n, heads, 3 * d]), g.const([d, d, d], np.int64),
                   axis=3, n_out=3)
    q = g.op("Transpose", q, perm=[0, 2, 1, 3])
    k = g.op("Transpose", k, perm=[0, 2, 3, 1])
    v = g.op("Transpose", v, perm=[0, 2, 1, 3])
    scores = g.op("MatMul", q, k)
    if mask == "scaled_after":
        logits = g.op("Mul", g.op("Add", scores, g.weight(heads, n, n, scale=1.0)), g.const(d ** -0.5))
    else:
        if mask == "per_head":
            term = g.weight(heads, n, n, scale=1.0)
        elif mask == "shared":
            term = g.weight(n, n, scale=1.0)
        else:
            term = g.op("Transpose", g.reshape(g.linear("x", c, heads * n), [1, n, heads, n]), perm=[0, 2, 1, 3])
        logits = g.op("Add", term, g.op("Mul", scores, g.const(d ** -0.5)))
    o = g.op("MatMul", g.op("Softmax", logits, axis=-1), v)
    o = g.linear(g.reshape(g.op("Transpose", o, perm=[0, 2, 1, 3]), [1, n, c]), c, c)
    return g.model(o, [1, n, c], "attention")


@pytest.mark.parametrize("mask", ["per_head", "shared", "tensor", "scaled_after"])
def test_attention_mask_forms(mask, tmp_path):
    onnx_path = str(tmp_path / f"{mask}.onnx")
    onnx.save(attention_model(mask), onnx_path)
    report, err = _export_and_compare(onnx_path, str(tmp_path / "m.so"), (1, 12, 16))
    assert report.regions == 1, report.table()
    assert err <= TOLERANCE
    layers, param = ncnn_layers(onnx_path)
    if mask == "scaled_after":
        assert "SDPA" not in layers and layers["Softmax"] == 1, layers
    else:
        assert layers["SDPA"] == 1 and "Softmax" not in layers, layers
        masks = [line for line in param.splitlines() if line.startswith("MemoryData")]
        if mask == "shared":  # one [N, N] matrix for every head
            assert any(line.split()[-3:] == ["0=12", "1=12", "2=1"] or line.split()[-2:] == ["0=12", "1=12"]
                       for line in masks), masks


def _import_timm():
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import timm

    return timm


def _randomize_attention_biases(model):
    """timm initializes the bias tables to zeros; random ones make the gathered bias count in the comparison."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("attention_biases"):
                param.normal_(0, 1)
    return model


def _legacy_onnx(module, shape, path: str):
    import torch

    with torch.no_grad():
        module(torch.randn(*shape))
        torch.onnx.export(module, (torch.randn(*shape),), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])


@pytest.mark.parametrize("h, w, window", [(9, 11, 4), (6, 6, 6), (3, 5, 4)])
def test_timm_block_through_the_legacy_exporter(h, w, window, tmp_path):
    """timm's TinyVitBlock itself: its padding comes as a Shape/Mod/ConstantOfShape chain of the exporter's."""
    import torch

    tiny_vit = _import_timm().models.tiny_vit
    torch.manual_seed(0)
    block = _randomize_attention_biases(tiny_vit.TinyVitBlock(dim=32, num_heads=2, window_size=window).eval())
    onnx_path = str(tmp_path / "block.onnx")
    _legacy_onnx(block, (1, h, w, 32), onnx_path)
    report, err = _export_and_compare(onnx_path, str(tmp_path / "m.so"), (1, h, w, 32))
    assert report.regions == 1 and report.ncnn_flops_share == pytest.approx(1.0), report.table()
    assert err <= TOLERANCE


# ------------------------------------------------------------------------------------------- whole models

MODELS = {  # id: (timm name, input size, whether a stage attends over one window); tiny_vit_5m_224 developed on,
    # tiny_vit_11m_224 held out until the end
    "tiny_vit_5m_224": ("tiny_vit_5m_224", 224, True),  # 14x14 and 7x7 maps are one window of 14 and of 7
    "tiny_vit_5m_at_256": ("tiny_vit_5m_224", 256, False),  # 32x32, 16x16, 8x8 padded to 2x2+ windows of 7, 14, 7
    "tiny_vit_11m_224": ("tiny_vit_11m_224", 224, True),
}


@pytest.mark.parametrize("key", list(MODELS))
def test_tinyvit_in_one_region_matches_onnxruntime(key, tmp_path):
    import torch

    name, size, one_window = MODELS[key]
    torch.manual_seed(0)
    model = _randomize_attention_biases(_import_timm().create_model(name, pretrained=False).eval())
    onnx_path = str(tmp_path / f"{key}.onnx")
    _legacy_onnx(model, (1, 3, size, size), onnx_path)
    report, err = _export_and_compare(onnx_path, str(tmp_path / "m.so"), (1, 3, size, size))
    assert report.regions == 1, report.table()
    assert report.ncnn_flops_share >= 0.995
    assert err <= TOLERANCE
    layers, _ = ncnn_layers(onnx_path)  # the attention over one window, its gathered bias the mask: one SDPA layer
    assert (layers["SDPA"] >= 1) == one_window, layers
