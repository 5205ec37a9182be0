"""The .param/.bin writer (ncnn's text format, weights layout) and the graph passes: Split for blobs read twice,
Crops that tile an axis merged into one Slice, a float convolution's padding in a layer of its own."""

from __future__ import annotations

import struct

import numpy as np

from tvm_ncnn.ncnn.passes import run_passes
from tvm_ncnn.ncnn.graph import NcnnGraph, shape_params
from tvm_ncnn.ncnn.window_padding import pad_in_front


def test_shape_params_map_outermost_to_c():
    assert shape_params([8]) == {0: 8}
    assert shape_params([4, 8]) == {1: 4, 0: 8}
    assert shape_params([3, 4, 8]) == {2: 3, 1: 4, 0: 8}
    assert shape_params([2, 3, 4, 8]) == {2: 2, 11: 3, 1: 4, 0: 8}


def test_param_text_and_weights():
    g = NcnnGraph()
    x = g.add_input([3, 4, 4])
    w = np.arange(2 * 3, dtype=np.float32).reshape(2, 3, 1, 1)
    b = np.array([0.5, -1.0], dtype=np.float32)
    y = g.add("Convolution", [x], {0: 2, 1: 1, 5: 1, 6: 6, 9: 3, 10: [0.0, 6.0]}, [(w, True), (b, False)])[0]
    outputs = run_passes(g, [y])
    param, weights = g.serialize()
    lines = param.splitlines()
    assert lines[0] == "7767517" and lines[1] == "2 2"
    assert lines[2].split()[:5] == ["Input", "input_0", "0", "1", x]
    assert "-23310=2,0.0,6.0" in lines[3]
    assert weights[:4] == struct.pack("<I", 0)  # storage flag before tagged weights
    assert np.frombuffer(weights[4:], dtype="<f4").tolist() == w.reshape(-1).tolist() + b.tolist()
    assert outputs == [y]


def test_blob_read_twice_goes_through_split():
    g = NcnnGraph()
    x = g.add_input([4])
    a = g.add("ReLU", [x])[0]
    b = g.add("Sigmoid", [a])[0]
    outputs = run_passes(g, [a, b])  # a feeds Sigmoid and is a region output
    param, _ = g.serialize()
    split = [line for line in param.splitlines() if line.startswith("Split")]
    assert len(split) == 1 and split[0].split()[2:4] == ["1", "2"]
    assert outputs[0] != a and outputs[0].startswith(a + "_")
    assert param.splitlines()[1] == f"4 {4 + 1}"


def _crop(g: NcnnGraph, blob: str, begin: int, end: int) -> str:
    return g.add("Crop", [blob], {9: [begin], 10: [end], 11: [0]})[0]


def test_crops_tiling_an_axis_become_one_slice():
    g = NcnnGraph()
    x = g.add_input([8, 4, 4])
    high, low = _crop(g, x, 5, 8), _crop(g, x, 0, 5)
    outputs = run_passes(g, [high, low])
    param, _ = g.serialize()
    lines = param.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["Input", "Slice"]
    fields = lines[3].split()
    assert fields[4:] == [x, low, high, "-23300=2,5,3", "1=0"]
    assert outputs == [high, low]


def test_crops_with_a_gap_stay_crops():
    g = NcnnGraph()
    x = g.add_input([8, 4, 4])
    a, b = _crop(g, x, 0, 3), _crop(g, x, 4, 8)
    run_passes(g, [a, b])
    param, _ = g.serialize()
    assert [line.split()[0] for line in param.splitlines()[2:]] == ["Input", "Split", "Crop", "Crop"]


def test_crops_tiling_an_axis_beside_another_reader_become_one_slice():
    g = NcnnGraph()
    x = g.add_input([8, 4, 4])
    low, high = _crop(g, x, 0, 4), _crop(g, x, 4, 8)
    doubled = g.add("BinaryOp", [x, x], {0: 0})[0]
    run_passes(g, [low, high, doubled])
    assert _types(g) == ["Input", "Split", "Slice", "BinaryOp"]


def _types(g: NcnnGraph) -> list[str]:
    return [line.split()[0] for line in g.serialize()[0].splitlines()[2:]]


