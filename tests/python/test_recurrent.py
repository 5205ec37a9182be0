"""ONNX LSTM, GRU and RNN (frontend/recurrent.py, ncnn/ops/recurrent.py): each node exported through model.so
against onnxruntime, in ncnn's layer where ncnn computes it and in TVM where it does not; what is not supported
is refused in one line; a CRNN text recogniser (conv stack -> BiLSTM -> linear) against onnxruntime, with the
same greedy CTC decoding. ONNX's own node tests for these ops run in test_onnx_nodes.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import tvm_ncnn
from tvm_ncnn import ModelError

from conftest import max_rel_error, onnx_model
from tvm_ncnn.ncnn.ops.recurrent import BUILT

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_model(kind, direction, *, steps=6, inputs=5, hidden=4, states=False, peepholes=False,
                    linear_before_reset=1, outputs=("Y", "Y_h", "Y_c"), seed=0, **extra_attrs):
    """One node at batch 1 (ONNX layout 0: X [T, 1, I]), random weights as initializers; h0 (and c0) are graph
    inputs when `states`."""
    rng = np.random.default_rng(seed)
    gates, d = GATES[kind], 2 if direction == "bidirectional" else 1

    def weight(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)

    inits = [weight("W", d, gates * hidden, inputs), weight("R", d, gates * hidden, hidden),
             weight("B", d, 2 * gates * hidden)]
    graph_inputs = {"X": [steps, 1, inputs]}
    names = ["X", "W", "R", "B", ""]
    if states:
        for name in ["h0", "c0"] if kind == "LSTM" else ["h0"]:
            graph_inputs[name] = [d, 1, hidden]
            names.append(name)
    if peepholes:
        names += [] if states else ["", ""]
        inits.append(weight("P", d, 3 * hidden))
        names.append("P")
    outputs = list(outputs if kind == "LSTM" else outputs[:2])
    attrs = {"hidden_size": hidden, "direction": direction, **extra_attrs}
    if kind == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    node = helper.make_node(kind, names, outputs, name=f"{kind.lower()}0", **attrs)
    return onnx_model([node], graph_inputs, [o for o in outputs if o], inits, "recurrent", opset=14)


def feeds_for(model, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}


def export_and_compare(model, tmp_path):
    """Export (which verifies against onnxruntime itself), run model.so, compare every output; the report."""
    import onnxruntime as ort

    feeds = feeds_for(model)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    result = tvm_ncnn.export(model, tmp_path / "model.so")
    got = tvm_ncnn.load(tmp_path / "model.so")(*feeds.values())
    assert len(got) == len(expected)
    for out, ref in zip(got, expected):
        assert max_rel_error(out, ref) <= 1e-4
    return result.report


def placement_of(report, prefix: str):
    return next(o for o in report.ops if o.op.startswith(prefix))


DIRECTIONS = ["forward", "reverse", "bidirectional"]


@pytest.mark.parametrize("states", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_every_direction_and_state(kind, direction, states, tmp_path):
    """In ncnn's layer where the runtime has it (LSTM), else in TVM saying so (GRU, RNN: cmake/ncnn.cmake)."""
    report = export_and_compare(recurrent_model(kind, direction, states=states), tmp_path)
    row = placement_of(report, f"onnx_{kind.lower()}_{direction}")
    if kind in BUILT:
        assert row.place.startswith("ncnn"), row.reason
    else:
        assert row.place == "tvm" and "not built into the runtime" in row.reason


@pytest.mark.parametrize("states", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_layer_conversion_in_the_ncnn_wheel(kind, direction, states, tmp_path):
    """ncnn/ops/recurrent.py's layer, weights and all, run by the PyPI ncnn (which has every layer) against
    onnxruntime: GRU and RNN too, which the runtime does not build yet."""
    import ncnn
    import onnxruntime as ort

    from tvm_ncnn.frontend.importer import import_model
    from tvm_ncnn.ncnn.graph import NcnnGraph
    from tvm_ncnn.ncnn.ops.base import Match
    from tvm_ncnn.ncnn.ops.recurrent import convert_recurrent
    from tvm_ncnn.relax_util import calls_in, is_constant, shape_of

    model = recurrent_model(kind, direction, states=states)
    feeds = feeds_for(model)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    call = next(c for c in calls_in(import_model(model).mod["main"]) if "onnx_" in str(c.op))
    graph = NcnnGraph()
    blobs = {a: graph.add_input(shape_of(a)[1:]) for a in call.args if not is_constant(a)}
    tops = convert_recurrent(graph, Match([call], blobs))
    param, weights = graph.serialize()
    (tmp_path / "r.param").write_text(param)
    (tmp_path / "r.bin").write_bytes(weights)
    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    assert net.load_param(str(tmp_path / "r.param")) == 0 and net.load_model(str(tmp_path / "r.bin")) == 0
    ex = net.create_extractor()
    d = 2 if direction == "bidirectional" else 1
    # ncnn.Mat wraps the array's memory: the arrays must outlive the extraction
    values = [np.ascontiguousarray(feeds["X"][:, 0, :])] + [feeds[n].reshape(d, -1) for n in ("h0", "c0") if n in feeds]
    for blob, value in zip(blobs.values(), values):
        ex.input(blob, ncnn.Mat(value))
    outs = [ex.extract(top) for top in tops]
    assert [ret for ret, _ in outs] == [0] * len(tops)
    got = [np.array(m) for _, m in outs]
    steps, hidden = feeds["X"].shape[0], expected[1].shape[-1]
    assert max_rel_error(got[0].reshape(steps, d, 1, hidden), expected[0]) <= 1e-5
    for state, ref in zip(got[1:], expected[1:]):
        assert max_rel_error(state.reshape(ref.shape), ref) <= 1e-5


def test_last_states_only(tmp_path):
    """An LSTM whose sequence output is unused (Y_h alone): the layer's hidden-state top."""
    report = export_and_compare(recurrent_model("LSTM", "bidirectional", outputs=("", "Y_h", "")), tmp_path)
    assert placement_of(report, "onnx_lstm").place.startswith("ncnn")


@pytest.mark.parametrize("case, reason", [
    (dict(kind="GRU", direction="forward", linear_before_reset=0), "linear_before_reset=0"),
    (dict(kind="LSTM", direction="bidirectional", peepholes=True), "peepholes"),
    (dict(kind="LSTM", direction="reverse", peepholes=True, states=True), "peepholes"),
])
def test_kept_in_tvm(case, reason, tmp_path):
    """What ncnn's layers do not compute runs in TVM's unrolled form, with the reason in the report."""
    report = export_and_compare(recurrent_model(**case), tmp_path)
    row = placement_of(report, "onnx_")
    assert row.place == "tvm" and reason in row.reason


def _with_sequence_lens(model, lens):
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(lens, np.int32), "seq_lens"))
    model.graph.node[0].input[4] = "seq_lens"
    return model


