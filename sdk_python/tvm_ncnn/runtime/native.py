"""The C++ runtime library (libtvm_ncnn_runtime.so) loaded into this process: it registers the `ncnn` and
`tvm_ncnn_meta` module kinds that export writes and load reads."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from pathlib import Path

import tvm_ffi

from ..errors import ModelError, last_line

LIBRARY = "libtvm_ncnn_runtime.so"
THREADS_LIBRARY = "libtvm_ncnn_threads.so"
ENV = "TVM_NCNN_RUNTIME_LIB"


def candidates() -> list[Path]:
    package = Path(__file__).resolve().parents[1]  # tvm_ncnn/
    found = []
    if os.environ.get(ENV):
        found.append(Path(os.environ[ENV]))
    found.append(package / "lib" / LIBRARY)                           # installed inside the package
    found.append(package.parents[1] / "build" / "host" / "lib" / LIBRARY)  # a source checkout's host build
    return found


@functools.lru_cache(maxsize=None)
def _policy_library(runtime: str) -> ctypes.CDLL:
    """libtvm_ncnn_threads.so, built next to the runtime library: the thread policy's one home
    (runtime/src/threads/thread_policy.cc), in a library that loads no libgomp. libgomp reads GOMP_SPINCOUNT when
    it is loaded, which is when the runtime library is; so the variables are asked for here, and set, first."""
    path = Path(runtime).with_name(THREADS_LIBRARY)
    if not path.is_file():
        raise ModelError(f"{path} is missing (it is built and installed with {runtime}): rebuild the runtime with "
                         f"'cmake --build build/host', or install it whole")
    lib = ctypes.CDLL(str(path))
    lib.tvm_ncnn_thread_env.argtypes = [ctypes.c_int]
    lib.tvm_ncnn_thread_env.restype = ctypes.c_char_p
    return lib


def _apply_thread_policy(runtime: str, threads: int) -> None:
    """deploy_app's thread defaults (README, "Threads"; runtime.h CoordinateThreads) for this process: the
    variables not set already, none with TVM_NCNN_WAIT_POLICY=inherit. threads 0: TVM_NUM_THREADS stays as it is."""
    for line in _policy_library(runtime).tvm_ncnn_thread_env(threads).decode().splitlines():
        name, _, value = line.partition("=")
        os.environ[name] = value


def size_tvm_pool(threads: int) -> None:
    """TVM's thread pool as big as ncnn's, as deploy_app sets it; TVM reads this when it starts the pool, at
    its first parallel op (after loading, so the thread count is known)."""
    _apply_thread_policy(library_path(), threads)


def _find_runtime() -> str:
    for path in candidates():
        if path.is_file():
            return str(path)
    tried = ", ".join(str(p) for p in candidates())
    raise ModelError(f"the tvm-ncnn runtime library is not built (looked for {tried}); build it with "
                     f"'cmake -S . -B build/host -G Ninja && cmake --build build/host' or set {ENV}")


@functools.lru_cache(maxsize=None)
def library_path() -> str:
    path = _find_runtime()
    _apply_thread_policy(path, 0)  # before libgomp is loaded, with the runtime library
    _load_tvm_copies_first()  # TVM's tvm.contrib.sort.* registered before the runtime's
    ctypes.CDLL(path, ctypes.RTLD_GLOBAL)
    return path


def spin_counts() -> tuple[int, int]:
    """(GOMP_SPINCOUNT, TVM_THREAD_POOL_SPIN_COUNT) as deploy_app sets them on this machine. Read from the thread
    policy library alone: the runtime (and libgomp) is not loaded, and the environment is left as it is."""
    policy = _policy_library(_find_runtime())
    return policy.tvm_ncnn_gomp_spin_count(), policy.tvm_ncnn_tvm_spin_count()


def get_function(name: str):
    library_path()
    func = tvm_ffi.get_global_func(name, allow_missing=True)
    if func is None:
        raise ModelError(f"{library_path()} does not provide {name}: rebuild the runtime library")
    return func


def versions() -> dict[str, str]:
    """The runtime's versions: sdk, tvm, ncnn, and metadata_format (the metadata JSON's format_version)."""
    return {str(k): str(v) for k, v in get_function("tvm_ncnn.versions")().items()}


@functools.lru_cache(maxsize=None)
def limits() -> dict[str, int]:
    """The runtime's limits: max_threads."""
    return {str(k): int(v) for k, v in get_function("tvm_ncnn.limits")().items()}


def top_k(output, labels, k: int) -> dict:
    """The k best classes of a model output as deploy_app prints them (runtime.h ScoreTopK): {"kind",
    "description", "classes": [(index, label, score), ...]}, best first."""
    import numpy as np

    try:
        tensor = tvm_ffi.from_dlpack(np.ascontiguousarray(output))
        result = get_function("tvm_ncnn.top_k")(tensor, [str(label) for label in labels], int(k))
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(last_line(err)) from None
    classes = list(zip((int(i) for i in result["index"]), (str(l) for l in result["label"]),
                       (float(x) for x in result["score"])))
    return {"kind": str(result["kind"]), "description": str(result["description"]), "classes": classes}


def seal(path) -> None:
    """Append model.so's seal (runtime/FORMAT.md, "Seal"): a checksum of every byte of the file, which the runtime
    checks before loading it, so that a model.so corrupted anywhere -- TVM's code and bytecode included, which TVM
    does not check -- is refused instead of crashing. Sealing a sealed file changes nothing."""
    try:
        get_function("tvm_ncnn.seal_model")(os.fspath(path))
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(last_line(err)) from None


def _load_tvm_copies_first() -> None:
    """Load TVM's own libtvm_runtime_extra.so, where TVM is installed, before the runtime library: both register
    `tvm.contrib.sort.*`, and a name registered twice aborts the process. The runtime registers its copies only
    where the name is free; TVM's library does not check, so it must always come first (`import tvm` loads it
    from next to its libtvm_runtime.so; loading that same file again later is a no-op)."""
    spec = importlib.util.find_spec("tvm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        extra = Path(folder) / "lib" / "libtvm_runtime_extra.so"
        if extra.is_file():
            try:
                ctypes.CDLL(str(extra))  # RTLD_LOCAL, as TVM loads it: its functions go to the registry
            except OSError:
                pass  # then `import tvm` cannot load it either (it skips it the same way)
            return
