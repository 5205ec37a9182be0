"""The aarch64 (Raspberry Pi) deploy bundle under qemu-aarch64: models exported with --target rpi4/rpi5 run
by the cross-built deploy_app on an emulated Cortex-A72 (Pi 4) and Cortex-A76 (Pi 5) and agree with
onnxruntime on the host; wrong-architecture and wrong-TVM-version models are refused with one clear line.

Needs `bash cmake/build_aarch64.sh` first (tests/run.sh does it) and qemu-user. Set TVM_NCNN_SKIP_AARCH64=1
to skip this file on a machine without the cross toolchain. qemu timings mean nothing: only results are
compared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.errors import ModelError
from tvm_ncnn.compile.targets import get_target

from conftest import DEPLOY_APP, ROOT, max_rel_error, onnxruntime_run
from nets import SplitByUnsupported

sys.path.insert(0, str(ROOT / "tests" / "reliability"))
from support import module_spans, reseal, strip_seal  # noqa: E402  (model.so's checksums, to forge a version)

TOLERANCE = 1e-4
# fp16 (ncnn's fp16 storage and arithmetic on Cortex-A76) against the host's fp32 result: max abs error over
# max |fp32|, on this file's random input. On real photos (benchmarks/precision_accuracy.py) EfficientNet-Lite0's
# median is 1.0e-2 and its worst 1.4e-1 over 29 photos (top-1 agreement 93%): top-1 is checked on this input only.
FP16_TOLERANCE = 2e-2
SYSROOT = Path("/usr/aarch64-linux-gnu")
BUILD = Path(os.environ.get("TVM_NCNN_AARCH64_BUILD_DIR", ROOT / "build" / "aarch64"))
TARBALL = BUILD / "tvm-ncnn-aarch64.tar.gz"
QEMU = shutil.which("qemu-aarch64")
CPUS = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}
# What a bare aarch64 system has: the bundle must bring everything else.
BASE_LIBS = ["ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
             "libgcc_s.so.1", "libstdc++.so.6"]

if os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1":
    pytest.skip("TVM_NCNN_SKIP_AARCH64=1", allow_module_level=True)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    """The deploy bundle as a user gets it: the tarball unpacked somewhere else."""
    assert QEMU, "qemu-aarch64 is not installed: apt-get install qemu-user (cmake/bootstrap.sh does)"
    assert TARBALL.exists(), f"{TARBALL} is not built: run bash cmake/build_aarch64.sh"
    dest = tmp_path_factory.mktemp("pi")
    with tarfile.open(TARBALL) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 (and Debian's 3.11.2 backport)
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / "tvm-ncnn-aarch64"


@pytest.fixture(scope="session")
def bare_sysroot(tmp_path_factory) -> Path:
    """A root with only the base system libraries, for qemu's -L: the bundle's own libraries (libgomp,
    TVM) must come from the bundle, not from the cross toolchain's sysroot."""
    root = tmp_path_factory.mktemp("bare-sysroot")
    (root / "lib").mkdir()
    for name in BASE_LIBS:
        src = SYSROOT / "lib" / name
        assert src.exists(), f"{src} missing (Debian package libc6-arm64-cross / libstdc++6-arm64-cross)"
        (root / "lib" / name).symlink_to(src.resolve())
    return root


