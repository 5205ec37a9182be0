"""inspect(): where each op of a model runs (ncnn region or TVM) and why, for a model file or a model.so (what a
model.so holds besides: format/describe.py)."""

from __future__ import annotations

import os

from .format.describe import read_metadata


def is_model_so(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".so")


def inspect(model, input_shapes: dict | None = None, example_inputs=None):
    """The partition report (a PartitionReport): of an exported model.so (stored at export), or computed for a
    model to export."""
    from .partition.placement import PartitionReport

    if is_model_so(model):
        return PartitionReport.from_json(read_metadata(model).get("partition", {}))
    from .compile.lower import partitioned
    from .frontend.importer import import_model

    return partitioned(import_model(model, input_shapes, example_inputs))[1]