def _linear_on_rows(g: NcnnGraph, blob: str, shape: list[int], n: int) -> str:
    """What the matmul converter writes for tokens of `shape`: Reshape to rows, Gemm, Reshape back."""
    rows = g.add("Reshape", [blob], shape_params([int(np.prod(shape[:-1])), shape[-1]]))[0]
    out = g.add("Gemm", [rows], {7: int(np.prod(shape[:-1])), 8: n, 9: shape[-1]})[0]
    return g.add("Reshape", [out], shape_params([*shape[:-1], n]))[0]


def test_blocks_on_token_rows_run_on_rows_without_the_reshapes():
    """Two blocks of LayerNorm, Linear, Swish, Linear and residual add on [patches, tokens, C]: everything runs
    on [rows, C], and only the input and the output are reshaped."""
    g = NcnnGraph()
    shape = [4, 6, 8]
    x = first = g.add_input(shape)
    for _ in range(2):
        norm = g.add("LayerNorm", [x], {0: 8, 1: 1e-5, 2: 0})[0]
        hidden = g.add("Swish", [_linear_on_rows(g, norm, shape, 16)])[0]
        x = g.add("BinaryOp", [x, _linear_on_rows(g, hidden, [4, 6, 16], 8)], {0: 0})[0]
    outputs = run_passes(g, [x])
    block = ["Split", "LayerNorm", "Gemm", "Swish", "Gemm", "BinaryOp"]
    assert _types(g) == ["Input", "Reshape", *block, *block, "Reshape"]
    assert g.layers[1].bottoms == [first] and g.layers[1].params == shape_params([24, 8])
    assert outputs == [x] and g.layers[-1].tops == [x] and g.layers[-1].params == shape_params(shape)


def test_rows_stay_in_their_shape_when_that_saves_nothing():
    g = NcnnGraph()
    x = g.add_input([4, 6, 8])
    out = g.add("Sigmoid", [_linear_on_rows(g, x, [4, 6, 8], 8)])[0]
    run_passes(g, [out])
    assert _types(g) == ["Input", "Reshape", "Gemm", "Reshape", "Sigmoid"]


def test_reshape_chains_fold_and_identities_go():
    g = NcnnGraph()
    x = g.add_input([4, 6, 8])
    a = g.add("Reshape", [x], shape_params([24, 8]))[0]
    b = g.add("Reshape", [a], shape_params([4, 48]))[0]
    c = g.add("Reshape", [b], shape_params([4, 6, 8]))[0]  # back to x's shape: nothing left to do
    out = g.add("ReLU", [c])[0]
    run_passes(g, [out])
    assert _types(g) == ["Input", "ReLU"] and g.layers[1].bottoms == [x]


def _conv(g, x, params=None):
    w = np.ones((2, 3, 3, 3), dtype=np.float32)
    return g.add("Convolution", [x], {0: 2, 1: 3, 11: 3, 6: w.size, **(params or {})}, [(w, True)])[0]


def test_a_float_convolution_pads_through_a_padding_layer_in_front():
    g = NcnnGraph()
    x = g.add_input([3, 8, 8])
    _conv(g, x, {4: 1, 15: 2, 14: 0, 16: 3})  # left 1, right 2, top 0, bottom 3
    pad_in_front(g)
    pad, conv = g.layers[1:]
    assert pad.type == "Padding" and pad.bottoms == [x] and conv.bottoms == pad.tops
    assert pad.params == {0: 0, 1: 3, 2: 1, 3: 2}
    assert [conv.params[k] for k in (4, 15, 14, 16)] == [0, 0, 0, 0]


def test_padding_stays_in_convolutions_that_need_it():
    g = NcnnGraph()
    x = g.add_input([3, 8, 8])
    _conv(g, x, {4: 1})            # ncnn: right, top and bottom repeat left -- moved out
    _conv(g, x, {4: 1, 8: 2})      # int8: pads its quantized input, and chains int8 blobs
    _conv(g, x, {4: -233})         # SAME: depends on the input size
    _conv(g, x, {4: 1, 18: -1.0})  # another pad value
    _conv(g, x)                    # no padding
    pad_in_front(g)
    types = [layer.type for layer in g.layers]
    assert types == ["Input", "Padding", "Convolution"] + ["Convolution"] * 4
    assert g.layers[1].params == {0: 1, 1: 1, 2: 1, 3: 1}
    assert [layer.params.get(4) for layer in g.layers[3:]] == [1, -233, 1, None]
