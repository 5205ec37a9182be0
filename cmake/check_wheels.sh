#!/usr/bin/env bash
# Install the wheels cmake/build_wheels.sh wrote into dist/ where no checkout can help them, and run a model:
#
#   bash cmake/check_wheels.sh [sdk] [runtime]      # both when neither is named
#
# sdk:     a fresh venv (python3 -m venv) gets dist/tvm_ncnn-*.whl and only the pins it names; from a folder
#          outside the checkout, `tvm-ncnn export / inspect / run` and `tvm_ncnn.load` on an ONNX model, and no
#          torch comes along. (`tvm-ncnn zoo` needs the [zoo] extra; without it, it says so in one line.)
# runtime: an aarch64 CPython 3.11 under qemu-aarch64 -cpu cortex-a72 (Debian's arm64 packages unpacked into a
#          sysroot; DESIGN.md, "Facts for ... wheels"), dist/tvm_ncnn_runtime-*.whl with the aarch64 wheels of
#          numpy and apache-tvm-ffi installed beside it by pip (--platform, --target); runs a model exported for
#          rpi4: load, load_image, profile, output equal to the host's on the same ONNX; imports no TVM
#          compiler, torch or onnx.
# Needs the SDK (.venv) to make the models, network access to PyPI and Debian. Work in build/wheel-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/build/wheel-check
DIST=${TVM_NCNN_DIST:-$ROOT/dist}
SDK_PY=${TVM_NCNN_PYTHON:-$ROOT/.venv/bin/python}
sdk() { PYTHONPATH=$ROOT/sdk_python "$SDK_PY" "$@"; }  # this checkout's SDK
unset PYTHONPATH PYTHONHOME  # the installed wheels must work alone (a test runner sets PYTHONPATH to the checkout)
say() { printf 'check_wheels: %s\n' "$*"; }
die() { printf 'check_wheels: error: %s\n' "$*" >&2; exit 1; }

kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(sdk runtime)
mkdir -p "$WORK"

# A small model and an input, made by the checkout's SDK: an ONNX file (torch is not in the wheel's venv).
MODEL=$WORK/model
if [ ! -f "$MODEL/squeezenet.onnx" ]; then
  sdk -m tvm_ncnn.cli zoo squeezenet -o "$MODEL" >/dev/null
  sdk -c "import numpy as np; np.save('$MODEL/x.npy', np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype('float32'))"
fi

