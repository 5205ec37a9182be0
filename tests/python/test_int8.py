"""int8 (issue 14.2, 14.5): export --precision int8 --calibration DIR calibrates on the fp32 model.so through the
runtime's probe, writes ncnn's int8 layers, prints the accuracy against fp32 on held-out files, and records each
layer's precision; the same calibration gives the same bytes; --keep-fp32 and the auto mode leave layers fp32;
an int8 model.so for a Pi agrees with the host's int8 result under qemu (Cortex-A72 and A76).

Tiny nets and 10 calibration tensors keep it quick; accuracy on real photos is benchmarks/int8_accuracy.py's."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.int8 import accuracy, calibration
from tvm_ncnn.ncnn import quantize
from tvm_ncnn.errors import ModelError
from tvm_ncnn.int8.calibrate import Calibration

from conftest import onnxruntime_run
from nets import SplitByUnsupported, TinyConvNet

# int8 against fp32 (cosine similarity of the outputs, on inputs like the calibration data): what ncnn's int8
# costs on these random-weight nets. Against the host's int8 result under qemu: ncnn's ARM int8 kernels round
# as the x86 ones up to the order of accumulation, so the outputs agree far closer than int8 to fp32.
MIN_COSINE_VS_FP32 = 0.98
ARM_VS_HOST_INT8 = 2e-3  # max abs error over max |host int8|
QEMU = shutil.which("qemu-aarch64")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE_TARBALL = ROOT / "build" / "aarch64" / "tvm-ncnn-aarch64.tar.gz"


def _inputs(n: int, seed: int) -> list[np.ndarray]:
    """Smooth random images (blurred noise, as photos are smooth), the model's input range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((1, 3, 36, 36)).astype(np.float32)
        x = (x[:, :, :-4:, :-4] + x[:, :, 2:-2, 2:-2] + x[:, :, 4:, 4:]) / 1.5
        out.append(np.ascontiguousarray(x[:, :, :32, :32]))
    return out


def _calibration_dir(directory, n: int, seed: int, transform=lambda x: x) -> str:
    """A calibration directory of n .npy inputs (_inputs(n, seed), each through transform), sorted by name."""
    directory.mkdir()
    for i, x in enumerate(_inputs(n, seed)):
        np.save(directory / f"x{i:02d}.npy", transform(x))
    return str(directory)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(work / "tiny.onnx"), (1, 3, 32, 32))
    data = _calibration_dir(work / "calib", 10, 3)
    fp32 = str(work / "tiny-fp32.so")
    tvm_ncnn.export(onnx_path, fp32, precision="fp32")
    int8 = str(work / "tiny-int8.so")
    result = tvm_ncnn.export(onnx_path, int8, precision="int8", calibration=str(data))
    return {"dir": work, "onnx": onnx_path, "data": str(data), "fp32": fp32, "int8": int8, "result": result,
            "x": _inputs(1, 99)[0]}


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_int8_export_records_layers_and_reports_accuracy(work):
    meta = tvm_ncnn.read_metadata(work["int8"])
    assert meta["precision"] == "int8"
    layers = meta["int8"]["layers"]
    assert {l["type"] for l in layers} >= {"Convolution", "ConvolutionDepthWise", "InnerProduct"}
    # the default is mixed precision: whatever stays fp32 was kept by the auto mode
    assert all(l["precision"] == "int8" or l["why"].startswith("auto") for l in layers)
    assert any(l["precision"] == "int8" for l in layers)
    assert all(l["scale"] > 0 for l in layers if l["precision"] == "int8" and l["type"] != "Gemm")
    assert meta["int8"]["min_cosine"] == 0.99 and meta["int8"]["bias_correction"]
    assert meta["int8"]["calibration_files"] == 8 and meta["int8"]["held_out_files"] == 2
    report = work["result"].int8
    assert report["accuracy"]["inputs"] == 2 and "top1_agreement" in report["accuracy"]
    assert report["accuracy"]["outputs"][0]["cosine_min"] >= MIN_COSINE_VS_FP32, report["text"]
    # The region graph holds ncnn's int8 form: int8_scale_term on every quantized layer.
    model = tvm_ncnn.load(work["int8"], threads=1)
    assert model.precision == "int8"
    got, ref = model.single(work["x"]), onnxruntime_run(work["onnx"], work["x"])
    assert accuracy.cosine(got, ref) >= MIN_COSINE_VS_FP32  # measured here, against onnxruntime's fp32
    assert not np.array_equal(got, tvm_ncnn.load(work["fp32"], threads=1).single(work["x"]))  # int8 really ran
    assert os.path.getsize(work["int8"]) < os.path.getsize(work["fp32"])  # int8 weights are stored as int8


