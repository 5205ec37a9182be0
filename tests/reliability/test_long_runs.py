"""Issue #7, part 4 (the part CI can afford): long runs keep memory flat and answers identical. valgrind over
1000 runs is in sanitize.sh; here deploy_app's own RSS report and the Python API's, over thousands of runs and
hundreds of loads."""

from __future__ import annotations

import json

import numpy as np

from support import deploy_app
from reliability_fixtures import models  # noqa: F401  (the fixture)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_deploy_app_memory_is_flat_over_many_runs(models, tmp_path):
    done = deploy_app(models["classifier"]["so"], models["x"], "--repeat", "5000", "--json", "--threads", "1")
    assert done.returncode == 0, done.describe()
    report = json.loads(done.stdout)
    # warm: after 10 runs; steady: after all of them. A leak of even 200 bytes a run would show as 1 MB.
    assert report["steady_rss_mb"] - report["warm_rss_mb"] < 1.0, report
    assert len(report["times_ms"]) == 5000 and all(t >= 0 for t in report["times_ms"])


def test_python_calls_and_loads_keep_memory_flat_and_outputs_identical(models):
    import tvm_ncnn

    x = np.load(models["x"])
    model = tvm_ncnn.load(models["two_regions"]["so"], threads=1)
    first = model.single(x)
    for _ in range(200):
        model(x)
    before = rss_mb()
    for _ in range(3000):
        assert np.array_equal(model.single(x), first)
    assert rss_mb() - before < 2.0

    for _ in range(20):  # let allocators settle: the first loads create pools that stay
        tvm_ncnn.load(models["two_regions"]["so"], threads=1).single(x)
    before = rss_mb()
    for _ in range(200):
        assert np.array_equal(tvm_ncnn.load(models["two_regions"]["so"], threads=1).single(x), first)
    assert rss_mb() - before < 4.0, "loading and dropping a model leaks"
