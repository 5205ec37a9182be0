"""The thread policy (README "Threads", runtime/src/threads/tvm_on_openmp.cc): TVM's parallel loops run on ncnn's
OpenMP threads -- one pool, waiting as libgomp does by default -- so the policy needs nothing set before libgomp
loads and holds in Python whether or not torch (which brings its own libgomp) was imported first.
TVM_NCNN_TVM_POOL=tvm gives the two pools of before. Every case computes the same output, and deploy_app, load()
and the profile header say which policy ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest


from conftest import ROOT, export_split, run_deploy_app

ONE_POOL = "one pool: TVM ops on ncnn's OpenMP threads"
TWO_POOLS = "two pools:"

# Runs in a fresh interpreter: the policy is fixed when the runtime (and libgomp) loads.
CHILD = """
import json, os, sys
import numpy as np
if sys.argv[3] == "torch":
    import torch  # torch's libgomp.so.1 is loaded before tvm_ncnn's runtime
    assert any("libgomp" in line for line in open("/proc/self/maps")), "torch brought no libgomp"
import tvm_ncnn
model = tvm_ncnn.load(sys.argv[1], threads=2)
x = np.load(sys.argv[2])
y = model.single(x)
for _ in range(3):
    model.single(x)
header = model.profile(x, repeat=1).table.splitlines()[0]
np.save(sys.argv[4], y)
print(json.dumps({"policy": model.thread_policy, "header": header, "threads": len(os.listdir("/proc/self/task"))}))
"""


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A model whose ncnn regions alternate with a parallel TVM op (erf, scheduled parallel by default)."""
    tmp = tmp_path_factory.mktemp("thread_policy")
    export_split(tmp)
    symbols = subprocess.run(["nm", "-D", str(tmp / "split.so")], capture_output=True, text=True).stdout
    assert "__TVMBackendParallelLaunch" in symbols  # the TVM part has parallel loops to move
    return tmp


def child(split, first: str, pool: str | None, name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NCNN_TVM_POOL", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(ROOT / "sdk_python")
    if pool:
        env["TVM_NCNN_TVM_POOL"] = pool
    out = split / f"{name}.npy"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(split / "split.so"), str(split / "x.npy"), first,
                           str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "y": np.load(out)}


def test_one_pool_whoever_loaded_libgomp_first(split):
    plain = child(split, "plain", None, "plain")
    torch_first = child(split, "torch", None, "torch_first")
    two = child(split, "plain", "tvm", "two_pools")
    for run in (plain, torch_first):
        assert run["policy"].startswith(ONE_POOL), run["policy"]
        assert "libgomp's default wait" in run["policy"]
        assert run["header"].endswith("; 2 threads, " + run["policy"]), run["header"]
    assert two["policy"].startswith(TWO_POOLS), two["policy"]
    # the same loops, split over the same number of tasks: the same numbers
    np.testing.assert_array_equal(plain["y"], two["y"])
    np.testing.assert_array_equal(plain["y"], torch_first["y"])
    # TVM's pool never started: its worker threads are missing
    assert plain["threads"] < two["threads"], (plain["threads"], two["threads"])


def test_deploy_app_says_which_policy_ran(split):
    so, x = str(split / "split.so"), str(split / "x.npy")
    doc = json.loads(run_deploy_app(so, x, "--threads", "2", "--repeat", "2", "--json").stdout)
    assert doc["thread_policy"].startswith(ONE_POOL), doc["thread_policy"]
    text = run_deploy_app(so, x, "--threads", "2", "--repeat", "2").stdout
    assert f"\n         {doc['thread_policy']}\n" in text
    env_keep = os.environ.get("TVM_NCNN_TVM_POOL")
    os.environ["TVM_NCNN_TVM_POOL"] = "tvm"
    try:
        two = json.loads(run_deploy_app(so, x, "--threads", "2", "--repeat", "2", "--json").stdout)
    finally:
        os.environ.pop("TVM_NCNN_TVM_POOL")
        if env_keep is not None:
            os.environ["TVM_NCNN_TVM_POOL"] = env_keep
    assert two["thread_policy"].startswith(TWO_POOLS) and "GOMP_SPINCOUNT=" in two["thread_policy"], two
