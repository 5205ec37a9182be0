"""benchmarks/bench.py --quick: every system runs, and results.json has well-formed rows (no timing claims)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEPLOY_APP, ROOT

BENCH = ROOT / "benchmarks" / "bench.py"
SYSTEMS = {"tvm-ncnn", "tvm-ncnn-py", "native-ncnn", "native-ncnn-py", "tvm-alone", "onnxruntime"}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def quick_rows(tmp_path_factory):
    if not DEPLOY_APP.exists():
        pytest.skip(f"{DEPLOY_APP} is not built")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--output", str(out)], capture_output=True,
                          text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, f"bench.py --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert out.with_suffix(".png").stat().st_size > 0, "no plot written"
    return json.loads(out.read_text())


def test_rows_well_formed(quick_rows):
    assert isinstance(quick_rows, list) and quick_rows
    for row in quick_rows:
        assert isinstance(row["model"], str) and row["model"]
        assert isinstance(row["threads"], int) and row["threads"] >= 1
        assert row["system"] in SYSTEMS
        for key in ("p50_ms", "p90_ms", "rss_mb", "steady_rss_mb", "load_ms", "first_ms"):
            assert _number(row[key]) and row[key] > 0, (row["model"], row["system"], key, row[key])
        assert row["p90_ms"] >= row["p50_ms"]
        assert row["runs"] >= 1 and row["rounds"] >= 1
        assert _number(row["ratio_to_native_ncnn"]) and row["ratio_to_native_ncnn"] > 0
        # Every system computes the same function: outputs against onnxruntime.
        assert row["max_rel_err"] <= 1e-4, (row["model"], row["system"], row["max_rel_err"])


def test_every_system_for_every_model(quick_rows):
    models = {r["model"] for r in quick_rows}
    assert len(models) == 2
    for model in models:
        systems = [r["system"] for r in quick_rows if r["model"] == model]
        assert sorted(systems) == sorted(SYSTEMS), (model, systems)
    for row in quick_rows:
        if row["system"] == "native-ncnn":
            assert row["ratio_to_native_ncnn"] == pytest.approx(1.0)
        if row["system"] == "tvm-ncnn":
            assert _number(row["export_s"]) and row["export_s"] > 0
            assert row["ncnn_regions"] >= 1
