"""ONNX LSTM, GRU and RNN, which TVM's Relax ONNX importer lacks.

Each node becomes a call of a Relax function of its own, `onnx_<kind>_<direction>[_lbr]` (the name says what
ncnn/ops/recurrent.py needs to know), whose body is the recurrence unrolled over the static sequence length with
plain Relax ops: TVM compiles it like any other function when ncnn does not take the call, and ncnn's LSTM, GRU
or RNN layer replaces the whole call when it does. The function works on a batch-first sequence and returns
batch-first results, so that the call's tensors have the leading batch of 1 ncnn regions take:

    f(X [B, T, I], W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H], h0 [B, D, H], c0 [B, D, H], P [D, 3*H])
      -> (Y [B, T, D*H], Y_h [B, D, H], Y_c [B, D, H])

(G gates: LSTM 4 in ONNX's order i, o, f, c; GRU 3, z, r, h; RNN 1. h0 and c0 are passed when the node gives
either, P when an LSTM gives peepholes.) Around the call, main moves ONNX's layouts to these and back.

Refused in one line (check_node, before TVM's importer runs): clip, activations other than the defaults,
LSTM input_forget, and a sequence_lens that is not a constant equal to the sequence length everywhere.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from ..ncnn.recurrent_function import DIRECTIONS, GATES, Recurrent
from ..relax_util import shape_of

DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}


# ---------------------------------------------------------------------------------------------- ONNX check

def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_node(node, attrs: dict, constants: dict, seq_length, where: str) -> str | None:
    """Why the node cannot be imported (one line), or None. seq_length: X's sequence length when known."""
    kind = node.op_type
    if attrs.get("clip") is not None:
        return f"{where} clips its cell input (clip={attrs['clip']}), which is not supported"
    acts = [_text(a).lower() for a in attrs.get("activations") or []]
    if acts:
        per_direction = DEFAULT_ACTIVATIONS[kind]
        if acts not in (per_direction, per_direction * 2):
            return f"{where} has activations {acts}; only the defaults {per_direction} are supported"
    if kind == "LSTM" and attrs.get("input_forget", 0):
        return f"{where} couples its input and forget gates (input_forget=1), which is not supported"
    if _text(attrs.get("direction", "forward")) not in DIRECTIONS:
        return f"{where} has an unknown direction {_text(attrs['direction'])}"
    if len(node.input) > 4 and node.input[4]:
        lens = constants.get(node.input[4])
        if lens is None:
            return f"{where} takes sequence_lens from the graph; only full-length sequences (no sequence_lens, or " \
                   f"a constant one) are supported"
        if seq_length is not None and seq_length > 0 and not np.all(np.asarray(lens) == seq_length):
            return f"{where} has sequence_lens {np.asarray(lens).tolist()} shorter than its {seq_length} steps; " \
                   f"only full-length sequences are supported"
    return None


# ---------------------------------------------------------------------------------------------- import

def convert(kind: str, bb: relax.BlockBuilder, inputs: list, attr: dict):
    """The node as main's calls: layouts in, the recurrent function, layouts out. Returns (Y, Y_h[, Y_c])."""
    inputs = list(inputs) + [None] * (8 - len(inputs))
    x, w, r, b = inputs[:4]
    h0, c0, peep = inputs[5], (inputs[6] if kind == "LSTM" else None), (inputs[7] if kind == "LSTM" else None)
    layout = int(attr.get("layout", 0))
    hidden = int(attr.get("hidden_size", shape_of(r)[-1]))
    rec = Recurrent(kind, _text(attr.get("direction", b"forward")),
                    kind == "GRU" and bool(int(attr.get("linear_before_reset", 0))))
    d, gates = rec.directions, GATES[kind]
    seq, batch, _ = shape_of(x) if layout == 0 else [shape_of(x)[1], shape_of(x)[0], shape_of(x)[2]]
    if b is None:
        b = relax.const(np.zeros((d, 2 * gates * hidden), np.float32))
    args = [_batch_first(bb, x, layout, batch), w, r, b]
    if h0 is not None or c0 is not None:
        zeros = relax.const(np.zeros((batch, d, hidden), np.float32))
        states = [h0, c0] if kind == "LSTM" else [h0]
        args += [zeros if s is None else _batch_first(bb, s, layout, batch) for s in states]
    if peep is not None:
        if kind != "LSTM" or len(args) == 4:  # the function's parameters are positional: states before P
            args += [relax.const(np.zeros((batch, d, hidden), np.float32))] * 2
        args.append(peep)
    func = _function(rec, [shape_of(a) for a in args], seq, hidden)
    out = bb.emit(relax.Call(bb.add_func(func, rec.name), args))
    y = bb.emit(relax.TupleGetItem(out, 0))  # [B, T, D*H]
    if layout == 0:
        y = bb.emit(relax.op.permute_dims(relax.op.reshape(y, [batch, seq, d, hidden]), [1, 2, 0, 3])) \
            if batch > 1 else bb.emit(relax.op.reshape(y, [seq, d, 1, hidden]))
    else:
        y = bb.emit(relax.op.reshape(y, [batch, seq, d, hidden]))
    states = [bb.emit(relax.TupleGetItem(out, i)) for i in range(1, 3 if kind == "LSTM" else 2)]
    if layout == 0:
        states = [_seq_first_state(bb, s, batch, d, hidden) for s in states]
    return relax.Tuple([y, *states])