@pytest.mark.parametrize("build, message", [
    (lambda: recurrent_model("LSTM", "forward", clip=1.0), "clips"),
    (lambda: recurrent_model("GRU", "forward", activations=["Relu", "Tanh"]), "activations"),
    (lambda: recurrent_model("LSTM", "forward", input_forget=1), "input_forget"),
    (lambda: _with_sequence_lens(recurrent_model("RNN", "forward", steps=6), [4]), "sequence_lens"),
])
def test_refused_in_one_line(build, message, tmp_path):
    with pytest.raises(ModelError, match=message) as refused:
        tvm_ncnn.export(build(), tmp_path / "model.so")
    assert "\n" not in str(refused.value)


def test_defaults_spelled_out_and_full_sequence_lens(tmp_path):
    """The default activations named explicitly, and a sequence_lens equal to the length, are what they say."""
    model = recurrent_model("LSTM", "bidirectional", activations=["Sigmoid", "Tanh", "Tanh"] * 2)
    report = export_and_compare(_with_sequence_lens(model, [6]), tmp_path)
    assert placement_of(report, "onnx_lstm").place.startswith("ncnn")


# ---------------------------------------------------------------------------------------------- CRNN

def _crnn(channels: int, height: int):
    import torch

    nn = torch.nn

    class CRNN(nn.Module):
        """conv stack -> squeeze H -> BiLSTM -> linear, as text recognisers (CRNN, PP-OCR's rec) are built."""

        def __init__(self, classes=37, hidden=48):
            super().__init__()
            self.cnn = nn.Sequential(
                nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)),
                nn.Conv2d(48, 64, (height // 8, 1)), nn.ReLU())
            self.rnn = nn.LSTM(64, hidden, bidirectional=True)
            self.fc = nn.Linear(2 * hidden, classes)

        def forward(self, x):
            features = self.cnn(x).squeeze(2).permute(2, 0, 1)  # [W', 1, C]
            y, _ = self.rnn(features)
            return self.fc(y)  # [W', 1, classes]

    torch.manual_seed(0)
    model = CRNN().eval()
    with torch.no_grad():
        bn = model.cnn[4]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return model


def greedy_ctc(logits: np.ndarray, blank: int = 0) -> list[int]:
    best = logits.reshape(logits.shape[0], -1).argmax(axis=1)
    return [int(c) for i, c in enumerate(best) if c != blank and (i == 0 or c != best[i - 1])]


@pytest.mark.parametrize("channels, height, width", [(1, 32, 100), (3, 48, 160)])
def test_crnn_text_recogniser(channels, height, width, tmp_path):
    import onnxruntime as ort
    import torch

    path = tmp_path / "crnn.onnx"
    shape = (1, channels, height, width)
    torch.onnx.export(_crnn(channels, height), (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    result = tvm_ncnn.export(path, tmp_path / "crnn.so")  # verified against onnxruntime by export itself
    lstm = placement_of(result.report, "onnx_lstm_bidirectional")
    assert lstm.place.startswith("ncnn"), lstm.reason
    assert result.report.regions == 1  # conv stack, LSTM and linear in one region
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    got = tvm_ncnn.load(tmp_path / "crnn.so").single(x)
    assert max_rel_error(got, ref) <= 1e-4
    assert greedy_ctc(got) == greedy_ctc(ref)
    shown = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "inspect", str(tmp_path / "crnn.so")],
                           capture_output=True, text=True, check=True).stdout
    assert any(line.split()[1:2] == ["onnx_lstm_bidirectional"] and "ncnn:0" in line for line in shown.splitlines())


def test_crnn_region_writes_one_lstm_layer():
    """The region's ncnn graph holds one LSTM layer for the ONNX node (not its unrolled ops)."""
    import torch

    from tvm_ncnn.compile.lower import partitioned
    from tvm_ncnn.frontend.importer import import_model
    from tvm_ncnn.ncnn.codegen import region_graphs

    buffer = __import__("io").BytesIO()
    torch.onnx.export(_crnn(1, 32), (torch.randn(1, 1, 32, 64),), buffer, dynamo=False, opset_version=17)
    mod, _ = partitioned(import_model(onnx.load_from_string(buffer.getvalue())))
    layers = [layer.type for region in region_graphs(mod).values() for layer in region.graph.layers]
    assert layers.count("LSTM") == 1 and not {"Sigmoid", "TanH"} & set(layers)