def test_calibration_is_deterministic(work, tmp_path):
    again = tmp_path / "again.so"
    tvm_ncnn.export(work["onnx"], str(again), precision="int8", calibration=work["data"])
    assert _digest(again) == _digest(work["int8"])


def test_keep_fp32_by_type_and_name(work, tmp_path):
    first = tvm_ncnn.read_metadata(work["int8"])["int8"]["layers"][0]["layer"]
    out = tmp_path / "keep.so"
    result = tvm_ncnn.export(work["onnx"], str(out), precision="int8",
                             calibration=Calibration(work["data"], keep_fp32=["InnerProduct", first]))
    layers = {l["layer"]: l for l in tvm_ncnn.read_metadata(out)["int8"]["layers"]}
    kept = {k for k, l in layers.items() if l["precision"] == "fp32"}
    assert kept == {first} | {k for k, l in layers.items() if l["type"] == "InnerProduct"}
    assert all(layers[k]["why"] == "--keep-fp32" for k in kept)
    assert "kept fp32" in result.int8["text"]
    with pytest.raises(ModelError, match="--keep-fp32 NoSuchLayer: no int8 layer"):
        tvm_ncnn.export(work["onnx"], str(out), precision="int8",
                        calibration=Calibration(work["data"], keep_fp32=["NoSuchLayer"]))


def test_auto_mode_keeps_layers_until_the_bound_holds(work, tmp_path):
    out = tmp_path / "auto.so"
    result = tvm_ncnn.export(work["onnx"], str(out), precision="int8",
                             calibration=Calibration(work["data"], keep_fp32=["auto"], min_cosine=0.9999999))
    layers = result.int8["layers"]
    kept = [l for l in layers if l["precision"] == "fp32"]
    assert kept and all(l["why"].startswith("auto") for l in kept)
    # The bound holds on the inputs auto measures (the calibration files: every 5th of the 10 is held out; this
    # one-region net's output is the region's), measured here against onnxruntime's fp32 -- or every layer is kept.
    model = tvm_ncnn.load(out, threads=1)
    calibrated = [p for i, p in enumerate(sorted(Path(work["data"]).glob("*.npy"))) if i % 5 != 4]
    worst = min(accuracy.cosine(model.single(x), onnxruntime_run(work["onnx"], x))
                for x in (np.load(p) for p in calibrated))
    assert len(kept) == len(layers) or worst >= 0.9999999 - 1e-7, (len(kept), len(layers), worst)


def test_other_methods_calibrate(work, tmp_path):
    for method in ("aciq", "eq"):
        out = tmp_path / f"{method}.so"
        result = tvm_ncnn.export(work["onnx"], str(out), precision="int8",
                                 calibration=Calibration(work["data"], method=method))
        assert result.int8["method"] == method
        assert result.int8["accuracy"]["outputs"][0]["cosine_min"] >= MIN_COSINE_VS_FP32, result.int8["text"]


