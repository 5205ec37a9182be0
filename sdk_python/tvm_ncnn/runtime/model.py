"""load(): run an exported model.so in this process through the same C++ runtime deploy_app uses."""

from __future__ import annotations

import json
import numbers
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import tvm_ffi

from . import images, native
from ..errors import ModelError, last_line
from ..meta.precision import load_request

MAX_PROFILE_RUNS = 100_000  # runtime.h kMaxProfileRuns


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


@dataclass
class Profile:
    """Where a run's time goes (LoadedModel.profile): one row per function the model calls -- each ncnn region, each
    TVM function, the VM's builtins, and "other" for the rest of the run -- slowest first. Each row is a dict:
    name, kind ("ncnn region", "tvm", "vm", "other"), calls (per run), ms (per run), share (of run_ms, 0..1),
    ncnn_layers (regions; -1 otherwise). print() shows the table deploy_app --profile prints."""

    runs: int
    run_ms: float
    rows: list[dict]
    table: str

    def share(self, kind: str) -> float:
        """The share of the run spent in rows of this kind, 0..1 (e.g. "tvm": what stays in TVM)."""
        return sum(row["share"] for row in self.rows if row["kind"] == kind)

    def __str__(self) -> str:
        return self.table


class LoadedModel:
    """model(*inputs) -> a list of numpy arrays, one per output in the order of model.outputs, whatever their
    number; model.single(*inputs) -> the array of a one-output model. Inputs must have the dtype the model takes:
    a float64 array for a float32 input is refused with the fix (x.astype(np.float32)), never converted
    silently, as deploy_app refuses a float64 .npy."""

    def __init__(self, path: str, threads: int | None = None, precision: str | None = None,
                 fp16: bool | None = None, trust=None):
        path = os.fspath(path)
        asked = load_request(precision, fp16)
        load = native.get_function("tvm_ncnn.model_load")
        # Refused, not rounded or clamped: 2.5 or 1000 threads is a mistake worth hearing about. (0 is the
        # runtime's "detect", which Python spells None.)
        max_threads = native.limits()["max_threads"]
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                    or not 1 <= threads <= max_threads):
            raise ModelError(f"threads must be a whole number from 1 to {max_threads} (or None for the big cores "
                             f"of this machine), got {threads!r}")
        try:
            self._module = load(_fresh_path(os.path.abspath(path)), int(threads or 0), asked,
                                os.fspath(trust) if trust is not None else "")
        except Exception as err:
            raise ModelError(last_line(err)) from None
        self._run = self._module["run"]
        # Calls from several threads run at once (the runtime gives each its own execution context over the one
        # copy of the weights): tvm_ffi releases the GIL during a call by default; say so here rather than rely on
        # its TVM_FFI_RELEASE_GIL_BY_DEFAULT environment variable.
        self._run.release_gil = True
        self.info_json = str(self._module["info_json"]())
        self.info = json.loads(self.info_json)
        self.path = path
        native.size_tvm_pool(self.threads)

    @property
    def threads(self) -> int:
        return int(self.info.get("threads", 0))

    @property
    def thread_policy(self) -> str:
        """How the threads wait, in words (deploy_app prints the same under its threads line): by default "one pool:
        TVM ops on ncnn's OpenMP threads, libgomp's default wait (native ncnn's)" -- the same whether or not torch
        (and its libgomp) was imported first; README "Threads"."""
        return str(self.info.get("thread_policy", ""))

    @property
    def signer(self) -> str:
        """The fingerprint of the trusted key (load(trust=)) that verified model.so's signature; "" without trust."""
        return str(self.info.get("signer", ""))

    @property
    def precision(self) -> str:
        """What runs: "fp32", "fp16" (only on a CPU with fp16 arithmetic), "int8" or "int8+fp16";
        info["precision"] is what export recorded."""
        return str(self.info.get("run_precision", "fp32"))

    @property
    def inputs(self) -> list[dict]:
        return self.info["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.info["outputs"]

    @property
    def labels(self) -> list[str]:
        return self.info.get("labels", [])

    def load_image(self, image, pixel_format: str | None = None) -> np.ndarray:
        """The model's input for an image, preprocessed by the runtime exactly as deploy_app does (resize mode,
        mean/std, channel order: the model.so's metadata): a path (JPEG/PNG/BMP), a numpy uint8 array of pixels
        (H x W x 3 RGB, x 4 RGBA, H x W gray; pixel_format "BGR" for OpenCV frames, "BGRA" for picamera2's
        XRGB8888, "RGB", "RGBA", "GRAY"), at any row stride, or a PIL image. The same pixels give the same tensor,
        bit for bit, from a file or from memory, here and in C++ (PreprocessImage)."""
        try:
            if isinstance(image, (str, bytes, os.PathLike)):
                if pixel_format is not None:
                    raise ModelError("pixel_format is for arrays of pixels; a file says its own format")
                path = os.path.abspath(os.fsdecode(image))
                tensor = native.get_function("tvm_ncnn.load_image")(path, self.info_json)
            else:
                pixels, fmt = images.pixels_of(image, pixel_format)
                tensor = self._module["preprocess_image"](tvm_ffi.from_dlpack(pixels), fmt)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(last_line(err)) from None
        return np.from_dlpack(tensor).copy()

    def image_transform(self, image) -> images.ImageTransform:
        """Where an image of this size lands in the input (scale and offsets; letterbox padding), to map what the
        model finds back to the image: image is (width, height), a numpy array of pixels or a PIL image."""
        width, height = images.size_of(image)
        try:
            t = self._module["image_transform"](int(width), int(height))
        except Exception as err:
            raise ModelError(last_line(err)) from None
        return images.ImageTransform(**{key: (float(v) if key.startswith(("scale", "offset")) else int(v))
                                        for key, v in t.items()})

    def detect(self, image, score=None, iou=None, max_detections=None, pixel_format=None):
        """A detector's boxes (and masks or keypoints) on an image, in its pixels: load_image, the model, then the
        runtime's post-processing as model.so records it (runtime/detect.py, the code deploy_app runs). score/iou/
        max_detections override the recorded defaults."""
        x = self.load_image(image, pixel_format)
        size = images.size_of(image) if not isinstance(image, (str, bytes, os.PathLike)) else _image_size(image)
        return self.postprocess(self(x), self.image_transform(size), score, iou, max_detections)

    def postprocess(self, outputs, transform, score=None, iou=None, max_detections=None):
        """detect.Detections of this model's raw outputs; transform: image_transform(...) of the image."""
        from .detect import postprocess

        return postprocess(self.info_json, outputs, transform, score, iou, max_detections)

    def __call__(self, *arrays) -> list[np.ndarray]:
        tensors = self._tensors(arrays)
        try:
            results = self._run(*tensors)
        except Exception as err:
            raise ModelError(last_line(err)) from None
        return [np.from_dlpack(r) for r in results]  # each owns its bytes (the runtime's copy out of the model)

    def single(self, *arrays) -> np.ndarray:
        """The output of a model that has one (model(...)[0]); refused for a model with several."""
        if len(self.outputs) != 1:
            names = ", ".join(f"'{o['name']}'" for o in self.outputs)
            raise ModelError(f"{self.path} has {len(self.outputs)} outputs ({names}); call model(x) for the list")
        return self(*arrays)[0]

    def _tensors(self, arrays) -> list:
        """The inputs as tensors. The runtime checks count and shapes (runtime.h CheckInput, as for deploy_app);
        the dtype is checked here first, so that the refusal can say how to convert."""
        tensors = []
        for i, array in enumerate(arrays):
            array = np.asarray(array)
            spec = self.inputs[i] if i < len(self.inputs) else None
            if spec is not None and array.dtype != np.dtype(spec["dtype"]):
                shape = lambda dims: "[" + ",".join(map(str, dims)) + "]"  # noqa: E731  (runtime ShapeString)
                raise ModelError(f"input '{spec['name']}' expects {shape(spec['shape'])} {spec['dtype']}, got "
                                 f"{shape(array.shape)} {array.dtype}: pass x.astype(np.{spec['dtype']}) (arrays "
                                 f"are not converted silently)")
            try:
                tensors.append(tvm_ffi.from_dlpack(np.require(array, requirements="C")))
            except Exception as err:
                raise ModelError(last_line(err)) from None
        return tensors

    def profile(self, *arrays, repeat: int = 10) -> Profile:
        """Run once to warm up, then `repeat` times timing every call: see Profile. Plain calls are not slowed
        afterwards."""
        if (isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral)
                or not 1 <= repeat <= MAX_PROFILE_RUNS):
            raise ModelError(f"repeat must be a whole number from 1 to {MAX_PROFILE_RUNS}, got {repeat!r}")
        tensors = self._tensors(arrays)
        try:
            result = self._module["profile"](int(repeat), *tensors)
        except Exception as err:
            raise ModelError(last_line(err)) from None
        rows = [{key: (str(value) if key in ("name", "kind") else
                       int(value) if key == "ncnn_layers" else float(value)) for key, value in row.items()}
                for row in result["rows"]]
        return Profile(runs=int(result["runs"]), run_ms=float(result["run_ms"]), rows=rows, table=str(result["table"]))


def _image_size(path) -> tuple[int, int]:
    from PIL import Image  # reads the header only

    with Image.open(os.fsdecode(path)) as im:
        return im.size


def load(path, threads: int | None = None, precision: str | None = None, fp16: bool | None = None,
         trust=None) -> LoadedModel:
    """Load model.so. threads=None uses the big cores found on this machine. precision=None runs it as exported;
    "fp32" or "fp16" overrides that (fp16 runs only where the CPU has fp16 arithmetic; model.precision says what
    runs). fp16=True/False is the older spelling of precision="fp16"/"fp32". trust: a public key file (tvm-ncnn
    keygen's KEY.pub); given, a model.so that key did not sign is refused before it is loaded (README "Trust")."""
    return LoadedModel(path, threads, precision, fp16, trust)
