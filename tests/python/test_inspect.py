"""`tvm-ncnn inspect model.so` reads model.so's bytes, never loads it (sdk_python/tvm_ncnn/format/model_file.py): a model
exported for a Pi inspects on the x86 workstation; --json; --input refused for a model.so; files without the
partition report or with a version-1 metadata module still read; a changed metadata byte is refused; --version."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest

import tvm_ncnn
from tvm_ncnn import zoo
from tvm_ncnn.format import model_file

from conftest import tvm_ncnn_cli
from nets import TinyConvNet

CROSS_CXX = shutil.which("aarch64-linux-gnu-g++")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A host and an rpi4 model.so of the same small classifier with 10 labels and a preprocessing."""
    work = tmp_path_factory.mktemp("inspect")
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(work / "t.onnx"), (1, 3, 32, 32))
    (work / "labels.txt").write_text("".join(f"class-{i}\n" for i in range(10)))
    paths = {}
    for target in ("host", "rpi4"):
        if target == "rpi4" and CROSS_CXX is None:
            continue
        done = tvm_ncnn_cli("export", onnx_path, "-o", work / f"{target}.so", "--target", target, "--labels",
                   work / "labels.txt", "--mean", "127,127,127", "--std", "128,128,128", "--color", "BGR")
        assert done.returncode == 0, done.stderr
        paths[target] = work / f"{target}.so"
    return paths


@pytest.mark.parametrize("target", ["host", "rpi4"])
def test_inspect_reads_any_target_without_loading(exported, target):
    if target not in exported:
        pytest.skip("no aarch64-linux-gnu-g++ to export for rpi4")
    done = tvm_ncnn_cli("inspect", exported[target])
    assert done.returncode == 0, done.stderr  # before: a dlopen error for the aarch64 file
    text = done.stdout
    machine, triple = ("aarch64", "aarch64-linux-gnu") if target == "rpi4" else ("x86_64", "x86_64-linux-gnu")
    for needle in (f"ELF {machine}, sealed", f"target     {target} ({triple})", "'input' [1,3,32,32] float32",
                   "'output' [1,10] float32", "BGR, mean 127,127,127, std 128,128,128", "labels     10",
                   "precision  fp", "built by   tvm-ncnn ", "partition  1 ncnn region(s), 21/21 ops",
                   "nn.conv2d"):
        assert needle in text, f"{needle!r} not in:\n{text}"

    info = json.loads(tvm_ncnn_cli("inspect", exported[target], "--json").stdout)
    assert info["target"] == target and info["triple"] == triple
    assert info["file"]["machine"] == machine and info["file"]["sealed"] is True
    assert info["labels_count"] == 10 and info["labels"][3] == "class-3"
    assert info["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert info["preprocess"]["color"] == "BGR"
    assert {"sdk_version", "tvm_version", "ncnn_version"} <= set(info)
    assert info["partition"]["regions"] == 1 and len(info["partition"]["ops"]) == 21
    assert tvm_ncnn.read_metadata(exported[target])["target"] == target


def test_inspect_json_of_a_model_to_export(tmp_path):
    onnx_path = zoo.to_onnx(TinyConvNet().eval(), str(tmp_path / "t.onnx"), (1, 3, 32, 32))
    info = json.loads(tvm_ncnn_cli("inspect", onnx_path, "--json").stdout)
    assert info["partition"]["regions"] == 1 and info["source"] == onnx_path


def test_inspect_refuses_input_for_a_model_so(exported):
    done = tvm_ncnn_cli("inspect", exported["host"], "--input", "input:1,3,64,64")
    assert done.returncode == 2  # before: --input silently ignored
    assert done.stderr.startswith("tvm-ncnn: error: --input") and len(done.stderr.splitlines()) == 1


def _meta_span(data: bytes) -> tuple[int, int, str]:
    at = data.index(model_file.META_MAGIC)
    _, length = struct.unpack_from("<IQ", data, at + 8)
    return at, length, data[at + 20:at + 20 + length].decode()


def _with_json(data: bytes, text: str) -> bytearray:
    """model.so with its metadata JSON replaced by `text` padded with spaces to the same length (still valid
    JSON), checksum recomputed: what an older SDK could have written."""
    at, length, _ = _meta_span(data)
    assert len(text) <= length
    out = bytearray(data)
    out[at + 20:at + 20 + length] = text.ljust(length).encode()
    struct.pack_into("<Q", out, at + 20 + length, model_file.checksum64(bytes(out[at:at + 20 + length])))
    return out


def test_old_files_stay_readable(exported, tmp_path):
    data = exported["host"].read_bytes()[:-model_file.SEAL_SIZE]  # a change needs the seal off
    _, _, text = _meta_span(data)
    old = json.loads(text)
    del old["partition"]  # exported before the report was stored
    (tmp_path / "old.so").write_bytes(_with_json(data, json.dumps(old)))
    done = tvm_ncnn_cli("inspect", tmp_path / "old.so")
    assert done.returncode == 0, done.stderr
    assert "no seal" in done.stdout and "partition  not recorded" in done.stdout

    v1 = bytearray(data)  # module format version 1: no checksum trailer (its 8 bytes are simply not read)
    struct.pack_into("<I", v1, data.index(model_file.META_MAGIC) + 8, 1)
    (tmp_path / "v1.so").write_bytes(v1)
    assert tvm_ncnn.read_metadata(tmp_path / "v1.so")["labels"][0] == "class-0"


def test_damaged_files_are_refused_in_one_line(exported, tmp_path):
    data = bytearray(exported["host"].read_bytes()[:-model_file.SEAL_SIZE])
    at, _, text = _meta_span(bytes(data))
    flip = at + 20 + text.index("class-3") + 6
    data[flip] ^= 0x01  # "class-3" -> "class-2": a label changed after export
    (tmp_path / "flipped.so").write_bytes(data)
    (tmp_path / "notelf.so").write_bytes(b"hello, not a library\n" * 10)
    (tmp_path / "cut.so").write_bytes(exported["host"].read_bytes()[:2000])
    for name, needle in (("flipped.so", "fails its checksum"), ("notelf.so", "not an ELF"),
                         ("cut.so", "truncated"), ("missing.so", "no such file")):
        done = tvm_ncnn_cli("inspect", tmp_path / name)
        assert done.returncode == 1 and needle in done.stderr, (name, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_checksum_matches_the_runtime(exported):
    """The Python checksum is the runtime's: the metadata module the runtime wrote verifies."""
    data = exported["host"].read_bytes()
    at, length, _ = _meta_span(data)
    stored, = struct.unpack_from("<Q", data, at + 20 + length)
    assert model_file.checksum64(data[at:at + 20 + length]) == stored


def test_version_names_sdk_tvm_and_ncnn():
    done = tvm_ncnn_cli("--version")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"tvm-ncnn {tvm_ncnn.__version__}, TVM 0.27") and ", ncnn 1.0." in line, line


def test_inspect_imports_no_compiler(exported):
    """Reading a model.so needs neither TVM's compiler nor tvm_ffi (which imports torch when it is installed):
    before, inspect imported both and took 4-8 s; it now reads the bytes in well under a second."""
    probe = ("import runpy, sys; sys.argv = ['tvm-ncnn', 'inspect', sys.argv[1]]\n"
             "try:\n    runpy.run_module('tvm_ncnn.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('tvm', 'tvm_ffi', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, str(exported["host"])], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