def _kl_loops(normed: np.ndarray, threshold: int) -> float:
    """ncnn2table's KL at one threshold, bin by bin as it loops (fractional edges, eps, width averages)."""
    eps, target = 1e-4, 128
    clip = [eps + normed[j] for j in range(threshold)]
    clip[-1] += sum(normed[threshold:])
    per = threshold / target
    quant = [0.0] * target
    for j in range(target):
        start, end = j * per, (j + 1) * per if j < target - 1 else threshold
        lo, hi = int(np.ceil(start)), int(np.floor(end))
        total = (lo - start) * normed[lo - 1] if lo > start else 0.0
        total += sum(normed[lo:hi]) + ((end - hi) * normed[hi] if end > hi else 0.0)
        quant[j] = total / (end - start)
    expand = [eps] * threshold
    for j in range(target):
        start, end = j * per, (j + 1) * per if j < target - 1 else threshold
        lo, hi = int(np.ceil(start)), int(np.floor(end))
        if lo > start:
            expand[lo - 1] += (lo - start) * quant[j]
        if end > hi:
            expand[hi] += (end - hi) * quant[j]
        for k in range(lo, hi):
            expand[k] += quant[j]
    return sum(c * np.log(c / e) for c, e in zip(clip, expand))


def test_kl_matches_ncnn_bin_arithmetic():
    """The vectorized KL against ncnn's bin-by-bin loops, on a skewed histogram, at a few thresholds."""
    rng = np.random.default_rng(0)
    values = np.abs(rng.standard_t(3, 20000))
    stats = calibration.BlobStats()
    stats.see_absmax(values)
    stats.see_histogram(values)
    normed = stats.histogram / stats.histogram.sum()
    cum = np.concatenate([[0.0], np.cumsum(normed)])
    for threshold in (128, 200, 333, 1000, 2047):
        assert calibration.kl_divergence(normed, cum, threshold) == pytest.approx(_kl_loops(normed, threshold),
                                                                                   rel=1e-9, abs=1e-12)
    best = calibration.kl_threshold_bin(stats.histogram)
    assert 128 <= best < 2048 and best == calibration.kl_threshold_bin(stats.histogram.copy())
    flat = np.zeros(2048, dtype=np.int64)
    flat[:100] = 1000  # no tail: nothing is worth clipping
    assert calibration.kl_threshold_bin(flat) == 128


def test_weights_are_stored_as_ncnn_int8():
    layer = quantize.Layer("Convolution", "conv", ["a"], ["b"], {0: 2, 1: 1, 11: 1, 6: 6},
                           [(np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]], np.float32), True)])
    quantize.quantize_layer(layer, 10.0)
    w, scales, bottom = layer.weights[0][0], layer.weights[1][0], layer.weights[2][0]
    assert w.dtype == np.int8 and w.tolist() == [127, -64, 32, 0, 0, 0]  # -63.5 rounds away from zero
    assert scales.tolist() == [127.0, 0.0] and bottom.tolist() == [10.0] and layer.params[8] == 1
    g = quantize.NcnnGraph()
    g.layers.append(layer)
    _, blob = g.serialize()
    assert blob[:4] == (0x000D4B38).to_bytes(4, "little") and len(blob) == 4 + 8 + 2 * 4 + 4


