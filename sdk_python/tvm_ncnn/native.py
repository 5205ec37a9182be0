"""The C++ runtime library (libtvm_ncnn_runtime.so) loaded into this process: it registers the `ncnn` and
`tvm_ncnn_meta` module kinds that export writes and load reads."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import tvm_ffi

from .errors import ModelError

LIBRARY = "libtvm_ncnn_runtime.so"
ENV = "TVM_NCNN_RUNTIME_LIB"


def candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    found = []
    if os.environ.get(ENV):
        found.append(Path(os.environ[ENV]))
    found.append(here / "lib" / LIBRARY)                           # installed next to the package
    found.append(here.parents[1] / "build" / "host" / "lib" / LIBRARY)  # a source checkout's host build
    return found


def coordinate_threads() -> None:
    """deploy_app's thread defaults (README, "Threads"), for this process: short spins for ncnn's OpenMP threads
    and TVM's pool, so neither holds the cores the other needs next. libgomp reads GOMP_SPINCOUNT when it is
    loaded, which is when the runtime library is, below; variables already set win, and
    TVM_NCNN_WAIT_POLICY=inherit leaves the environment alone."""
    if os.environ.get("TVM_NCNN_WAIT_POLICY") == "inherit":
        return
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "100")
    if "OMP_WAIT_POLICY" not in os.environ:
        arm = os.uname().machine in ("aarch64", "arm64") or os.uname().machine.startswith("arm")
        os.environ.setdefault("GOMP_SPINCOUNT", "30000" if arm else "1000")


def size_tvm_pool(threads: int) -> None:
    """TVM's thread pool as big as ncnn's, as deploy_app sets it; TVM reads this when it starts the pool, at
    its first parallel op (after loading, so the thread count is known)."""
    if os.environ.get("TVM_NCNN_WAIT_POLICY") != "inherit":
        os.environ.setdefault("TVM_NUM_THREADS", str(threads))


@functools.lru_cache(maxsize=None)
def library_path() -> str:
    for path in candidates():
        if path.is_file():
            coordinate_threads()
            ctypes.CDLL(str(path), ctypes.RTLD_GLOBAL)
            return str(path)
    tried = ", ".join(str(p) for p in candidates())
    raise ModelError(f"the tvm-ncnn runtime library is not built (looked for {tried}); build it with "
                     f"'cmake -S . -B build/host -G Ninja && cmake --build build/host' or set {ENV}")


def get_function(name: str):
    library_path()
    func = tvm_ffi.get_global_func(name, allow_missing=True)
    if func is None:
        raise ModelError(f"{library_path()} does not provide {name}: rebuild the runtime library")
    return func


def versions() -> dict[str, str]:
    return {str(k): str(v) for k, v in get_function("tvm_ncnn.versions")().items()}


def seal(path) -> None:
    """Append model.so's seal (runtime/FORMAT.md, "Seal"): a checksum of every byte of the file, which the runtime
    checks before loading it, so that a model.so corrupted anywhere -- TVM's code and bytecode included, which TVM
    does not check -- is refused instead of crashing. Sealing a sealed file changes nothing."""
    try:
        get_function("tvm_ncnn.seal_model")(os.fspath(path))
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(str(err).strip().splitlines()[-1]) from None
