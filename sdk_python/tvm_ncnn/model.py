"""load(): run an exported model.so in this process through the same C++ runtime deploy_app uses."""

from __future__ import annotations

import json
import numbers
import os
import shutil
import tempfile

import numpy as np
import tvm_ffi

from . import native
from .errors import ModelError, last_line


# The dynamic loader hands back the library already loaded from a path, even when the file was replaced since
# (a re-export in a notebook): a changed file at a path seen before is loaded from a private copy instead.
_LOADED_FILES: dict[str, tuple[int, int, int]] = {}


def _fresh_path(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return path  # the runtime reports the missing file
    identity = (st.st_ino, st.st_size, st.st_mtime_ns)
    seen = _LOADED_FILES.setdefault(path, identity)
    if seen == identity:
        return path
    fd, copy = tempfile.mkstemp(suffix=".so", prefix="tvm_ncnn_")
    with os.fdopen(fd, "wb") as dst, open(path, "rb") as src:
        shutil.copyfileobj(src, dst)
    _LOADED_FILES[path] = identity
    return copy


class LoadedModel:
    """Callable on numpy arrays; returns one array, or a list when the model has several outputs."""

    def __init__(self, path: str, threads: int | None = None, fp16: bool = False):
        path = os.fspath(path)
        load = native.get_function("tvm_ncnn.model_load")
        # Refused, not rounded or clamped: 2.5 or 1000 threads is a mistake worth hearing about. (0 is the
        # runtime's "detect", which Python spells None.)
        max_threads = native.limits()["max_threads"]
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                    or not 1 <= threads <= max_threads):
            raise ModelError(f"threads must be a whole number from 1 to {max_threads} (or None for the big cores "
                             f"of this machine), got {threads!r}")
        try:
            self._module = load(_fresh_path(os.path.abspath(path)), int(threads or 0), bool(fp16))
        except Exception as err:
            raise ModelError(last_line(err)) from None
        self._run = self._module["run"]
        self.info_json = str(self._module["info_json"]())
        self.info = json.loads(self.info_json)
        self.path = path
        native.size_tvm_pool(self.threads)

    @property
    def threads(self) -> int:
        return int(self.info.get("threads", 0))

    @property
    def inputs(self) -> list[dict]:
        return self.info["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.info["outputs"]

    @property
    def labels(self) -> list[str]:
        return self.info.get("labels", [])

    def load_image(self, path) -> np.ndarray:
        """Decode and preprocess an image exactly as deploy_app does (resize, mean/std, channel order)."""
        try:
            tensor = native.get_function("tvm_ncnn.load_image")(os.path.abspath(os.fspath(path)), self.info_json)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(last_line(err)) from None
        return np.from_dlpack(tensor).copy()

    def __call__(self, *arrays):
        try:
            # The runtime checks the count, shapes and dtypes (runtime.h CheckInput), as for deploy_app.
            tensors = [tvm_ffi.from_dlpack(np.require(array, requirements="C")) for array in arrays]
            results = self._run(*tensors)
        except Exception as err:
            raise ModelError(last_line(err)) from None
        arrays_out = [np.from_dlpack(r).copy() for r in results]
        return arrays_out[0] if len(arrays_out) == 1 else arrays_out


def load(path, threads: int | None = None, fp16: bool = False) -> LoadedModel:
    """Load model.so. threads=None uses the big cores found on this machine."""
    return LoadedModel(path, threads, fp16)
