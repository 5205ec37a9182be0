"""Issue #7, part 1: a model.so that is missing, not a file, truncated, corrupted, foreign, built for another
CPU, or built by other versions is refused with one clear line by deploy_app and a ModelError by
tvm_ncnn.load -- never a crash, a hang or a wrong answer."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from support import (BUILD_DIR, assert_model_error, assert_one_line_error, deploy_app, elf_symbol_range, module_spans,
                     python_cases, reseal, strip_seal)
from reliability_fixtures import models  # noqa: F401  (the fixture)


def write_variant(tmp_path, source, name: str, change) -> str:
    """A copy of model.so `source`, without its seal (so that the change reaches the checks behind it), with
    change(bytearray) applied, as tmp_path/name."""
    data = bytearray(strip_seal(source.read_bytes()))
    change(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return str(path)


def replace_in_meta(old: bytes, new: bytes):
    """Change the metadata JSON in place (same length) and reseal its checksum: a well-formed model.so that
    says something else about itself, e.g. other versions."""
    assert len(old) == len(new)

    def change(data: bytearray):
        meta = next(s for s in module_spans(bytes(data)) if s.kind == "tvm_ncnn_meta")
        at = data.find(old, meta.start, meta.end)
        assert at >= 0, old
        data[at:at + len(old)] = new
        reseal(data, meta)
    return change


def both_refuse(path: str, x, *needles: str) -> None:
    """deploy_app: one line naming the file and every needle; tvm_ncnn.load: ModelError with the same."""
    assert_one_line_error(deploy_app(path, x), *needles, exit_code=1)
    assert_model_error(python_cases([{"op": "load", "path": path}])[0], *needles)


def test_missing_file(models, tmp_path):
    both_refuse(str(tmp_path / "missing.so"), models["x"], "missing.so", "no such file")


def test_directory(models, tmp_path):
    (tmp_path / "adir.so").mkdir()
    both_refuse(str(tmp_path / "adir.so"), models["x"], "adir.so", "is a directory")


def test_empty_and_text_files(models, tmp_path):
    (tmp_path / "empty.so").write_bytes(b"")
    (tmp_path / "text.so").write_text("this is not a library\n")
    for name in ("empty.so", "text.so"):
        both_refuse(str(tmp_path / name), models["x"], name, "not a model.so")


@pytest.mark.parametrize("keep", ["half", "headers_only", "all_but_one", "seal_cut_to_5", "unsealed_all_but_one"])
def test_truncated(models, tmp_path, keep):
    sealed = models["two_regions"]["so"].read_bytes()
    data = strip_seal(sealed) if keep.startswith("unsealed") else sealed
    size = {"half": len(data) // 2, "headers_only": 64, "all_but_one": len(data) - 1,
            "seal_cut_to_5": len(data) - 19, "unsealed_all_but_one": len(data) - 1}[keep]
    path = tmp_path / f"cut_{keep}.so"
    path.write_bytes(data[:size])
    both_refuse(str(path), models["x"], path.name, "truncated")


def mapped_library(needle: str) -> str:
    """Path of a shared library this process has mapped, e.g. libc."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line[line.find("/"):].strip() if "/" in line else ""
            if needle in path.rsplit("/", 1)[-1]:
                return path
    pytest.skip(f"no {needle} mapped")


def test_foreign_shared_library(models):
    # Real shared libraries for this CPU that are not models: the runtime library itself (for deploy_app; the
    # sanitized build's would not load into the Python process) and the C library.
    runtime = BUILD_DIR / "lib" / "libtvm_ncnn_runtime.so"
    assert_one_line_error(deploy_app(runtime, models["x"]), "libtvm_ncnn_runtime.so", "not a tvm-ncnn model")
    libc = mapped_library("libc.so")
    both_refuse(libc, models["x"], libc, "not a tvm-ncnn model")


def test_other_architecture_header(models, tmp_path):
    # e_machine says aarch64 (183) on x86_64, or x86_64 (62) on aarch64.
    import platform

    here, other, machine = ("x86_64", "aarch64", 183) if platform.machine() == "x86_64" else ("aarch64", "x86_64", 62)
    path = write_variant(tmp_path, models["two_regions"]["so"], "other_arch.so",
                         lambda d: struct.pack_into("<H", d, 18, machine))
    both_refuse(path, models["x"], "other_arch.so", f"built for {other}", f"this machine is {here}")


def test_real_aarch64_model(models, tmp_path):
    """A model.so really exported for the Raspberry Pi, given to the x86 runtime."""
    import platform

    if platform.machine() != "x86_64" or shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("needs an x86_64 host with the aarch64 cross compiler")
    import tvm_ncnn

    path = tmp_path / "rpi4.so"
    tvm_ncnn.export(models["two_regions"]["onnx"], path, target="rpi4")
    both_refuse(str(path), models["x"], "rpi4.so", "built for aarch64", "this machine is x86_64")


