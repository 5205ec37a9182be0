#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine: system packages, the Python SDK in .venv/, the host
# build (runtime library + deploy_app) in build/host/. With --demo, then export the pretrained
# EfficientNet-Lite0 and classify a photo with deploy_app.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=0
for arg in "$@"; do
  case "$arg" in
    --demo) demo=1 ;;
    *) echo "usage: cmake/bootstrap.sh [--demo]" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------------------
# g++-aarch64-linux-gnu, qemu-user: the aarch64 (Raspberry Pi) cross build and its tests (cmake/build_aarch64.sh)
APT_PACKAGES=(cmake ninja-build ccache g++ python3-venv time g++-aarch64-linux-gnu qemu-user)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python SDK -----------------------------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
step "installing the SDK and its pinned dependencies into .venv"
.venv/bin/pip install -q --upgrade pip
# torch first and exactly pinned: the local CPU build; a looser spec pulls a multi-GB CUDA build
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -r sdk_python/requirements-dev.txt
.venv/bin/pip install -q --no-deps -r sdk_python/requirements-nodeps.txt
.venv/bin/pip install -q --no-deps -e sdk_python
# tvm-ncnn tune: MetaSchedule crashes serializing IR with the pinned apache-tvm-ffi; tuning runs with this one
# first on its path (sdk_python/tvm_ncnn/cli/tune.py)
[ -d .venv/tvm-ncnn-tune-ffi/tvm_ffi ] || \
  .venv/bin/pip install -q --no-deps --target .venv/tvm-ncnn-tune-ffi apache-tvm-ffi==0.1.14.post1

# --- host build -----------------------------------------------------------------------------------------
step "building the runtime and deploy_app (build/host)"
cmake -S . -B build/host -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$PWD/.venv/bin/python" >/dev/null
cmake --build build/host

if [ "$demo" = 1 ]; then
  step "demo: export the pretrained EfficientNet-Lite0 and classify a photo on this machine"
  out=build/demo
  .venv/bin/tvm-ncnn zoo efficientnet-lite0 -o "$out" >/dev/null
  .venv/bin/tvm-ncnn export "$out/efficientnet-lite0.onnx" -o "$out/model.so" --labels "$out/labels.txt" \
    --mean 127,127,127 --std 128,128,128
  build/host/deploy_app "$out/model.so" "$out/grace_hopper.jpg"
fi
