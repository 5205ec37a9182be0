"""Issue #27: the C++ API for real apps, on an exported model -- tests/cpp/test_frame_loop.cc (a 100-frame camera
loop allocates nothing after the first frame, at 1 and 2 threads; DecodeImage, DrawDetections on pixels, zero-copy
input) and one model shared by callers on several threads running at the same time (it grows an execution context
per concurrent caller, and its outputs stay exact)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from support import BUILD_DIR, CHILD_ENV, ROOT, run
from reliability_fixtures import models  # noqa: F401  (the fixture)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_frame_loop(models, threads):
    program = BUILD_DIR / "tests" / "test_frame_loop"
    model = str(models["classifier"]["so"])
    done = run([program], timeout=300, env={**CHILD_ENV, "TVM_NCNN_FRAME_MODEL": model,
                                            "TVM_NCNN_FRAME_THREADS": str(threads)})
    assert done.returncode == 0, done.describe() + done.stdout
    assert done.stdout.count(": 0.0 allocations and 0 bytes per frame") == 3, done.stdout


AARCH64_BUILD = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64"))


@pytest.mark.skipif(os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1", reason="TVM_NCNN_SKIP_AARCH64=1")
@pytest.mark.parametrize("target,cpu", [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")])
def test_cpp_frame_loop_on_aarch64(models, target, cpu, tmp_path):
    """The same loop on the boards, under qemu: on a Pi 5 ncnn stores fp16, and would cast the input to fp16
    through a Cast layer it creates on every call; the region hands it over in fp16 itself."""
    import tvm_ncnn

    bundle = AARCH64_BUILD / "tvm-ncnn-aarch64"
    assert (bundle / "libtvm_ncnn_runtime.so").exists(), f"{bundle} is not built: run bash cmake/build_aarch64.sh"
    program = tmp_path / "test_frame_loop"
    compiled = run(["aarch64-linux-gnu-g++", "-O2", "-std=c++17", "-I", ROOT / "runtime" / "include", "-I",
                    ROOT / "tests" / "cpp", ROOT / "tests" / "cpp" / "test_frame_loop.cc", "-o", program,
                    "-L", bundle, "-ltvm_ncnn_runtime", f"-Wl,-rpath-link,{bundle}"], timeout=300)
    assert compiled.returncode == 0, compiled.describe()
    model = tmp_path / f"classifier_{target}.so"
    tvm_ncnn.export(str(models["classifier"]["onnx"]), model, target=target,
                    preprocess=tvm_ncnn.Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)))
    for threads in (1, 2):
        done = run([shutil.which("qemu-aarch64"), "-L", "/usr/aarch64-linux-gnu", "-cpu", cpu,
                    "-E", f"LD_LIBRARY_PATH={bundle}", "-E", f"TVM_NCNN_FRAME_MODEL={model}",
                    "-E", f"TVM_NCNN_FRAME_THREADS={threads}", program], timeout=600)
        assert done.returncode == 0, done.describe() + done.stdout
        assert done.stdout.count(": 0.0 allocations and 0 bytes per frame") == 3, done.stdout


def test_python_calls_overlap(models):
    """Two Python threads calling one model overlap in the runtime (tvm_ffi releases the GIL; the model runs
    each on its own context): while one thread's call is inside the runtime the other's can be too. Held by the
    calls' own timestamps, not by throughput (the machine is shared and noisy)."""
    import tvm_ncnn

    model = tvm_ncnn.load(models["two_regions"]["so"], threads=1)
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    expected = model.single(x)
    spans: list[list[tuple[float, float]]] = [[], []]
    wrong = []
    import time

    def work(k):
        for _ in range(300):
            t0 = time.perf_counter()
            y = model.single(x)
            spans[k].append((t0, time.perf_counter()))
            if not np.array_equal(y, expected):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not wrong
    a, b = spans
    overlaps = sum(1 for s, e in a for s2, e2 in b if s < e2 and s2 < e)
    assert overlaps > 0, "no call of one thread overlapped a call of the other"