def _batch_first(bb, x, layout: int, batch: int):
    """[T, B, ...] (layout 0) as [B, T, ...]. At batch 1 a reshape, or one permute with the one that made x."""
    if layout == 1:
        return x
    shape = shape_of(x)
    if batch > 1:
        return bb.emit(relax.op.permute_dims(x, [1, 0, 2]))
    made = bb.lookup_binding(x) if isinstance(x, relax.Var) else x  # the importer may hand over the call itself
    if isinstance(made, relax.Call) and getattr(made.op, "name", "") == "relax.permute_dims" \
            and made.attrs.axes is not None and len(made.attrs.axes) == 3:
        axes = [int(a) for a in made.attrs.axes]  # x = permute(src, axes): swapping x's first two axes
        return bb.emit(relax.op.permute_dims(made.args[0], [axes[1], axes[0], axes[2]]))
    return bb.emit(relax.op.reshape(x, [1, shape[0], *shape[2:]]))


def _seq_first_state(bb, s, batch: int, d: int, hidden: int):
    """[B, D, H] as ONNX's [D, B, H]."""
    if batch > 1:
        return bb.emit(relax.op.permute_dims(s, [1, 0, 2]))
    return s if d == 1 else bb.emit(relax.op.reshape(s, [d, 1, hidden]))


def _function(rec: Recurrent, shapes: list, seq: int, hidden: int) -> relax.Function:
    names = ["x", "w", "r", "b", "h0", "c0", "p"] if rec.kind == "LSTM" else ["x", "w", "r", "b", "h0"]
    params = [relax.Var(n, relax.TensorType(s, "float32")) for n, s in zip(names, shapes)]
    fb = relax.BlockBuilder()
    # No dataflow block: partitioning fuses ops inside dataflow blocks only, and ncnn takes this function's call
    # whole or none of it (TVM's FuseOps, which works on dataflow blocks too, leaves its ops apart).
    with fb.function(rec.name, params, private=True):
        given = dict(zip(names, params))
        ys, hs, cs = [], [], []
        for k in range(rec.directions):
            reverse = rec.direction == "reverse" or k == 1
            y, h, c = _unrolled(fb, rec, given, k, reverse, seq, hidden)
            ys, hs, cs = ys + [y], hs + [h], cs + [c]
        outs = [ys[0] if len(ys) == 1 else relax.op.concat(ys, axis=2), _stack(hs)]
        if rec.kind == "LSTM":
            outs.append(_stack(cs))
        fb.emit_func_output(relax.Tuple([fb.emit(o) for o in outs]))
    return fb.get()[rec.name]


def _stack(states: list):
    """[B, H] per direction -> [B, D, H]."""
    return relax.op.concat([relax.op.expand_dims(s, 1) for s in states], axis=1)


def _take(fb, tensor, index: int, axis: int = 0):
    return fb.emit(relax.op.take(tensor, relax.const(index, "int64"), axis=axis))


