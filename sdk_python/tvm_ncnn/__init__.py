"""tvm-ncnn: deploy a vision model as one model.so where ncnn runs every subgraph it can and TVM the rest."""

import importlib

__version__ = "0.1.0"

from .errors import ModelError  # noqa: E402
from .model import LoadedModel, load  # noqa: E402

# Exporting needs TVM's compiler (hundreds of MB once imported); running a model.so needs only the runtime. The
# export side is imported on first use, so `tvm_ncnn.load` in an application stays small.
_LAZY = {"export": "exporter", "ExportResult": "exporter", "Preprocess": "exporter", "import_model": "frontend",
         "PartitionReport": "partition", "inspect": "inspection"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tvm_ncnn' has no attribute {name!r}")


__all__ = ["export", "load", "inspect", "import_model", "Preprocess", "ExportResult", "LoadedModel",
           "PartitionReport", "ModelError", "__version__"]