@pytest.mark.parametrize("where", ["ncnn_weights", "ncnn_param", "ncnn_shape", "meta_json"])
def test_corrupted_module_bytes(models, tmp_path, where):
    """One flipped byte inside a module, or in a region's weights (their own symbol of model.so, checked against
    the checksum its module records), in a file without a seal: found (a changed weight would run and lie)."""
    source = models["classifier"]["so"]
    spans = module_spans(source.read_bytes())
    ncnn = next(s for s in spans if s.kind == "ncnn")
    meta = next(s for s in spans if s.kind == "tvm_ncnn_meta")
    assert ncnn.weights_symbol, "export links the weights as a symbol of their own (module format version 3)"
    offset = {"ncnn_param": ncnn.param[0] + 20,
              "ncnn_weights": elf_symbol_range(source, ncnn.weights_symbol)[0] + 40,
              "ncnn_shape": ncnn.end - 16,
              "meta_json": meta.start + 40}[where]

    def flip(data):
        data[offset] ^= 0x04
    path = write_variant(tmp_path, source, f"flip_{where}.so", flip)
    kind = {"ncnn_weights": "its weights", "meta_json": "tvm_ncnn_meta module"}.get(where, "ncnn module")
    both_refuse(path, models["x"], f"flip_{where}.so", kind, "checksum mismatch")


def test_corrupted_weights_in_a_sealed_file(models, tmp_path):
    """With the seal kept, the seal finds a flipped weight before dlopen (the weights are then not summed again)."""
    source = models["classifier"]["so"]
    ncnn = next(s for s in module_spans(source.read_bytes()) if s.kind == "ncnn")
    data = bytearray(source.read_bytes())
    data[elf_symbol_range(source, ncnn.weights_symbol)[0] + 40] ^= 0x04
    path = tmp_path / "flip_sealed_weights.so"
    path.write_bytes(bytes(data))
    both_refuse(str(path), models["x"], path.name, "checksum mismatch", "changed after export")


@pytest.mark.parametrize("where", ["vm_bytecode", "compiled_code", "elf_header", "seal_checksum"])
def test_corrupted_tvm_part_is_refused_by_the_seal(models, tmp_path, where):
    """TVM does not check its code or VM bytecode (a flipped byte there can crash); the seal covers them."""
    source = models["two_regions"]["so"]
    blob, _ = elf_symbol_range(source, "__tvm_ffi__library_bin")
    code, _ = elf_symbol_range(source, "__tvm_ffi_main")
    size = source.stat().st_size
    offset = {"vm_bytecode": blob + 0x200, "compiled_code": code + 8, "elf_header": 0x28,
              "seal_checksum": size - 3}[where]
    data = bytearray(source.read_bytes())
    data[offset] ^= 0x10
    path = tmp_path / f"tvm_{where}.so"
    path.write_bytes(bytes(data))
    both_refuse(str(path), models["x"], path.name)
    if where != "elf_header":  # a header changed so much may already fail the ELF checks
        assert_one_line_error(deploy_app(path, models["x"]), "checksum mismatch", "changed after export")


def test_seal_is_idempotent_and_optional(models, tmp_path):
    from tvm_ncnn.runtime import native

    sealed = models["classifier"]["so"].read_bytes()
    (tmp_path / "again.so").write_bytes(sealed)
    native.seal(tmp_path / "again.so")
    assert (tmp_path / "again.so").read_bytes() == sealed  # sealing twice changes nothing
    (tmp_path / "unsealed.so").write_bytes(strip_seal(sealed))  # exported before seals: still loads
    done = deploy_app(tmp_path / "unsealed.so", models["x"], "--repeat", "1")
    assert done.returncode == 0, done.describe()


@pytest.mark.parametrize("what,old,new,needles", [
    ("tvm", b'"tvm_version": "0.27', b'"tvm_version": "0.26',
     ["built with TVM 0.26", "this runtime uses TVM 0.27"]),
    ("ncnn", b'"ncnn_version": "1.0.2026', b'"ncnn_version": "1.0.2019',
     ["built with ncnn 1.0.2019", "this runtime uses ncnn 1.0.2026"]),
    ("sdk", b'"sdk_version": "0.1.0"', b'"sdk_version": "9.1.0"',
     ["built with tvm-ncnn SDK 9.1.0", "this runtime uses tvm-ncnn SDK 0.1.0"]),
    ("json_format", b'"format_version": 3', b'"format_version": 7',
     ["metadata format version 7", "reads versions 1 to 3"]),
])
def test_version_mismatch(models, tmp_path, what, old, new, needles):
    path = write_variant(tmp_path, models["two_regions"]["so"], f"v_{what}.so", replace_in_meta(old, new))
    both_refuse(path, models["x"], f"v_{what}.so", *needles)


