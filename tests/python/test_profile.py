"""The per-call profile (runtime.h Model::Profile): tvm_ncnn.load(...).profile(x), deploy_app --profile and
`tvm-ncnn run --profile` show where a run's time goes -- each ncnn region, each TVM function -- on a model that
has both (two conv regions with an erf left to TVM between them)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import tvm_ncnn
from tvm_ncnn.errors import ModelError

from conftest import export_split, run_deploy_app

KINDS = {"ncnn region", "tvm", "vm", "other"}


@pytest.fixture(scope="module")
def split_model(tmp_path_factory):
    return export_split(tmp_path_factory.mktemp("profile"))


def check_rows(rows: list[dict], run_ms: float):
    """What every profile promises: known kinds, slowest first, times adding up to the run, shares to 1."""
    assert {row["kind"] for row in rows} <= KINDS
    times = [row["ms"] for row in rows]
    assert times == sorted(times, reverse=True)
    assert sum(times) == pytest.approx(run_ms, abs=1e-3)  # deploy_app --json rounds to 1e-4 ms
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, abs=2e-3)
    assert [row["kind"] for row in rows].count("other") == 1
    regions = [row for row in rows if row["kind"] == "ncnn region"]
    assert len(regions) == 2 and all(row["calls"] == 1 and row["ncnn_layers"] >= 2 for row in regions)
    tvm = [row for row in rows if row["kind"] == "tvm"]
    assert len(tvm) == 1 and "erf" in tvm[0]["name"] and tvm[0]["calls"] == 1


def test_profile_lists_each_region_and_tvm_function(split_model):
    path, _, x = split_model
    model = tvm_ncnn.load(path, threads=1)
    expected = model.single(x)
    start = time.perf_counter()
    profile = model.profile(x, repeat=20)
    elapsed_ms = (time.perf_counter() - start) * 1e3
    assert profile.runs == 20
    check_rows(profile.rows, profile.run_ms)
    # The calls' own times fit inside the wall time of the runs they were taken from (21 with the warm-up).
    in_calls = sum(row["ms"] for row in profile.rows if row["kind"] != "other")
    assert 0 < in_calls <= profile.run_ms
    assert profile.runs * profile.run_ms <= elapsed_ms
    assert profile.share("ncnn region") + profile.share("tvm") + profile.share("vm") + profile.share("other") == \
        pytest.approx(1.0, abs=2e-3)
    # print(profile) is the runtime's table; one line per row, each name whole
    table = str(profile)
    assert table.startswith("profile  20 runs, ") and table.splitlines()[-1].startswith("by kind  ncnn ")
    for row in profile.rows:
        assert row["name"] in table
    # the hook is gone afterwards: the model still computes the same thing
    np.testing.assert_array_equal(model.single(x), expected)


def test_profile_refuses_a_bad_repeat_or_input(split_model):
    path, _, x = split_model
    model = tvm_ncnn.load(path, threads=1)
    for repeat in (0, -1, 2.5, True, 100_001):
        with pytest.raises(ModelError, match="repeat must be"):
            model.profile(x, repeat=repeat)
    with pytest.raises(ModelError, match=r"expects \[1,3,32,32\] float32, got \[1,3,8,8\]"):
        model.profile(np.zeros((1, 3, 8, 8), np.float32))
    assert model.profile(x, repeat=1).runs == 1  # a failed profile leaves the model usable


def test_deploy_app_profile_table_and_json(split_model, deploy_app):
    path, npy, _ = split_model
    text = run_deploy_app(str(path), str(npy), "--profile", "--repeat", "5", "--threads", "1").stdout
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("profile  5 runs, "))
    assert lines[start + 1].split() == ["ms/run", "share", "calls", "kind", "name"]
    body = lines[start + 2:-1]
    assert sum("ncnn region" in line for line in body) == 2 and any(" tvm " in line and "erf" in line for line in body)
    assert lines[-1].startswith("by kind  ncnn ") and "tvm " in lines[-1]

    doc = json.loads(run_deploy_app(str(path), str(npy), "--profile", "--repeat", "5", "--json").stdout)
    check_rows(doc["profile"], doc["profile_run_ms"])
    plain = json.loads(run_deploy_app(str(path), str(npy), "--repeat", "2", "--json").stdout)
    assert "profile" not in plain


def test_cli_run_profile(split_model):
    path, npy, _ = split_model
    done = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "run", str(path), str(npy), "--profile",
                           "--repeat", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "profile  3 runs, " in done.stdout and "ncnn region" in done.stdout and "by kind  ncnn" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "run", str(path), str(npy), "--profile",
                          "--repeat", "0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--repeat" in bad.stderr
