"""tvm-ncnn: deploy a vision model as one model.so where ncnn runs every subgraph it can and TVM the rest."""

import importlib


def _sdk_version() -> str:
    """The version written in sdk_python/pyproject.toml, its one home (CMake reads it there for the runtime). From
    the file itself when this package is the source tree (an editable install, PYTHONPATH): installed metadata
    would lag behind an edit until the next install. From the installed distribution's metadata otherwise."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
        if found:
            return found.group(1)
    from importlib.metadata import PackageNotFoundError

    for dist in ("tvm-ncnn", "tvm-ncnn-runtime"):  # the SDK wheel, or the device's runtime-only wheel
        try:
            return version(dist)
        except PackageNotFoundError:
            pass
    return "unknown"


__version__ = _sdk_version()

from .errors import ModelError  # noqa: E402

# Exporting needs TVM's compiler (hundreds of MB once imported); running a model.so needs only the runtime, and
# reading one (`tvm-ncnn inspect`) neither: tvm_ffi alone imports torch when it is installed (over a second).
# Each side is imported on first use, so `tvm_ncnn.load` in an application stays small and inspect stays quick.
_LAZY = {"load": "runtime.model", "LoadedModel": "runtime.model", "export": "exporter.api",
         "ExportResult": "exporter.api", "Preprocess": "meta.preprocess", "import_model": "frontend.importer",
         "PartitionReport": "partition.placement", "Task": "meta.postprocess", "inspect": "inspection", "read_metadata": "format.describe"}
# Modules reached as attributes of the package (tvm_ncnn.signing.verify(...)) without importing them by hand.
_MODULES = {"signing": "format.signing", "zoo": "zoo"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{_MODULES[name]}", __name__)
    else:
        raise AttributeError(f"module 'tvm_ncnn' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["export", "load", "inspect", "read_metadata", "import_model", "Preprocess", "Task", "ExportResult",
           "LoadedModel", "PartitionReport", "ModelError", "__version__"]
