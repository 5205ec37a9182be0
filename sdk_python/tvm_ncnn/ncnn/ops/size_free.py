"""For a model with dynamic sizes: an op runs in ncnn only when its ncnn layers are the same at every size.

ncnn computes each blob's shape as it runs, so a Convolution or a Sigmoid serves any size; but a converter that
writes a size into a layer's params (a Reshape to [C, H*W], a Crop's ends, an Interp to a fixed output) freezes
it, and at any other size ncnn would compute something else, silently. Every op is converted alone at each probe
size (relax_util.probes(), frontend/dynamic.py) and must write the same layers and weights; where it does not,
or its support check says otherwise at one of the sizes, it stays in TVM, which computes every size."""

from __future__ import annotations

from tvm import relax

from ..graph import NcnnGraph
from ...relax_util import is_constant, is_symbolic, probes, probing, shape_of
from .base import Match

REASON = "its ncnn layers would fix the input size (their params differ between sizes)"


def why_not_at_every_size(call, op) -> str | None:
    """None when `op` takes `call` at every probe size and writes the same layers at each, else the reason."""
    every = probes()
    if not every:
        return op.why_not(call)
    written = []
    for values in every:
        with probing(values, every):
            reason = op.why_not(call)
            if reason is not None:
                return reason
            if not _symbolic(call):
                return None  # its shapes do not change with the size
            written.append(_convert_alone(call, op))
    return None if all(w is not None and w == written[0] for w in written) else REASON


def _symbolic(call) -> bool:
    return is_symbolic(call.ty) or any(is_symbolic(getattr(a, "ty", None)) for a in call.args
                                       if isinstance(a, relax.Expr))


def _convert_alone(call, op) -> tuple | None:
    """(param text without the Input layers, weights) of `call` converted on its own; None when it cannot be."""
    graph = NcnnGraph()
    blobs = {}
    args = [f for a in call.args for f in (a.fields if isinstance(a, relax.Tuple) else [a])]  # concat's tuple
    for arg in args:
        if isinstance(getattr(arg, "ty", None), relax.TensorType) and not is_constant(arg):
            shape = shape_of(arg)
            if shape is None:
                return None
            blobs[arg] = graph.add_input(shape[1:])
    try:
        op.convert(graph, Match([call], blobs, {}))
    except Exception:  # noqa: BLE001 -- a converter that cannot take the op alone: no proof it is size-free
        return None
    graph.layers = [layer for layer in graph.layers if layer.type != "Input"]
    return graph.serialize()
