"""inspect(): where each op of a model runs (ncnn region or TVM) and why, for a model file or a model.so."""

from __future__ import annotations

import json
import os

from . import native
from .errors import ModelError, last_line
from .frontend import import_model
from .partition import PartitionReport, partition, report


def inspect(model, input_shapes: dict | None = None, example_inputs=None) -> PartitionReport:
    """The partition report: of an exported model.so (stored at export), or computed for a model to export."""
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".so"):
        return PartitionReport.from_json(read_metadata(os.fspath(model)).get("partition", {}))
    imported = import_model(model, input_shapes, example_inputs)
    return report(partition(imported.mod))


def read_metadata(path: str) -> dict:
    """The metadata stored in a model.so, without preparing it to run."""
    import tvm

    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such file")
    native.library_path()
    try:
        module = tvm.runtime.load_module(os.path.abspath(path))
    except Exception as err:
        raise ModelError(f"{path}: not a loadable model.so ({last_line(err)})") from None
    func = module.get_function("tvm_ncnn.metadata", query_imports=True) if hasattr(module, "get_function") \
        else None
    if func is None:
        raise ModelError(f"{path}: not a tvm-ncnn model (no metadata)")
    return json.loads(str(func()))