def qemu_app(bundle: Path, sysroot: Path, cpu: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [QEMU, "-L", str(sysroot), "-cpu", cpu, str(bundle / "deploy_app"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def run_json(bundle, sysroot, cpu, model_so, input_path, tmp: Path, *extra: str):
    """deploy_app --json under qemu; returns (first output, report)."""
    out = tmp / f"out-{cpu}-{len(list(tmp.iterdir()))}.npy"
    proc = qemu_app(bundle, sysroot, cpu, model_so, input_path, "--output", out, "--json", "--repeat", "1", *extra)
    assert proc.returncode == 0, f"aarch64 deploy_app ({cpu}) failed: {proc.stderr}"
    return np.load(out), json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stdout} {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("deploy_app: error: "), lines[0]
    return lines[0]


# ---- models, exported once per session


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """name -> dict(onnx, so paths per target, input .npy, onnxruntime reference)."""
    work = tmp_path_factory.mktemp("aarch64-models")
    rng = np.random.default_rng(7)
    out = {}

    # Pretrained EfficientNet-Lite0 with labels and its preprocessing (the photo test uses it too).
    spec = zoo.MODELS["efficientnet-lite0"]
    onnx_path = zoo.to_onnx(zoo.torch_model("efficientnet-lite0"), str(work / "effnet.onnx"), (1, 3, 224, 224))
    labels = work / "labels.txt"
    labels.write_text("\n".join(zoo.imagenet_labels()) + "\n")
    pre = tvm_ncnn.Preprocess(mean=spec.mean, std=spec.std)
    effnet = {"onnx": onnx_path}
    for target in ("rpi4", "host"):  # fp32: compared with onnxruntime at 1e-4 on every CPU
        effnet[target] = str(work / f"effnet-{target}.so")
        tvm_ncnn.export(onnx_path, effnet[target], target=target, labels=str(labels), preprocess=pre,
                        precision="fp32")
    effnet["rpi4-default"] = str(work / "effnet-rpi4-default.so")  # fp16: what a Pi user gets without flags
    tvm_ncnn.export(onnx_path, effnet["rpi4-default"], target="rpi4", labels=str(labels), preprocess=pre)
    out["efficientnet-lite0"] = effnet

    # A small CNN with an op ncnn has no layer for (erf): two ncnn regions and TVM code compiled for each CPU.
    torch.manual_seed(0)
    onnx_path = zoo.to_onnx(SplitByUnsupported().eval(), str(work / "split.onnx"), (1, 3, 32, 32))
    split = {"onnx": onnx_path}
    for target in ("rpi4", "rpi5", "aarch64"):
        split[target] = str(work / f"split-{target}.so")
        result = tvm_ncnn.export(onnx_path, split[target], target=target, precision="fp32")
        assert result.report.regions == 2
    out["split"] = split

    for name, shape in (("efficientnet-lite0", (1, 3, 224, 224)), ("split", (1, 3, 32, 32))):
        x = rng.standard_normal(shape).astype(np.float32)
        out[name]["input"] = str(work / f"{name}-input.npy")
        np.save(out[name]["input"], x)
        out[name]["ref"] = onnxruntime_run(out[name]["onnx"], x)
    return out


# ---- the bundle


def test_bundle_is_self_contained_and_small(bundle):
    files = sorted(p.name for p in bundle.iterdir() if p.is_file())
    for name in ("deploy_app", "libtvm_ncnn_runtime.so", "libtvm_runtime.so", "libtvm_ffi.so", "libgomp.so.1",
                 "README.txt"):
        assert name in files, f"{name} missing from the bundle: {files}"
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"bundle is {size / 2**20:.1f} MB"
    readme = (bundle / "README.txt").read_text()
    assert "./deploy_app model.so" in readme and "glibc >= 2." in readme
    for name in ("deploy_app", "libtvm_ncnn_runtime.so", "libtvm_runtime.so", "libtvm_ffi.so", "libgomp.so.1"):
        header = (bundle / name).read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, f"{name} not aarch64"
    objdump = shutil.which("aarch64-linux-gnu-objdump")
    if objdump:
        for name in ("deploy_app", "libtvm_ncnn_runtime.so"):
            headers = subprocess.run([objdump, "-h", str(bundle / name)], capture_output=True, text=True).stdout
            assert ".symtab" not in headers and ".debug" not in headers, f"{name} is not stripped"


def test_help_runs_on_a_bare_system(bundle, bare_sysroot):
    proc = qemu_app(bundle, bare_sysroot, "cortex-a72", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: deploy_app" in proc.stdout


# ---- results against onnxruntime


@pytest.mark.parametrize("name,target,cpu", [
    ("efficientnet-lite0", "rpi4", "cortex-a72"),
    ("efficientnet-lite0", "rpi4", "cortex-a76"),   # an rpi4 model runs on a Pi 5 too
    ("split", "rpi4", "cortex-a72"),
    ("split", "rpi5", "cortex-a76"),
    ("split", "aarch64", "cortex-a72"),             # generic armv8-a
])
def test_matches_onnxruntime(name, target, cpu, models, bundle, bare_sysroot, tmp_path):
    m = models[name]
    got, report = run_json(bundle, bare_sysroot, cpu, m[target], m["input"], tmp_path)
    err = max_rel_error(got, m["ref"])
    assert err <= TOLERANCE, f"{name} ({target} on {cpu}): max abs error {err:.2e} x max|ref|"
    assert report["target"] == target and report["triple"] == "aarch64-linux-gnu"
    assert report["fp16"] is False


def test_photo_top5_matches_onnxruntime(models, bundle, bare_sysroot, tmp_path):
    """deploy_app decodes and preprocesses the photo on aarch64; its top-5 equals onnxruntime's on the
    same photo preprocessed by the host runtime. (One CPU: decoding and resizing use no armv8.2 code.)"""
    cpu = "cortex-a72"
    m = models["efficientnet-lite0"]
    x = tvm_ncnn.load(m["host"]).load_image(zoo.sample_image())
    ref = onnxruntime_run(m["onnx"], x)[0]
    ref_top5 = [int(i) for i in np.argsort(-ref)[:5]]
    photo = tmp_path / "grace_hopper.jpg"
    shutil.copy(zoo.sample_image(), photo)
    proc = qemu_app(bundle, bare_sysroot, cpu, m["rpi4"], photo, "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [entry["index"] for entry in report["topk"]] == ref_top5
    assert report["topk"][0]["label"] == zoo.imagenet_labels()[ref_top5[0]]


# ---- threads and fp16 (on the small model: the options' effect, not the accuracy, is under test here)


def test_threads_default_to_detected_cores_and_override(models, bundle, bare_sysroot, tmp_path):
    m = models["split"]
    base, report = run_json(bundle, bare_sysroot, "cortex-a72", m["rpi4"], m["input"], tmp_path)
    # Under qemu-user ncnn looks at this machine's cores (frequency tiers decide which are big).
    assert 1 <= report["threads"] <= os.cpu_count()
    want = 3 if report["threads"] != 3 else 2
    got, report = run_json(bundle, bare_sysroot, "cortex-a72", m["rpi4"], m["input"], tmp_path,
                           "--threads", str(want))
    assert report["threads"] == want
    assert max_rel_error(got, m["ref"]) <= TOLERANCE
    assert max_rel_error(got, base) <= TOLERANCE


def test_fp16_by_default_where_the_cpu_has_it(models, bundle, bare_sysroot, tmp_path):
    """The default export (fp16) runs ncnn's fp16 kernels on a Pi 5 (Cortex-A76, armv8.2 fp16 arithmetic) and
    fp32 on a Pi 4 (Cortex-A72, none), and deploy_app says which ran. On the A76 the result moves off the
    host's fp32 result by fp16 rounding, within FP16_TOLERANCE, with the same top-1; --precision fp32 gives
    back fp32 exactly. The host's fp32 result is the reference: the fp32 export under qemu equals it to 1e-4."""
    m = models["efficientnet-lite0"]
    host = tvm_ncnn.load(m["host"], threads=1).single(np.load(m["input"]))
    for cpu in ("cortex-a76", "cortex-a72"):
        fp32, report = run_json(bundle, bare_sysroot, cpu, m["rpi4"], m["input"], tmp_path)
        assert (report["precision"], report["exported_precision"]) == ("fp32", "fp32")
        got, report = run_json(bundle, bare_sysroot, cpu, m["rpi4-default"], m["input"], tmp_path)
        assert report["exported_precision"] == "fp16"
        if cpu == "cortex-a76":
            assert (report["precision"], report["fp16"]) == ("fp16", True)
            assert not np.array_equal(got, fp32), "fp16 changed nothing: ncnn's fp16 kernels did not run"
            err = max_rel_error(got, host)
            assert err <= FP16_TOLERANCE, f"fp16 on {cpu} is off by {err:.2e} x max|fp32|"
            assert int(np.argmax(got)) == int(np.argmax(host))
        else:
            assert (report["precision"], report["fp16"]) == ("fp32", False)
            assert np.array_equal(got, fp32), "an fp16 model changed the result on a CPU without fp16 arithmetic"
        back, report = run_json(bundle, bare_sysroot, cpu, m["rpi4-default"], m["input"], tmp_path,
                                "--precision", "fp32")
        assert report["precision"] == "fp32" and np.array_equal(back, fp32)
    # the older flag still asks for fp16, and the header line says what ran and why
    _, report = run_json(bundle, bare_sysroot, "cortex-a76", m["rpi4"], m["input"], tmp_path, "--fp16")
    assert report["precision"] == "fp16"
    text = qemu_app(bundle, bare_sysroot, "cortex-a72", m["rpi4-default"], m["input"], "--repeat", "0").stdout
    assert "precision fp32 (as exported; this CPU has no fp16 arithmetic)" in text, text


# ---- refusals: one line, exit 1


def test_aarch64_model_on_x86_deploy_app_is_refused(models):
    if not DEPLOY_APP.exists():
        pytest.skip(f"{DEPLOY_APP} not built")
    m = models["split"]
    proc = subprocess.run([str(DEPLOY_APP), m["rpi4"], m["input"]], capture_output=True, text=True, timeout=60)
    line = one_error_line(proc)
    assert "built for aarch64" in line and "this machine is x86_64" in line, line


def test_x86_model_on_aarch64_deploy_app_is_refused(models, bundle, bare_sysroot):
    m = models["efficientnet-lite0"]
    line = one_error_line(qemu_app(bundle, bare_sysroot, "cortex-a72", m["host"], m["input"]))
    assert "built for x86_64" in line and "this machine is aarch64" in line, line


def test_other_tvm_version_is_refused_on_aarch64(models, bundle, bare_sysroot, tmp_path):
    """A model.so whose metadata claims another TVM version: the aarch64 runtime names both versions."""
    import tvm

    ours = tvm.__version__
    theirs = "9" + ours[1:]  # same length: the metadata's length prefix stays right
    data = bytearray(strip_seal(Path(models["split"]["rpi4"]).read_bytes()))
    needle = f'"tvm_version": "{ours}"'.encode()
    assert data.count(needle) == 1, "metadata JSON not found in model.so"
    data[:] = data.replace(needle, f'"tvm_version": "{theirs}"'.encode())
    reseal(data, next(s for s in module_spans(bytes(data)) if s.kind == "tvm_ncnn_meta"))
    patched = tmp_path / "other-tvm.so"
    patched.write_bytes(bytes(data))
    line = one_error_line(qemu_app(bundle, bare_sysroot, "cortex-a72", patched, models["split"]["input"]))
    assert f"TVM {theirs}" in line and f"TVM {ours}" in line, line


# ---- the export side


def test_targets_compile_for_the_board_cpu():
    for name, cpu in CPUS.items():
        target = get_target(name, check_toolchain=False).tvm_target()
        assert str(target.attrs["mtriple"]) == "aarch64-linux-gnu"
        assert str(target.attrs["mcpu"]) == cpu
    assert "mcpu" not in get_target("aarch64", check_toolchain=False).tvm_target().attrs


def test_missing_cross_compiler_names_the_package(models, tmp_path, monkeypatch):
    onnx_path = models["split"]["onnx"]
    monkeypatch.setenv("PATH", str(tmp_path))   # no aarch64-linux-gnu-g++ on it
    with pytest.raises(ModelError, match="g\\+\\+-aarch64-linux-gnu"):
        tvm_ncnn.export(onnx_path, tmp_path / "model.so", target="rpi4")
    assert not (tmp_path / "model.so").exists()
    cli = ROOT / ".venv" / "bin" / "tvm-ncnn"
    if cli.exists():
        proc = subprocess.run([str(cli), "export", onnx_path, "-o", str(tmp_path / "model.so"), "--target", "rpi5"],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": str(tmp_path)})
        assert proc.returncode != 0
        assert "g++-aarch64-linux-gnu" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_detections_equal_the_host(bundle, bare_sysroot, tmp_path):
    """Detection post-processing on the board: a YOLOv8n-seg model.so for rpi4 under qemu (Cortex-A72, fp32)
    prints the host's detections, masks included, for the same photo."""
    pytest.importorskip("ultralytics")
    from test_detect import PHOTO, yolo_with_scores

    model, shape = yolo_with_scores("yolov8n-seg")
    onnx_path = str(tmp_path / "seg.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(*shape),), onnx_path, input_names=["images"], opset_version=17,
                          dynamo=False)
    pre = tvm_ncnn.Preprocess(std=(255.0,) * 3, resize="letterbox")
    tvm_ncnn.export(onnx_path, tmp_path / "host.so", preprocess=pre)
    tvm_ncnn.export(onnx_path, tmp_path / "pi.so", target="rpi4", preprocess=pre)
    args = [PHOTO, "--json", "--repeat", "0", "--score", "0.3"]
    host = subprocess.run([str(DEPLOY_APP), str(tmp_path / "host.so"), *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    board = qemu_app(bundle, bare_sysroot, "cortex-a72", tmp_path / "pi.so", *args)
    assert host.returncode == 0 and board.returncode == 0, host.stderr + board.stderr
    theirs, ours = json.loads(host.stdout)["detections"], json.loads(board.stdout)["detections"]
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a["class"] == b["class"] and abs(a["score"] - b["score"]) < 1e-4, (a, b)
        assert np.allclose(a["box"], b["box"], atol=0.05), (a, b)
        assert abs(a["mask_area"] - b["mask_area"]) <= max(2, 0.01 * b["mask_area"]), (a, b)


def test_dynamic_sizes_equal_the_host(bundle, bare_sysroot, tmp_path):
    """One model.so with dynamic sizes (rapidocr's PP-OCRv4 text detector: H and W multiples of 32), built for the
    Pi 5, under qemu at two sizes equals onnxruntime, as the host build does."""
    pytest.importorskip("rapidocr_onnxruntime")
    from test_dynamic_sizes import RAPIDOCR, _photo

    onnx_path = str(RAPIDOCR / "ch_PP-OCRv4_det_infer.onnx")
    so = tmp_path / "det-rpi5.so"
    tvm_ncnn.export(onnx_path, so, target="rpi5", precision="fp32")
    for shape in ((1, 3, 128, 160), (1, 3, 192, 128)):  # sizes where the photo's map reaches ~1
        x = _photo(shape)  # on noise the map is all but 0: the relative tolerance needs a scale
        np.save(tmp_path / "x.npy", x)
        got, _ = run_json(bundle, bare_sysroot, "cortex-a76", str(so), str(tmp_path / "x.npy"), tmp_path)
        ref = onnxruntime_run(onnx_path, x)
        assert got.shape == ref.shape
        assert max_rel_error(got, ref) <= TOLERANCE, shape


def test_crnn_with_ncnn_lstm_on_aarch64(bundle, bare_sysroot, tmp_path):
    """A CRNN text recogniser (conv stack -> BiLSTM -> linear; ncnn's LSTM layer, its NEON and fp16 code): fp32
    on a Pi 4 and a Pi 5 at 1e-4 with onnxruntime's greedy CTC decoding, the default fp16 on a Pi 5 within
    FP16_TOLERANCE."""
    from test_recurrent import _crnn, greedy_ctc

    onnx_path = tmp_path / "crnn.onnx"
    torch.onnx.export(_crnn(1, 32), (torch.randn(1, 1, 32, 100),), str(onnx_path), dynamo=False, opset_version=17)
    x = np.random.default_rng(3).standard_normal((1, 1, 32, 100)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = onnxruntime_run(str(onnx_path), x)
    for precision in ("fp32", "fp16"):
        result = tvm_ncnn.export(onnx_path, tmp_path / f"crnn-{precision}.so", target="rpi4", precision=precision)
        assert next(o for o in result.report.ops if o.op.startswith("onnx_lstm")).place.startswith("ncnn")
    for cpu in ("cortex-a72", "cortex-a76"):
        got, _ = run_json(bundle, bare_sysroot, cpu, tmp_path / "crnn-fp32.so", tmp_path / "x.npy", tmp_path)
        assert max_rel_error(got, ref) <= TOLERANCE, f"{cpu}: {max_rel_error(got, ref):.2e}"
        assert greedy_ctc(got) == greedy_ctc(ref)
    got, report = run_json(bundle, bare_sysroot, "cortex-a76", tmp_path / "crnn-fp16.so", tmp_path / "x.npy", tmp_path)
    assert report["fp16"] is True
    assert max_rel_error(got, ref) <= FP16_TOLERANCE, f"fp16: {max_rel_error(got, ref):.2e}"
