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
from .errors import ModelError


MAX_THREADS = 256  # the runtime's limit (runtime/src/model.cc kMaxThreads)

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
        # Refused, not rounded or clamped: 2.5 or 1000 threads is a mistake worth hearing about.
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                    or not 1 <= threads <= MAX_THREADS):
            raise ModelError(f"threads must be a whole number from 1 to {MAX_THREADS} (or None for the big cores "
                             f"of this machine), got {threads!r}")
        load = native.get_function("tvm_ncnn.model_load")
        try:
            self._module = load(_fresh_path(os.path.abspath(path)), int(threads or 0), bool(fp16))
        except Exception as err:
            raise ModelError(_one_line(err)) from None
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
            raise ModelError(_one_line(err)) from None
        return np.from_dlpack(tensor).copy()

    def __call__(self, *arrays):
        if len(arrays) != len(self.inputs):
            raise ModelError(f"{self.path}: expects {len(self.inputs)} input(s), got {len(arrays)}")
        tensors = []
        for array, spec in zip(arrays, self.inputs):
            array = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
            if list(array.shape) != list(spec["shape"]) or str(array.dtype) != spec["dtype"]:
                raise ModelError(f"{self.path}: input {spec['name']} expects {spec['dtype']}{spec['shape']}, "
                                 f"got {array.dtype}{list(array.shape)}")
            tensors.append(tvm_ffi.from_dlpack(array))
        try:
            results = self._run(*tensors)
        except Exception as err:
            raise ModelError(_one_line(err)) from None
        arrays_out = [np.from_dlpack(r).copy() for r in results]
        return arrays_out[0] if len(arrays_out) == 1 else arrays_out


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def load(path, threads: int | None = None, fp16: bool = False) -> LoadedModel:
    """Load model.so. threads=None uses the big cores found on this machine."""
    return LoadedModel(path, threads, fp16)