check_sdk() {
  local whl; whl=$(ls "$DIST"/tvm_ncnn-*x86_64.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "no SDK wheel in $DIST: bash cmake/build_wheels.sh sdk"
  local venv=$WORK/venv out=$WORK/sdk-out
  rm -rf "$venv" "$out" && mkdir -p "$out"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$whl" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/python" -c "import tvm_ncnn" || die "the wheel did not install"
  if "$venv/bin/pip" show -q torch 2>/dev/null; then die "torch was installed: it must stay optional"; fi
  cd "$out"  # nothing of the checkout on the path
  "$venv/bin/tvm-ncnn" export "$MODEL/squeezenet.onnx" -o model.so --labels "$MODEL/labels.txt"
  "$venv/bin/tvm-ncnn" inspect model.so | head -n 3
  "$venv/bin/tvm-ncnn" run model.so "$MODEL/x.npy" --output cli.npy | tail -n 1
  local zoo; zoo=$("$venv/bin/tvm-ncnn" zoo mobilenetv2 -o zoo 2>&1 || true)
  grep -qF "pip install 'tvm-ncnn[zoo]'" <<<"$zoo" || die "tvm-ncnn zoo without torch does not name the [zoo] extra: $zoo"
  "$venv/bin/python" - "$MODEL/x.npy" <<'EOF'
import sys, numpy as np, tvm_ncnn
model = tvm_ncnn.load("model.so", threads=2)
got, cli = model.single(np.load(sys.argv[1])), np.load("cli.npy")
assert np.array_equal(got, cli), "load() and tvm-ncnn run disagree"
assert tvm_ncnn.__file__.startswith(sys.prefix), tvm_ncnn.__file__  # the installed package, not a checkout
print(f"sdk wheel: load() == tvm-ncnn run, threads {model.threads} ({model.thread_policy})")
EOF
  cd "$ROOT"
  say "sdk wheel OK: $(basename "$whl") ($(du -k "$whl" | cut -f1) KB; venv $(du -sm "$venv" | cut -f1) MB)"
}

check_runtime() {
  local whl; whl=$(ls "$DIST"/tvm_ncnn_runtime-*aarch64.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "no runtime wheel in $DIST: bash cmake/build_wheels.sh runtime"
  command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 missing: apt-get install qemu-user"
  local sysroot=$WORK/arm64-sysroot site=$WORK/arm64-site out=$WORK/runtime-out
  if [ ! -x "$sysroot/usr/bin/python3.11" ]; then
    say "unpacking Debian's arm64 CPython 3.11 into $sysroot"
    local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    dpkg --print-foreign-architectures | grep -qx arm64 || { $sudo dpkg --add-architecture arm64 && $sudo apt-get update -qq; }
    local debs=$WORK/arm64-debs; mkdir -p "$debs"
    (cd "$debs" && apt-get download -q python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
       libpython3.11-stdlib:arm64 zlib1g:arm64 libffi8:arm64 libexpat1:arm64 >/dev/null 2>&1)
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done
  fi
  rm -rf "$site" "$out" && mkdir -p "$out"
  # pip resolves the wheel's dependencies for the Pi: CPython 3.11, aarch64 manylinux wheels only
  python3 -m pip install -q --target "$site" --python-version 3.11 --only-binary :all: \
    --platform manylinux_2_34_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    "$whl" 2>&1 | grep -v -e "is ignored" -e "as the 'root' user" || true
  [ -d "$site/tvm_ffi" ] && [ -d "$site/numpy" ] || die "the aarch64 dependencies did not install into $site"
  # the same ONNX exported for the Pi 4 and for this machine (the reference output)
  sdk -m tvm_ncnn.cli export "$MODEL/squeezenet.onnx" -o "$out/rpi4.so" \
    --target rpi4 --labels "$MODEL/labels.txt" >/dev/null
  sdk -m tvm_ncnn.cli export "$MODEL/squeezenet.onnx" -o "$out/host.so" >/dev/null
  sdk -c "import numpy as np, tvm_ncnn; np.save('$out/host.npy', tvm_ncnn.load('$out/host.so').single(np.load('$MODEL/x.npy')))"
  cat >"$out/run.py" <<'EOF'
import sys, numpy as np, tvm_ncnn
model = tvm_ncnn.load(sys.argv[1], threads=2)
x = np.load(sys.argv[2])
y = model.single(x)
err = float(np.abs(y - np.load(sys.argv[3])).max() / np.abs(np.load(sys.argv[3])).max())
assert err <= 1e-4, f"aarch64 output differs from the host's: {err:.2e}"
assert model.load_image(sys.argv[4]).shape == (1, 3, 224, 224)
profile = model.profile(x, repeat=1)
assert profile.share("ncnn region") > 0.5, str(profile)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tvm", "torch", "onnx"))
assert not heavy, f"the runtime wheel imported {heavy}"
print(f"runtime wheel under qemu: max error {err:.1e} x max|host|, threads {model.threads}, "
      f"{model.precision}, {model.thread_policy}, sdk {tvm_ncnn.__version__}")
EOF
  local libs=$sysroot/lib/aarch64-linux-gnu:$sysroot/usr/lib/aarch64-linux-gnu
  (cd "$out" && qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 -E LD_LIBRARY_PATH="$libs" \
     -E PYTHONHOME="$sysroot/usr" -E PYTHONPATH="$site" "$sysroot/usr/bin/python3.11" run.py rpi4.so \
     "$MODEL/x.npy" host.npy "$MODEL/grace_hopper.jpg") || die "the runtime wheel failed under qemu"
  say "runtime wheel OK: $(basename "$whl") ($(du -k "$whl" | cut -f1) KB)"
}

for kind in "${kinds[@]}"; do
  case "$kind" in
    sdk) check_sdk ;;
    runtime) check_runtime ;;
    *) die "unknown wheel '$kind' (sdk, runtime)" ;;
  esac
done