def _unrolled(fb, rec: Recurrent, given: dict, k: int, reverse: bool, seq: int, hidden: int):
    """Direction k over the whole sequence: (Y [B, T, H], last h [B, H], last c [B, H] or None)."""
    emit, op = fb.emit, relax.op
    x, g = given["x"], GATES[rec.kind] * hidden
    batch = shape_of(x)[0]
    w, r, b = _take(fb, given["w"], k), _take(fb, given["r"], k), _take(fb, given["b"], k)
    wb, rb = emit(op.strided_slice(b, [0], [0], [g])), emit(op.strided_slice(b, [0], [g], [2 * g]))
    xw = emit(op.add(op.matmul(x, op.permute_dims(w)), wb))  # every step's input part at once: [B, T, G*H]
    steps = emit(op.split(xw, seq, axis=1)) if seq > 1 else None  # split in 1 is the tensor, not a tuple
    h = _take(fb, given["h0"], k, axis=1) if "h0" in given else relax.const(np.zeros((batch, hidden), np.float32))
    c = _take(fb, given["c0"], k, axis=1) if "c0" in given else relax.const(np.zeros((batch, hidden), np.float32))
    peep = _take(fb, given["p"], k) if "p" in given else None
    if rec.kind == "GRU" and not rec.linear_before_reset:
        r_zr = emit(op.permute_dims(emit(op.strided_slice(r, [0], [0], [2 * hidden]))))
        r_h = emit(op.permute_dims(emit(op.strided_slice(r, [0], [2 * hidden], [3 * hidden]))))
    rt = emit(op.permute_dims(r))
    outs = [None] * seq
    for t in (reversed(range(seq)) if reverse else range(seq)):
        xt = emit(op.reshape(relax.TupleGetItem(steps, t) if seq > 1 else xw, [batch, g]))
        if rec.kind == "LSTM":
            h, c = _lstm_step(fb, xt, h, c, rt, rb, peep, hidden)
        elif rec.kind == "GRU":
            h = _gru_step(fb, xt, h, rt if rec.linear_before_reset else (r_zr, r_h), rb, hidden,
                          rec.linear_before_reset)
        else:
            h = emit(op.tanh(op.add(xt, op.add(op.matmul(h, rt), rb))))
        outs[t] = h
    y = emit(op.concat([op.expand_dims(o, 1) for o in outs], axis=1)) if seq > 1 else \
        emit(op.expand_dims(outs[0], 1))
    return y, h, (c if rec.kind == "LSTM" else None)


def _split(fb, value, parts: int) -> list:
    tup = fb.emit(relax.op.split(value, parts, axis=1))
    return [fb.emit(relax.TupleGetItem(tup, i)) for i in range(parts)]


def _lstm_step(fb, xt, h, c, rt, rb, peep, hidden: int):
    emit, op = fb.emit, relax.op
    gates = emit(op.add(xt, op.add(op.matmul(h, rt), rb)))
    i, o, f, cand = _split(fb, gates, 4)  # ONNX's gate order: input, output, forget, cell
    if peep is not None:
        p_i, p_o, p_f = (fb.emit(op.strided_slice(peep, [0], [n * hidden], [(n + 1) * hidden])) for n in range(3))
        i, f = emit(op.add(i, op.multiply(p_i, c))), emit(op.add(f, op.multiply(p_f, c)))
    c = emit(op.add(op.multiply(op.sigmoid(f), c), op.multiply(op.sigmoid(i), op.tanh(cand))))
    if peep is not None:
        o = emit(op.add(o, op.multiply(p_o, c)))
    h = emit(op.multiply(op.sigmoid(o), op.tanh(c)))
    return h, c


def _gru_step(fb, xt, h, rt, rb, hidden: int, linear_before_reset: bool):
    emit, op = fb.emit, relax.op
    xz, xr, xh = _split(fb, xt, 3)  # ONNX's gate order: update, reset, hidden
    rbz, rbr, rbh = _split(fb, emit(op.reshape(rb, [1, 3 * hidden])), 3)
    if linear_before_reset:
        hz, hr, hh = _split(fb, emit(op.matmul(h, rt)), 3)
        z = emit(op.sigmoid(op.add(xz, op.add(hz, rbz))))
        reset = emit(op.sigmoid(op.add(xr, op.add(hr, rbr))))
        n = emit(op.tanh(op.add(xh, op.multiply(reset, op.add(hh, rbh)))))
    else:
        r_zr, r_h = rt
        hz, hr = _split(fb, emit(op.matmul(h, r_zr)), 2)
        z = emit(op.sigmoid(op.add(xz, op.add(hz, rbz))))
        reset = emit(op.sigmoid(op.add(xr, op.add(hr, rbr))))
        n = emit(op.tanh(op.add(xh, op.add(op.matmul(op.multiply(reset, h), r_h), rbh))))
    return emit(op.add(op.multiply(op.subtract(relax.const(1.0, "float32"), z), n), op.multiply(z, h)))


def _converter(kind: str):
    from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

    class Converter(OnnxOpConverter):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return convert(kind, bb, inputs, attr)

    Converter.__name__ = kind
    return Converter


def converters() -> dict:
    """{op type: converter class} for TVM's ONNX convert map."""
    return {kind: _converter(kind) for kind in GATES}

