"""tvm-ncnn: deploy a vision model as one model.so where ncnn runs every subgraph it can and TVM the rest."""

__version__ = "0.1.0"

from .errors import ModelError  # noqa: E402
from .export import ExportResult, Preprocess, export  # noqa: E402
from .frontend import import_model  # noqa: E402
from .model import LoadedModel, load  # noqa: E402
from .partition import PartitionReport  # noqa: E402
from .inspection import inspect  # noqa: E402

__all__ = ["export", "load", "inspect", "import_model", "Preprocess", "ExportResult", "LoadedModel",
           "PartitionReport", "ModelError", "__version__"]
