"""Rank-6 window partitions as rank-5 permutes, a value-preserving Relax rewrite run before partitioning.

Swin's window partition is reshape [1, H, W, C] -> [1, H/7, 7, W/7, 7, C], permute (0, 1, 3, 2, 4, 5), reshape
to windows; the window reverse and patch merging are the same sandwich with other orders. ncnn's blobs have at
most four axes beside the batch, so the rank-6 tensors kept all of it in TVM, splitting every block into regions.

Axes that stay next to each other, in the same order, through the permutation move as one: merged, the
partition is [1, H/7, 7, W/7, 7*C] with order (0, 1, 3, 2, 4), a Permute ncnn has. The rewrite replaces
reshape -> permute_dims -> reshape by reshape (merged) -> permute_dims (merged) -> reshape, skipping the rank-6
tensors, whenever the merged form has at most four axes beside a batch of 1. Static shapes only.

A permutation that still moves five axes after merging (MobileViT-v2's unfold: [C, nh, ph, nw, pw] to
[C, ph, pw, nh, nw]) becomes a chain of Permutes of at most four axes each (permute_steps): each step moves one
run of axes to its place in front of the axes it belongs before, a rotation of at most four groups.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from ..relax_util import shape_of

MAX_RANK = 5  # ncnn's blobs: a batch of 1 and up to four axes


def merged_permute(shape: list[int], perm: list[int]) -> tuple[list[int], list[int]]:
    """(merged input shape, merged order) moving the same data as permute_dims(reshape(x, shape), perm): axes of
    size 1 dropped, runs of input axes that stay adjacent and in order in the output merged into one."""
    kept = [a for a in range(len(shape)) if shape[a] != 1]
    position = {a: i for i, a in enumerate(kept)}
    runs: list[list[int]] = []  # in output order
    for axis in perm:
        if shape[axis] == 1:
            continue
        if runs and position[runs[-1][-1]] + 1 == position[axis]:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    by_input = sorted(runs, key=lambda run: run[0])
    merged = [int(np.prod([shape[a] for a in run])) for run in by_input]
    return merged, [by_input.index(run) for run in runs]


def permute_steps(shape: list[int], order: list[int]) -> list[tuple[list[int], list[int]]]:
    """[(merged shape, merged order)] whose Permutes, one after another (each on the previous one's output viewed
    at its merged shape), move the same data as permute_dims(reshape(x, shape), order); each has at most
    MAX_RANK - 1 axes. Each step takes the longest run the output wants next at the first place it differs and
    moves it there: the axes before it, the axes it jumps, the run and the rest are at most four groups."""
    merged, order = merged_permute(shape, order)
    if len(merged) < MAX_RANK:
        return [(merged, order)]
    size = dict(enumerate(merged))
    layout, steps = list(range(len(merged))), []
    for p in range(len(order)):
        if layout[p] == order[p]:
            continue
        q = layout.index(order[p])
        k = 1
        while q + k < len(layout) and p + k < len(order) and layout[q + k] == order[p + k]:
            k += 1
        moved = layout[:p] + layout[q:q + k] + layout[p:q] + layout[q + k:]
        groups = [g for g in (layout[:p], layout[p:q], layout[q:q + k], layout[q + k:]) if g]
        view = [int(np.prod([size[a] for a in g])) for g in groups]
        swap = [0, 2, 1, 3] if p else [1, 0, 2]  # rotate the jumped axes and the run
        steps.append(merged_permute(view, swap[:len(groups)]))
        layout = moved
    return steps


def _window_permutes(func: relax.Function) -> relax.Function:
    source = wildcard()
    split = is_op("relax.reshape")(source, wildcard())
    moved = is_op("relax.permute_dims")(split)
    pattern = is_op("relax.reshape")(moved, wildcard())

    def rewrite(call, matches):
        inner, permute = matches[split], matches[moved]
        shape, out = shape_of(inner), shape_of(call)
        if shape is None or out is None or len(shape) <= MAX_RANK or permute.attrs.axes is None:
            return call
        x = matches[source]
        for merged, order in permute_steps(shape, [int(a) for a in permute.attrs.axes]):
            x = relax.op.reshape(x, [1, *merged])
            if order != sorted(order):
                x = relax.op.permute_dims(x, [0, *(a + 1 for a in order)])
        return relax.op.reshape(x, out)

    return rewrite_call(pattern, rewrite, func)


def simplify(func: relax.Function) -> relax.Function:
    return _window_permutes(func)