def test_files_with_weights_in_the_module_still_load(models, tmp_path, monkeypatch):
    """model.so files exported before the weights had a symbol of their own (ncnn module format version 2, the
    weights inside the module's bytes) load and give the same answer."""
    import numpy as np

    import tvm_ncnn
    from tvm_ncnn.exporter import weights_section

    monkeypatch.setattr(weights_section, "addons", lambda executable, workdir: [])  # what export did before
    old = tmp_path / "v2.so"
    tvm_ncnn.export(models["two_regions"]["onnx"], old)
    assert {s.weights_symbol for s in module_spans(old.read_bytes()) if s.kind == "ncnn"} == {""}
    outputs = []
    for path in (old, models["two_regions"]["so"]):
        done = deploy_app(path, models["x"], "--repeat", "1", "--output", str(tmp_path / f"{path.stem}.npy"))
        assert done.returncode == 0, done.describe()
        outputs.append(np.load(tmp_path / f"{path.stem}.npy"))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("kind,newest", [("ncnn", 3), ("tvm_ncnn_meta", 2)])
def test_module_format_version_mismatch(models, tmp_path, kind, newest):
    def bump(data):
        span = next(s for s in module_spans(bytes(data)) if s.kind == kind)
        struct.pack_into("<I", data, span.start + 8, newest + 1)
        reseal(data, span)
    path = write_variant(tmp_path, models["two_regions"]["so"], f"f_{kind}.so", bump)
    both_refuse(path, models["x"], f"f_{kind}.so", f"format version {newest + 1}", f"versions 1 to {newest}")


def test_versions_are_recorded_and_shown(models):
    """The versions that built the model and those of the runtime, side by side (deploy_app --json)."""
    done = deploy_app(models["two_regions"]["so"], models["x"], "--json", "--repeat", "1")
    assert done.returncode == 0, done.describe()
    report = json.loads(done.stdout)
    assert report["model_versions"] == report["runtime_versions"]
    assert all(report["model_versions"][k] for k in ("sdk", "tvm", "ncnn"))


def test_thread_counts_refused(models):
    x, so = models["x"], models["two_regions"]["so"]
    for value in ("0", "-1", "257", "100000", "two", ""):
        assert_one_line_error(deploy_app(so, x, "--threads", value), "--threads", "1 to 256", exit_code=2)
    for value in ("-1", "100001", "one"):
        assert_one_line_error(deploy_app(so, x, "--repeat", value), "--repeat", "0 to 100000", exit_code=2)
    assert_one_line_error(deploy_app(so, x, "--repeat", "0", "--profile"), "--profile", "--repeat 1", exit_code=2)
    results = python_cases([{"op": "load", "path": str(so), "threads": t} for t in (0, -1, 257, 100000, 2.5, True)])
    for value, result in zip(("0", "-1", "257", "100000", "2.5", "True"), results):
        assert_model_error(result, "threads must be a whole number from 1 to 256", value)


def test_repeat_0_is_the_first_run_only(models):
    """Issue 16.7: --repeat 0 was refused; it is one run, with no steady figures (null in JSON)."""
    done = deploy_app(models["classifier"]["so"], models["x"], "--repeat", "0", "--json")
    assert done.returncode == 0, done.describe()
    report = json.loads(done.stdout)
    assert report["repeat"] == 0 and report["times_ms"] == [] and report["first_ms"] > 0
    assert report["p50_ms"] is None and report["p90_ms"] is None and report["cpu_ms"] is None
    assert report["topk"][0]["label"].startswith("class-")
    text = deploy_app(models["classifier"]["so"], models["x"], "--repeat", "0")
    assert text.returncode == 0 and "no steady runs: --repeat 0" in text.stdout, text.describe()


def test_ncnn_region_source_is_its_graph(models):
    """InspectSource of an ncnn module loaded from model.so is the region's ncnn graph (.param text)."""
    import tvm_ffi
    from tvm_ncnn.runtime import native

    native.library_path()  # registers the module loaders
    found, stack = [], [tvm_ffi.load_module(str(models["two_regions"]["so"]))]
    while stack:
        module = stack.pop()
        found += [module] if module.kind == "ncnn" else []
        stack += list(module.imports)
    assert len(found) == 2
    for region in found:
        graph = region.inspect_source()
        assert graph.startswith("7767517\n") and "Input" in graph, graph[:200]
