"""Issue #7, part 5 (and #27): concurrency. Separate models run in parallel; one model called from several threads
runs the calls at the same time, each on its own execution context (README "Errors and limits"), and every
output equals a single-threaded run."""

from __future__ import annotations

import threading

import numpy as np

from support import BUILD_DIR, CHILD_ENV, run
from reliability_fixtures import models  # noqa: F401  (the fixture)


def test_cpp_models_on_threads(models):
    """tests/cpp/test_concurrency.cc: two models on two threads, one model on four threads, one file loaded
    twice -- outputs compared bit for bit with single-threaded runs."""
    program = BUILD_DIR / "tests" / "test_concurrency"
    env = {**CHILD_ENV, "TVM_NCNN_CONCURRENCY_MODELS": f"{models['two_regions']['so']}:{models['classifier']['so']}"}
    done = run([program], timeout=300, env=env)
    assert done.returncode == 0, done.describe() + done.stdout
    assert done.stdout.count(": 0 wrong of") == 3, done.stdout


def test_python_model_shared_by_threads(models):
    import tvm_ncnn

    model = tvm_ncnn.load(models["two_regions"]["so"], threads=1)
    other = tvm_ncnn.load(models["classifier"]["so"], threads=1)
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    expected = [model.single(x) for x in inputs]
    expected_other = [other.single(x) for x in inputs]
    wrong, errors = [], []

    def work(k):
        try:
            for _ in range(50):
                if not np.array_equal(model.single(inputs[k]), expected[k]):
                    wrong.append(("shared", k))
                if not np.array_equal(other.single(inputs[k]), expected_other[k]):
                    wrong.append(("other", k))
        except Exception as err:  # reported below: a thread's exception would otherwise vanish
            errors.append(repr(err))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert not wrong, wrong[:10]
