"""Graph passes that remove Reshape layers around token rows.

A transformer block on a [patches, tokens, C] tensor (MobileViT) or [windows, tokens, C] (EfficientViT) reaches
the ncnn graph as Gemm layers that take rows, each wrapped in a Reshape to [rows, C] and one back, because
everything between them (LayerNorm, the residual add, activations) was converted in the tensor's own shape.
Those layers do not care how the leading dimensions are grouped, so they can run on [rows, C] as well: the
rows pass moves such groups of layers to the 2-D form, after which the Reshape pairs are identities that
fold_reshapes removes (together with any chain of Reshapes, which is one Reshape: ncnn reshapes in flat order).
"""

from __future__ import annotations

import math

from .graph import Layer, NcnnGraph, shape_params

# Layers that compute each element from the same element of their inputs (no per-channel weights)
ELEMENTWISE = {"ReLU", "Sigmoid", "Swish", "GELU", "TanH", "HardSwish", "HardSigmoid", "Clip", "ELU", "Mish",
               "UnaryOp", "Erf"}


def reshape_shape(layer: Layer) -> list[int]:
    """The shape a Reshape layer writes, outermost first (the inverse of graph.shape_params)."""
    p = layer.params
    keys = (2, 11, 1, 0) if 11 in p else (2, 1, 0) if 2 in p else (1, 0) if 1 in p else (0,)
    return [int(p[k]) for k in keys]


def infer_shapes(g: NcnnGraph) -> None:
    """Fill g.shapes for the blobs converters made inside one op (a Gemm's rows, the Reshapes around it)."""
    for layer in g.layers:
        known = [g.shapes.get(b) for b in layer.bottoms]
        for top in layer.tops:
            if top in g.shapes:
                continue
            if layer.type == "Reshape":
                g.shapes[top] = reshape_shape(layer)
            elif layer.type == "Gemm" and known and known[0] and len(known[0]) == 2 and 8 in layer.params:
                g.shapes[top] = [known[0][0], int(layer.params[8])]
            elif _row_wise(layer, g) and known[0]:
                g.shapes[top] = list(known[0])


def _row_wise(layer: Layer, g: NcnnGraph) -> bool:
    """True when the layer computes each row of its inputs' last dimension on its own (so it may run on any
    grouping of the leading dimensions): elementwise layers, a BinaryOp of equal shapes or with a scalar, a
    LayerNorm over the last dimension."""
    shapes = [g.shapes.get(b) for b in layer.bottoms]
    if not shapes or any(s is None for s in shapes) or len(layer.tops) != 1:
        return False
    if layer.type in ELEMENTWISE:
        return True
    if layer.type == "BinaryOp":
        return len(shapes) == 1 and bool(layer.params.get(1)) or len(shapes) == 2 and shapes[0] == shapes[1]
    if layer.type == "LayerNorm":
        return int(layer.params.get(0, 0)) == shapes[0][-1]
    return False


def _groups(g: NcnnGraph) -> list[set[str]]:
    """Blobs joined by row-wise layers (each group shares one shape), for groups whose shape is deeper than 2-D."""
    parent: dict[str, str] = {}

    def find(b: str) -> str:
        while parent.setdefault(b, b) != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    for layer in g.layers:
        if _row_wise(layer, g):
            for b in layer.bottoms + layer.tops:
                parent[find(b)] = find(layer.tops[0])
    groups: dict[str, set[str]] = {}
    for b in parent:
        groups.setdefault(find(b), set()).add(b)
    return [blobs for blobs in groups.values() if len(g.shapes[next(iter(blobs))]) > 2]


