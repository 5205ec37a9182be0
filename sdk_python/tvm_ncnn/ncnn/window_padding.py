"""A convolution's zero padding as a Padding layer of its own, in front of it.

Why: ncnn pads a Convolution's or ConvolutionDepthWise's input inside its forward through copy_make_border, which
creates, runs and deletes a Padding layer (and its 4 KB ParamDict) on every call: three heap allocations per padded
convolution per frame, most of what a camera loop still allocated (issue #27). A Padding layer in the graph is made
once, at load, and does the same work -- it is the layer the convolution would have made. The padded blob comes
from the blob pool instead of the workspace pool, and the unpadded one is freed as soon as it is read.

Runs on the final graph, after the int8 plan (codegen.py): an int8 convolution keeps its own padding. It pads the
quantized input (so its calibration saw no pad zeros), and a layer between two int8 convolutions would break the
int8 chain that passes int8 blobs between them (runtime/src/ncnn/int8_chain.cc).
"""

from __future__ import annotations

from .graph import Layer, NcnnGraph

WINDOWED = ("Convolution", "ConvolutionDepthWise")
# Convolution's params: pad left, right, top, bottom; pad value; int8 scale term
LEFT, RIGHT, TOP, BOTTOM, PAD_VALUE, INT8_SCALE_TERM = 4, 15, 14, 16, 18, 8

# ncnn layer types this rewrite writes, for the vendored-layer check
LAYERS = ("Padding",)


def pads_of(layer: Layer) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a float convolution with plain zero padding on some side, else None."""
    p = layer.params
    if layer.type not in WINDOWED or p.get(INT8_SCALE_TERM, 0) != 0 or float(p.get(PAD_VALUE, 0.0)) != 0.0:
        return None
    left = int(p.get(LEFT, 0))
    right, top = int(p.get(RIGHT, left)), int(p.get(TOP, left))  # ncnn: unset sides repeat the left one
    bottom = int(p.get(BOTTOM, top))
    if min(top, bottom, left, right) < 0 or max(top, bottom, left, right) == 0:
        return None  # nothing to pad, or ncnn's SAME modes (-233, -234), which depend on the input size
    return top, bottom, left, right


def pad_in_front(g: NcnnGraph) -> None:
    """Every padded float convolution reads a Padding layer's output and pads nothing itself."""
    layers = []
    for layer in g.layers:
        pads = pads_of(layer)
        if pads is not None:
            top, bottom, left, right = pads
            padded = f"{layer.bottoms[0]}_pad_{layer.name}"
            layers.append(Layer("Padding", f"pad_{layer.name}", [layer.bottoms[0]], [padded],
                                {0: top, 1: bottom, 2: left, 3: right}))  # type 0 (constant), value 0
            layer.bottoms = [padded]
            layer.params.update({LEFT: 0, RIGHT: 0, TOP: 0, BOTTOM: 0})
        layers.append(layer)
    g.layers = layers
