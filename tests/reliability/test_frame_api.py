"""Issue #27: the C++ API for real apps, on an exported model -- tests/cpp/test_frame_loop.cc (a 100-frame camera
loop allocates nothing after the first frame, at 1 and 2 threads; DecodeImage, DrawDetections on pixels, zero-copy
input) and one model shared by callers on several threads running at the same time (it grows an execution context
per concurrent caller, and its outputs stay exact)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from support import BUILD_DIR, CHILD_ENV, run
from reliability_fixtures import models  # noqa: F401  (the fixture)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpp_frame_loop(models, threads):
    program = BUILD_DIR / "tests" / "test_frame_loop"
    model = str(models["classifier"]["so"])
    done = run([program], timeout=300, env={**CHILD_ENV, "TVM_NCNN_FRAME_MODEL": model,
                                            "TVM_NCNN_FRAME_THREADS": str(threads)})
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