def rows_as_matrices(g: NcnnGraph, outputs: list[str]) -> list[str]:
    """Run each group of row-wise layers on [rows, C] where that saves layers: Reshapes in and out of the group
    take the 2-D shape, and any other layer that reads or writes the group's blobs gets one Reshape between."""
    infer_shapes(g)
    producer = {top: layer for layer in g.layers for top in layer.tops}
    readers = g.readers()
    groups = _groups(g)
    row_blobs = {b for blobs in groups for b in blobs}
    for blobs in groups:
        shape = g.shapes[next(iter(blobs))]
        matrix = [math.prod(shape[:-1]), shape[-1]]

        def two_d(b: str) -> bool:  # would this blob be [rows, C] once every group is moved?
            return g.shapes.get(b) == matrix or b in row_blobs and g.shapes[b][-1] == matrix[-1]

        members = {id(layer) for b in blobs for layer in readers.get(b, []) if _row_wise(layer, g)}
        costs = [b for b in blobs if _needs_own_shape_in(producer.get(b), members)]
        costs += list({b for b in blobs for r in readers.get(b, []) if _needs_own_shape_out(r, members)})
        costs += [b for b in blobs if b in outputs]
        gains = [r for b in blobs for r in readers.get(b, []) if r.type == "Reshape" and two_d(r.tops[0])]
        gains += [p for b in blobs if (p := producer.get(b)) and p.type == "Reshape" and two_d(p.bottoms[0])]
        if len(gains) > len(costs):
            _move_to_rows(g, blobs, matrix, members, readers, outputs)
    return outputs


def _needs_own_shape_in(layer: Layer | None, members: set[int]) -> bool:
    return layer is not None and id(layer) not in members and layer.type not in ("Reshape", "MemoryData")


def _needs_own_shape_out(layer: Layer, members: set[int]) -> bool:
    return id(layer) not in members and layer.type != "Reshape"


def _move_to_rows(g: NcnnGraph, blobs: set[str], matrix: list[int], members: set[int],
                  readers: dict[str, list[Layer]], outputs: list[str]) -> None:
    """Blobs of the group become [rows, C]; a blob that a layer outside the group produces or reads in its own
    shape keeps that name, and the rows get a new one with a Reshape between."""
    renamed: dict[str, str] = {}  # blob in its own shape -> its [rows, C] name, where the two differ
    layers: list[Layer] = []
    for layer in g.layers:
        if id(layer) in members or layer.type == "Reshape":
            layer.bottoms = [renamed.get(b, b) for b in layer.bottoms]
        layers.append(layer)
        for top in [t for t in layer.tops if t in blobs]:
            own = g.shapes[top]
            if _needs_own_shape_in(layer, members):  # the producer writes its shape: add the rows after it
                rows = g.new_blob(top + "_rows")
                layers.append(Layer("Reshape", f"reshape_{rows}", [top], [rows], shape_params(matrix)))
                renamed[top] = rows
                g.shapes[rows] = matrix
                continue
            if layer.type in ("Reshape", "MemoryData"):
                layer.params.update(shape_params(matrix))
                for k in set(layer.params) & {2, 11}:
                    del layer.params[k]
            reads_own = top in outputs or any(_needs_own_shape_out(r, members) for r in readers.get(top, []))
            if reads_own:  # readers outside the group (and region outputs) keep the name, in its own shape
                rows = g.new_blob(top + "_rows")
                layer.tops[layer.tops.index(top)] = rows
                layers.append(Layer("Reshape", f"reshape_{top}", [rows], [top], shape_params(own)))
                renamed[top] = rows
                g.shapes[rows] = matrix
            else:
                g.shapes[top] = matrix
    g.layers = layers


def fold_reshapes(g: NcnnGraph, outputs: list[str]) -> list[str]:
    """A Reshape of a Reshape reads the first one's input (ncnn reshapes in flat order), a Reshape to the shape
    its input already has is dropped, and a Reshape nothing reads any more goes."""
    infer_shapes(g)
    producer = {top: layer for layer in g.layers for top in layer.tops}
    alias: dict[str, str] = {}
    for layer in g.layers:
        layer.bottoms = [alias.get(b, b) for b in layer.bottoms]
        if layer.type != "Reshape":
            continue
        source = producer.get(layer.bottoms[0])
        if source is not None and source.type == "Reshape":
            layer.bottoms = list(source.bottoms)
        top = layer.tops[0]
        if g.shapes.get(layer.bottoms[0]) == g.shapes.get(top) is not None and top not in outputs:
            alias[top] = layer.bottoms[0]
    read = {b for layer in g.layers for b in layer.bottoms} | set(outputs)
    g.layers = [layer for layer in g.layers
                if layer.type != "Reshape" or (layer.tops[0] in read and layer.tops[0] not in alias)]
    return outputs