def test_bad_calibration_is_one_line(work, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=600)

    out = tmp_path / "bad.so"
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong").mkdir()
    np.save(tmp_path / "wrong" / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
    np.save(tmp_path / "wrong" / "b.npy", np.zeros((1, 3, 8, 8), np.float32))
    cases = [(["--calibration", tmp_path / "missing"], "is not a directory"),
             (["--calibration", tmp_path / "empty"], "holds 0 image/.npy file(s); int8 needs at least 2"),
             (["--calibration", tmp_path / "wrong"], "the model takes float32 [1, 3, 32, 32]"),
             ([], "precision int8 needs calibration data: --calibration DIR")]
    for extra, message in cases:
        proc = cli("export", work["onnx"], "-o", out, "--precision", "int8", *extra)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1 and message in lines[0], proc.stderr
    proc = cli("export", work["onnx"], "-o", out, "--precision", "fp32", "--calibration", work["data"])
    assert proc.returncode != 0 and "calibration is for precision int8" in proc.stderr
    assert not out.exists()


def test_cli_prints_the_report_and_inspect_the_layers(work, tmp_path):
    out = tmp_path / "cli.so"
    proc = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "export", work["onnx"], "-o", str(out),
                           "--precision", "int8", "--calibration", work["data"], "--keep-fp32", "InnerProduct"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy against fp32 on 2 held-out input(s)" in proc.stdout and "top-1 agreement" in proc.stdout
    assert "cosine min" in proc.stdout and "kept fp32" in proc.stdout
    text = subprocess.run([sys.executable, "-m", "tvm_ncnn.cli", "inspect", str(out)], capture_output=True,
                          text=True, timeout=600).stdout
    assert "kl calibration on 8 file(s) (2 held out)" in text
    assert any("InnerProduct" in line and "fp32" in line for line in text.splitlines())
    assert any("Convolution " in line and "int8" in line and "input scale" in line for line in text.splitlines())


def test_two_regions_with_tvm_between(tmp_path):
    """Each region calibrated on the inputs the model really gives it (TVM's erf output for the second)."""
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(SplitByUnsupported().eval(), str(tmp_path / "split.onnx"), (1, 3, 32, 32))
    data = _calibration_dir(tmp_path / "calib", 5, 4)
    result = tvm_ncnn.export(onnx_path, str(tmp_path / "split.so"), precision="int8", calibration=str(data))
    assert result.report.regions == 2 and len({l["layer"].split("/")[0] for l in result.int8["layers"]}) == 2
    assert result.int8["accuracy"]["outputs"][0]["cosine_min"] >= MIN_COSINE_VS_FP32, result.int8["text"]


# ---- aarch64 under qemu


@pytest.mark.skipif(os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1", reason="TVM_NCNN_SKIP_AARCH64=1")
@pytest.mark.parametrize("cpu", ["cortex-a72", "cortex-a76"])
def test_int8_under_qemu_agrees_with_the_host(work, cpu, tmp_path):
    assert QEMU and BUNDLE_TARBALL.exists(), "needs qemu-aarch64 and bash cmake/build_aarch64.sh"
    from test_aarch64 import run_json  # noqa: E402  (the bundle fixtures' helper)

    rpi = work["dir"] / "tiny-int8-rpi4.so"
    if not rpi.exists():
        tvm_ncnn.export(work["onnx"], str(rpi), target="rpi4", precision="int8", calibration=work["data"])
    bundle_dir = work["dir"] / "bundle"
    if not bundle_dir.exists():
        import tarfile

        with tarfile.open(BUNDLE_TARBALL) as tar:
            tar.extractall(bundle_dir, filter="data")
    x_path = tmp_path / "x.npy"
    np.save(x_path, work["x"])
    got, report = run_json(bundle_dir / "tvm-ncnn-aarch64", Path("/usr/aarch64-linux-gnu"), cpu, str(rpi), x_path,
                           tmp_path)
    host = tvm_ncnn.load(work["int8"], threads=1).single(work["x"])
    fp32 = tvm_ncnn.load(work["fp32"], threads=1).single(work["x"])
    assert report["precision"] == ("int8+fp16" if cpu == "cortex-a76" else "int8")
    err = float(np.abs(got - host).max() / np.abs(host).max())
    tolerance = ARM_VS_HOST_INT8 if cpu == "cortex-a72" else 2e-2  # a76: the fp32 layers run fp16 there
    assert err <= tolerance, f"{cpu}: int8 differs from the host's int8 by {err:.2e} x max"
    assert accuracy.cosine(got, fp32) >= MIN_COSINE_VS_FP32


# ---- issue 14: what EfficientNet-Lite0's accuracy was lost to


def test_clip_bounded_blobs_are_scaled_by_absmax_not_clipped():
    """A ReLU6 output piles up at 6; KL clipped such blobs at 3.5-4.9 on EfficientNet-Lite0, turning every
    saturated value smaller. Bounded blobs (fused clip, seen through pooling) take 127 / absmax."""
    conv = quantize.Layer("Convolution", "c", ["x"], ["y"], {0: 4, 1: 1, 9: 3, 10: [0.0, 6.0]})
    plain = quantize.Layer("Convolution", "d", ["y"], ["z"], {0: 4, 1: 1})
    pool = quantize.Layer("Pooling", "p", ["y"], ["q"], {0: 1, 4: 1})
    g = quantize.NcnnGraph()
    g.layers += [conv, plain, pool]
    assert quantize.bounded_blobs(g) == {"y", "q"}
    rng = np.random.default_rng(0)
    values = np.concatenate([np.abs(rng.standard_normal(20000)), np.full(300, 6.0)]).astype(np.float32)
    run = lambda x: {"a": x, "b": x}  # noqa: E731
    scales = calibration.collect(run, ["a", "b"], [values], "kl", frozenset({"a"}))
    assert scales["a"] == pytest.approx(127 / 6.0) and 127 / scales["b"] < 5.0  # KL alone clips below 6


def test_bias_correction_restores_a_channel_int8_rounds_away(tmp_path):
    """Per-tensor input scales round a narrow channel to a constant; a later layer's large weight on it turned
    that into an output shift (EfficientNet-Lite0's first depthwise conv alone took the output cosine to 0.94).
    int8/bias.py measures the shift per channel and takes it off the bias."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU6(), torch.nn.Conv2d(4, 4, 3, padding=1),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 32 * 32, 10)).eval()
    with torch.no_grad():  # channel 1 of the first conv: a narrow range, then a large weight on it
        net[0].weight[1] *= 0.001
        net[0].bias[1] = 0.015  # under half an int8 step of the tensor (6 / 127): rounds to 0
        net[2].weight[:, 1] *= 40.0
    onnx_path = zoo.to_onnx(net, str(tmp_path / "narrow.onnx"), (1, 3, 32, 32))
    data = tmp_path / "calib"
    _calibration_dir(data, 10, 5, lambda x: np.abs(x) * 3)
    cosines = {}
    for corrected in (False, True):
        result = tvm_ncnn.export(onnx_path, str(tmp_path / f"m{corrected}.so"), precision="int8",
                                 calibration=Calibration(str(data), keep_fp32=["none"],
                                                         bias_correction=corrected))
        assert result.int8["bias_correction"] == corrected
        cosines[corrected] = result.int8["accuracy"]["outputs"][0]["cosine_min"]
    assert cosines[True] > cosines[False], cosines


def test_default_is_auto_and_none_is_all_int8(work, tmp_path):
    """--precision int8 is mixed precision by default (auto at min_cosine); --keep-fp32 none for every layer."""
    assert "mixed precision: auto keeps" in work["result"].int8["text"]
    result = tvm_ncnn.export(work["onnx"], str(tmp_path / "none.so"), precision="int8",
                             calibration=Calibration(work["data"], keep_fp32=["none"]))
    assert all(l["precision"] == "int8" for l in result.int8["layers"]) and result.int8["min_cosine"] is None
    assert "mixed precision" not in result.int8["text"]
    with pytest.raises(ModelError, match="cannot be combined"):
        tvm_ncnn.export(work["onnx"], str(tmp_path / "x.so"), precision="int8",
                        calibration=Calibration(work["data"], keep_fp32=["none", "InnerProduct"]))


def test_dead_channels_and_blobs_quantize_without_overflow():
    """A channel of denormal weights (a real recogniser had them) or an all-zero one gets scale 0, and a blob of
    tiny values a finite activation scale: no inf or NaN scale, and no numpy warning reaches the user."""
    import warnings

    weight = np.ones((3, 4), np.float32)
    weight[1] = 1e-40  # denormal: 127 / 1e-40 overflows float32
    weight[2] = 0.0
    layer = quantize.Layer("Convolution", "c", ["x"], ["y"], {0: 3, 1: 1, 6: 12},
                           weights=[(weight.reshape(-1), True), (np.zeros(3, np.float32), False)])
    stats = calibration.BlobStats()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scales = quantize.weight_scales(layer)
        quantize.quantize_layer(layer, 10.0)
        stats.see_absmax(np.full((1, 4), 1e-39, np.float32))
        stats.see_histogram(np.full((1, 4), 1e-39, np.float32))
        activation = stats.scale("kl")
    assert scales[0] == 127 and scales[1] == 0 and scales[2] == 0
    assert np.isfinite(activation) and 0 < activation <= quantize.MAX_SCALE
    assert np.all(np.isfinite(layer.weights[-2][0]))
