"""The wheels (README "Install from wheels"): cmake/build_wheels.sh builds the workstation's SDK wheel (x86_64) and
the Pi's runtime-only wheel (aarch64); this file checks what is inside them -- the runtime library finds TVM's
libraries relative to itself, never at a path of the build machine; the runtime wheel carries only the
subpackages load() needs -- and then installs and runs both with cmake/check_wheels.sh: a fresh venv that exports
and runs a model, and an aarch64 CPython under qemu that runs a model exported for rpi4 (about 2 minutes).

Needs build/host, and build/aarch64 for the runtime wheel (tests/run.sh builds both); TVM_NCNN_SKIP_AARCH64=1
skips the runtime wheel as it skips test_aarch64.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

ARM_BUILT = (ROOT / "build" / "aarch64" / "lib" / "libtvm_ncnn_runtime.so").is_file()
SKIP_ARM = os.environ.get("TVM_NCNN_SKIP_AARCH64") == "1" or not ARM_BUILT or not shutil.which("qemu-aarch64")
# What load() needs (tests/python/test_layout.py: these import no TVM compiler); nothing else may come along.
RUNTIME_PACKAGES = {"tvm_ncnn", "tvm_ncnn.runtime", "tvm_ncnn.meta", "tvm_ncnn.format", "tvm_ncnn.partition"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    kinds = ["sdk"] + ([] if SKIP_ARM else ["runtime"])
    proc = subprocess.run(["bash", str(ROOT / "cmake" / "build_wheels.sh"), *kinds], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "TVM_NCNN_DIST": str(out)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def wheel(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def elf_paths(whl: Path, tmp: Path, name: str) -> str:
    """The RPATH/RUNPATH of a library in the wheel, as readelf prints it."""
    with zipfile.ZipFile(whl) as z:
        z.extract(name, tmp)
    text = subprocess.run(["readelf", "-d", str(tmp / name)], capture_output=True, text=True, check=True).stdout
    return " ".join(re.findall(r"R(?:UN)?PATH\)\s+Library r(?:un)?path: \[(.*)\]", text))


def metadata(whl: Path) -> str:
    with zipfile.ZipFile(whl) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()


def test_sdk_wheel_is_tagged_and_finds_tvm_relative_to_itself(dist, tmp_path):
    whl = wheel(dist, "tvm_ncnn-*.whl")
    assert re.search(r"-py3-none-manylinux_2_\d+_x86_64\.whl$", whl.name), whl.name
    names = zipfile.ZipFile(whl).namelist()
    for lib in ("tvm_ncnn/lib/libtvm_ncnn_runtime.so", "tvm_ncnn/lib/libtvm_ncnn_threads.so",
                "tvm_ncnn/cli/main.py", "tvm_ncnn/exporter/api.py", "tvm_ncnn/ncnn/ops/__init__.py"):
        assert lib in names, lib
    paths = elf_paths(whl, tmp_path, "tvm_ncnn/lib/libtvm_ncnn_runtime.so")
    assert all(p.startswith("$ORIGIN") for p in paths.split(":") if p), paths  # no path of this machine
    assert "$ORIGIN/../../tvm/lib" in paths and "$ORIGIN/../../tvm_ffi/lib" in paths, paths
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata(whl), re.M)
    assert "apache-tvm==0.27.0.post1" in requires and "apache-tvm-ffi==0.1.15.post2" in requires, requires
    assert all("torch" not in r or "extra ==" in r for r in requires), requires  # torch stays optional


@pytest.mark.skipif(SKIP_ARM, reason="needs build/aarch64 (cmake/build_aarch64.sh) and qemu-aarch64")
def test_runtime_wheel_carries_only_what_load_needs(dist, tmp_path):
    whl = wheel(dist, "tvm_ncnn_runtime-*.whl")
    assert re.search(r"-py3-none-manylinux_2_\d+_aarch64\.whl$", whl.name), whl.name
    names = zipfile.ZipFile(whl).namelist()
    packages = {n.rpartition("/")[0].replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert packages == RUNTIME_PACKAGES, packages
    assert "tvm_ncnn/lib/libtvm_runtime.so" in names  # TVM's runtime, without its compiler
    paths = elf_paths(whl, tmp_path, "tvm_ncnn/lib/libtvm_ncnn_runtime.so")
    assert all(p.startswith("$ORIGIN") for p in paths.split(":") if p), paths
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata(whl), re.M)
    assert sorted(requires) == ["apache-tvm-ffi==0.1.15.post2", "numpy"], requires


def test_wheels_install_and_run_a_model(dist):
    kinds = ["sdk"] + ([] if SKIP_ARM else ["runtime"])
    proc = subprocess.run(["bash", str(ROOT / "cmake" / "check_wheels.sh"), *kinds], capture_output=True,
                          text=True, timeout=1800, env={**os.environ, "TVM_NCNN_DIST": str(dist)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "sdk wheel OK" in proc.stdout
    assert SKIP_ARM or "runtime wheel OK" in proc.stdout
