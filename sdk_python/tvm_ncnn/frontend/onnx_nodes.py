"""ONNX nodes TVM's importer would take and compute wrong without a word: fixed in the ONNX graph before it runs,
or refused in one line naming the node. Each was found by ONNX's own node tests (tests/python/test_onnx_nodes.py)
giving other values than ONNX's reference with nothing said.

- ConvTranspose with output_shape: the importer ignores the attribute ([1, 2, 9, 7] where ONNX says
  [1, 2, 10, 8]); rewritten as the pads and output_padding the ONNX spec derives from it.
- BatchNormalization in training mode normalizes by the batch's statistics: an inference export cannot.
- Resize: ONNX places a downsampled pixel from the scales it is given, (x + 0.5) / scale - 0.5; TVM's resize2d
  and ncnn's Interp from the output size, which floor(in x scale) makes differ wherever in x scale is not whole
  (and with align_corners TVM's importer divides by zero on a 1-pixel output or, cubic, lands elsewhere).
  Linear and cubic downsampling by scales is refused, with what to give instead; antialiasing, which neither
  TVM nor ncnn has, too."""

from __future__ import annotations

from ..errors import ModelError
from .recurrent import GATES, check_node


def fix_or_refuse(model, source: str):
    """The model with every ConvTranspose output_shape rewritten; ModelError for a node no import computes
    right."""
    import onnx
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    shapes = None
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        where = f"{source}: {node.op_type} '{node.name or node.output[0]}'"
        if node.op_type == "BatchNormalization" and attrs.get("training_mode", 0):
            raise ModelError(f"{where} is in training mode (batch statistics): export the model for inference "
                             f"(torch: model.eval() before exporting)")
        if node.op_type == "Resize":
            _check_resize(node, attrs, constants, where)
        if node.op_type == "ConvTranspose" and "output_shape" in attrs:
            if shapes is None:
                shapes = _shapes(model)
            _pads_from_output_shape(node, attrs, shapes.get(node.input[0]), constants, where)
        if node.op_type in GATES:  # LSTM, GRU, RNN: frontend/recurrent.py
            shapes = shapes or _shapes(model)
            _refuse(check_node(node, attrs, constants, _seq_length(shapes.get(node.input[0]), attrs), where))
    return model


def _refuse(reason: str | None) -> None:
    if reason:
        raise ModelError(reason)


def _seq_length(shape, attrs) -> int | None:
    return shape[1 if attrs.get("layout", 0) else 0] if shape else None


def _check_resize(node, attrs, constants, where: str) -> None:
    if attrs.get("antialias", 0):
        raise ModelError(f"{where} antialiases, which neither TVM nor ncnn does: resize without antialias "
                         f"(or outside the model)")
    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
    transform = transform.decode() if isinstance(transform, bytes) else str(transform)
    scales = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    sizes_given = len(node.input) > 3 and bool(node.input[3])
    if mode == "nearest" or scales is None or sizes_given or not scales.size:
        return
    if any(0 < s < 1 for s in scales.tolist()):
        raise ModelError(f"{where} downsamples ({mode}, {transform}) by scales {[float(s) for s in scales]}: "
                         f"TVM and ncnn place the pixels by the output size and compute other values than ONNX "
                         f"here; give the Resize output sizes instead of scales, or resize outside the model")


def _shapes(model) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        out[v.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    return out


def _pads_from_output_shape(node, attrs, input_shape, constants, where: str) -> None:
    """The ONNX spec's rule: total padding = stride x (in - 1) + output_padding + (kernel - 1) x dilation + 1 -
    output_shape, split SAME_UPPER-style or the other way; a negative total becomes output padding."""
    import onnx

    weight = constants.get(node.input[1])
    kernel = list(attrs.get("kernel_shape") or (list(weight.shape[2:]) if weight is not None else []))
    spatial = list(attrs["output_shape"])[-len(kernel):] if kernel else []
    if not kernel or not input_shape or len(input_shape) != len(kernel) + 2 or min(input_shape[2:]) < 1:
        raise ModelError(f"{where} gives output_shape, and its input or kernel shape is not known statically: "
                         f"give pads and output_padding instead")
    n = len(kernel)
    strides = list(attrs.get("strides") or [1] * n)
    dilations = list(attrs.get("dilations") or [1] * n)
    extra = list(attrs.get("output_padding") or [0] * n)
    begin, end = [0] * n, [0] * n
    upper = attrs.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", "SAME_UPPER")
    for i in range(n):
        total = strides[i] * (input_shape[2 + i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i]
        if total < 0:
            extra[i], total = extra[i] - total, 0
        small, large = total // 2, total - total // 2
        begin[i], end[i] = (small, large) if upper else (large, small)
    keep = [a for a in node.attribute if a.name not in ("output_shape", "pads", "output_padding", "auto_pad")]
    del node.attribute[:]
    node.attribute.extend(keep + [onnx.helper.make_attribute("pads", begin + end),
                                  onnx.helper.make_attribute("output_padding", extra)])
