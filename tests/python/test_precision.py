"""Precision (issue 14): export records fp32/fp16 in model.so, the runtime applies it -- fp16 only where the CPU
has fp16 arithmetic, so on this x86 host an fp16 model runs fp32, bit for bit the fp32 export -- deploy_app,
load() and `tvm-ncnn run` can override it, and each says what ran. The fp16 kernels themselves run under qemu
(Cortex-A76) in test_aarch64.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.exporter import build
from tvm_ncnn.format import describe as inspection
from tvm_ncnn.errors import ModelError

from conftest import run_deploy_app
from nets import TinyConvNet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("precision")
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(work / "tiny.onnx"), (1, 3, 32, 32))
    paths = {"onnx": onnx_path}
    for precision in ("default", "fp32"):
        paths[precision] = str(work / f"tiny-{precision}.so")
        tvm_ncnn.export(onnx_path, paths[precision], precision=None if precision == "default" else precision)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    paths["input"] = str(work / "x.npy")
    np.save(paths["input"], x)
    paths["x"] = x
    return paths


def test_default_is_fp16_recorded_and_fp32_on_a_cpu_without_fp16(tiny):
    assert tvm_ncnn.read_metadata(tiny["default"])["precision"] == "fp16"
    assert tvm_ncnn.read_metadata(tiny["fp32"])["precision"] == "fp32"
    fp16 = tvm_ncnn.load(tiny["default"], threads=1)
    fp32 = tvm_ncnn.load(tiny["fp32"], threads=1)
    assert fp16.info["precision"] == "fp16" and fp16.precision == "fp32"  # x86: no fp16 arithmetic
    assert fp32.precision == "fp32"
    assert np.array_equal(fp16.single(tiny["x"]), fp32.single(tiny["x"]))


def test_load_overrides_and_the_fp16_alias(tiny):
    for kwargs in ({"precision": "fp16"}, {"fp16": True}, {"precision": "fp16", "fp16": True}):
        model = tvm_ncnn.load(tiny["fp32"], threads=1, **kwargs)
        assert model.precision == "fp32" and model.info["fp16"] is False  # asked, but this CPU has none
    assert tvm_ncnn.load(tiny["default"], threads=1, fp16=False).precision == "fp32"
    with pytest.raises(ModelError, match="disagree"):
        tvm_ncnn.load(tiny["fp32"], precision="fp32", fp16=True)
    with pytest.raises(ModelError, match="'bf16' is not one of fp32, fp16"):
        tvm_ncnn.load(tiny["fp32"], precision="bf16")
    with pytest.raises(ModelError, match="exported fp32; int8 needs calibration"):
        tvm_ncnn.load(tiny["fp32"], precision="int8")


def test_deploy_app_header_and_json_say_what_ran(tiny):
    text = run_deploy_app(tiny["default"], tiny["input"], "--repeat", "1").stdout
    assert "precision fp32 (as exported; this CPU has no fp16 arithmetic)" in text, text
    text = run_deploy_app(tiny["default"], tiny["input"], "--repeat", "1", "--precision", "fp32").stdout
    assert "precision fp32 (exported fp16, asked fp32)" in text, text
    for flags in (["--fp16"], ["--precision", "fp16"], ["--precision=fp16"]):
        report = json.loads(run_deploy_app(tiny["fp32"], tiny["input"], "--json", "--repeat", "1", *flags).stdout)
        assert (report["precision"], report["exported_precision"], report["fp16"]) == ("fp32", "fp32", False)
    bad = run_deploy_app(tiny["fp32"], tiny["input"], "--precision", "fp8", check=False)
    assert bad.returncode == 2 and "--precision needs fp32, fp16 or int8, got 'fp8'" in bad.stderr
    bad = run_deploy_app(tiny["fp32"], tiny["input"], "--precision", "int8", check=False)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "int8 needs calibration at export" in lines[0], bad.stderr


def test_cli_export_run_and_inspect(tiny, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=600)

    so = tmp_path / "m.so"
    done = cli("export", tiny["onnx"], "-o", so, "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    assert tvm_ncnn.read_metadata(str(so))["precision"] == "fp32"
    run = json.loads(cli("run", tiny["default"], tiny["input"], "--json", "--precision", "fp32").stdout)
    assert run["precision"] == "fp32"
    shown = cli("inspect", tiny["default"]).stdout
    assert "precision  fp16 (ncnn's fp16 kernels where the CPU has fp16 arithmetic, fp32 elsewhere)" in shown
    bad = cli("export", tiny["onnx"], "-o", so, "--precision", "fp64")
    assert bad.returncode == 2 and "invalid choice: 'fp64'" in bad.stderr
    with pytest.raises(ModelError, match="precision 'half' is not one of fp32, fp16, int8"):
        tvm_ncnn.export(tiny["onnx"], str(so), precision="half")
    with pytest.raises(ModelError, match="precision int8 needs calibration data: --calibration DIR"):
        tvm_ncnn.export(tiny["onnx"], str(so), precision="int8")


def test_a_file_without_precision_runs_fp32(tiny, tmp_path, monkeypatch):
    """model.so files exported before precision was recorded keep loading, as fp32."""
    real = build._metadata
    monkeypatch.setattr(build, "_metadata", lambda *a: {k: v for k, v in real(*a).items() if k != "precision"})
    so = str(tmp_path / "old.so")
    tvm_ncnn.export(tiny["onnx"], so)
    assert "precision" not in tvm_ncnn.read_metadata(so)
    model = tvm_ncnn.load(so, threads=1)
    assert model.precision == "fp32"
    text = run_deploy_app(so, tiny["input"], "--repeat", "1").stdout
    assert "precision fp32 (as exported)" in text, text
    assert "precision  fp32" in inspection.describe_text(inspection.describe(so))
