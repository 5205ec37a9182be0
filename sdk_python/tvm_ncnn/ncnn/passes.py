"""Rewrites of a finished ncnn graph, run in a fixed order before it is written (as pnnx's pass_ncnn does).

Each pass takes the graph and the region's output blobs and changes the graph in place; a pass that renames
blobs returns the new output names. Rewrites that need Relax-level facts (which calls a value comes from, LRN's
nine-call spelling, ShuffleNet's reshape/permute/reshape) are fused patterns in ops/ instead: they decide what
is offloaded at all, before any ncnn graph exists.
"""

from __future__ import annotations

from .graph import Layer, NcnnGraph
from .row_reshapes import fold_reshapes, rows_as_matrices


def crop_range(layer: Layer) -> tuple[int, int, int] | None:
    """(ncnn axis, begin, end) of a Crop that cuts one axis with explicit bounds, else None."""
    p = layer.params
    if layer.type != "Crop" or not all(k in p for k in (9, 10, 11)) or len(p[11]) != 1:
        return None
    return int(p[11][0]), int(p[9][0]), int(p[10][0])


def merge_crops_into_slice(g: NcnnGraph, outputs: list[str]) -> list[str]:
    """Crops that between them tile one axis of a blob (ShuffleNet's channel split, EfficientViT's heads) become
    one Slice: one layer and no Split in front, as pnnx writes it."""
    position = {id(layer): i for i, layer in enumerate(g.layers)}
    replaced: dict[int, Layer | None] = {}  # id of a merged Crop -> the Slice taking its place, or None
    for blob, readers in g.readers().items():
        crops = [r for r in readers if crop_range(r) is not None]  # other readers keep reading the blob
        ranges = [crop_range(c) for c in crops]
        shape = g.shapes.get(blob)
        if len(crops) < 2 or None in ranges or shape is None:
            continue
        order = sorted(range(len(crops)), key=lambda i: ranges[i])
        crops, ranges = [crops[i] for i in order], [ranges[i] for i in order]
        axes = {axis for axis, _, _ in ranges}
        if len(axes) != 1:
            continue
        axis = axes.pop()
        bounds = [(begin, end) for _, begin, end in ranges]
        tiled = bounds[0][0] == 0 and bounds[-1][1] == shape[axis] and all(
            end == next_begin for (_, end), (next_begin, _) in zip(bounds, bounds[1:]))
        if not tiled or any(begin == end for begin, end in bounds):
            continue
        merged = Layer("Slice", f"slice_{blob}", [blob], [c.tops[0] for c in crops],
                       {0: [end - begin for begin, end in bounds], 1: axis})
        first = min(crops, key=lambda c: position[id(c)])
        replaced.update({id(c): merged if c is first else None for c in crops})
    g.layers = [replaced.get(id(layer), layer) for layer in g.layers if replaced.get(id(layer), layer) is not None]
    return outputs


def insert_splits(g: NcnnGraph, outputs: list[str]) -> list[str]:
    """ncnn wants every blob consumed at most once: a blob that feeds several layers (or a layer and a region
    output) goes through a Split layer first. Returns the output names to extract."""
    uses: dict[str, int] = {}
    for b in [b for layer in g.layers for b in layer.bottoms] + outputs:
        uses[b] = uses.get(b, 0) + 1
    split_names: dict[str, list[str]] = {}  # blob -> the names its readers take, in order

    def take(blob: str) -> str:
        return split_names[blob].pop(0) if blob in split_names else blob

    layers = []
    for layer in g.layers:
        layer.bottoms = [take(b) for b in layer.bottoms]
        layers.append(layer)
        for top in layer.tops:
            if uses.get(top, 0) > 1:
                names = [f"{top}_{i}" for i in range(uses[top])]
                layers.append(Layer("Split", f"split_{top}", [top], list(names)))
                split_names[top] = names
    g.layers = layers
    return [take(b) for b in outputs]


# The fixed order: rewrites first, Split insertion last (it must see every reader the rewrites leave).
PASSES = (merge_crops_into_slice, rows_as_matrices, fold_reshapes, insert_splits)

# ncnn layer types the passes write, for the vendored-layer check
LAYERS = ("Slice", "Split")


def run_passes(g: NcnnGraph, outputs: list[str]) -> list[str]:
    for rewrite in PASSES:
        outputs = rewrite(g, outputs)
    return outputs
