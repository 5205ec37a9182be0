#!/usr/bin/env bash
# The Conan package of the C++ runtime, and the plain-CMake install, consumed like a real C++ app would.
#
#   bash tests/conan/run.sh        (tests/run.sh calls it; after cmake/bootstrap.sh, which makes .venv and
#                                   build/host)
#
# 1. `conan create . -nr` with cmake/conan/host: builds the package when its sources changed (ccache makes
#    that about a minute), then the test package (tests/conan/test_package) exports a tiny model.so with
#    the SDK, runs it with the package and checks the output against numpy. Then the same with the
#    static runtime (-o tvm_ncnn/*:shared=False).
# 2. The same for cmake/conan/armv8 (Raspberry Pi, aarch64-linux-gnu-g++), the app running under
#    qemu-aarch64, when the cross compiler and qemu are installed. TVM_NCNN_CONAN_ARMV8=0 skips it.
# 3. Plain CMake: `cmake --install build/host` (and build/aarch64 when cmake/build_aarch64.sh made it),
#    then the test package's CMakeLists.txt + main.cpp built against that prefix with
#    find_package(tvm_ncnn) and run the same way.
# Then old package revisions and build folders are dropped from the Conan cache (ccache keeps rebuilds
# cheap). Logs: build/conan/*.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=build/conan
mkdir -p "$OUT"

say() { printf 'conan: %s\n' "$*"; }
die() { printf 'conan: error: %s\n' "$*" >&2; exit 1; }

PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || die "no .venv: run cmake/bootstrap.sh first"
if [ -x .venv/bin/conan ]; then
  CONAN=$ROOT/.venv/bin/conan
elif command -v conan >/dev/null 2>&1; then
  CONAN=$(command -v conan)
else
  die "conan is not installed: .venv/bin/pip install conan==2.34.0 (sdk_python/requirements-dev.txt pins it)"
fi
# Conan's helpers run with the Python that runs Conan; make sure it is the venv's (its pip configuration and
# pip: cmake/pip_file_urls.py, cmake/tvm_wheels.py).
export PATH="$ROOT/.venv/bin:$PATH"

"$CONAN" profile path default >/dev/null 2>&1 || "$CONAN" profile detect >/dev/null 2>&1 \
  || die "conan profile detect failed"

passed=0
failed=0
# run NAME LOG CMD...: one check; on failure the log's tail is shown.
run() {
  local name=$1 log=$2
  shift 2
  local start=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    say "ok   $name ($((SECONDS - start)) s)$(grep -h '^tiny_model: max abs error' "$log" | sed 's/^tiny_model:/,/' | tail -n 1)"
  else
    failed=$((failed + 1))
    tail -n 40 "$log" >&2
    say "FAIL $name ($((SECONDS - start)) s, log: $log)"
  fi
}

create() {  # create PROFILE [ARGS]: the package for it (built only when missing) and its test package
  local profile=$1
  shift
  "$CONAN" create . -nr -pr:h "cmake/conan/$profile" -pr:b cmake/conan/host --build="missing:tvm_ncnn/*" "$@"
}
# The README's "Ship the app to a Pi" flow, then the folder checked and run as a bare Pi would
# (tests/conan/check_deploy.py): the test package's app built from its own folder by `conan install` (armv8
# profile, runtime_deploy) + CMake, `cmake --install` beside the deployed libraries, on a model exported
# --target rpi4. Reuses the armv8 package `conan create` made above; costs one small app build.
pi_deploy() {
  local dir=$ROOT/$OUT/pi-app version
  version=$(sed -n 's/^version *= *"\([0-9.]*\)"/\1/p' sdk_python/pyproject.toml)
  rm -rf "$dir"
  mkdir -p "$dir"
  cp tests/conan/test_package/CMakeLists.txt tests/conan/test_package/main.cpp "$dir/"
  # (run's `if` turns off set -e in here: each step stops the check itself.)
  (
    cd "$dir" &&
    "$CONAN" install --requires="tvm_ncnn/$version" -nr -pr:h "$ROOT/cmake/conan/armv8" -pr:b "$ROOT/cmake/conan/host" \
        -g CMakeDeps -g CMakeToolchain -of build --deployer=runtime_deploy --deployer-folder=deploy &&
    cmake -S . -B build -G Ninja -DCMAKE_TOOLCHAIN_FILE=build/conan_toolchain.cmake -DCMAKE_BUILD_TYPE=Release &&
    cmake --build build &&
    cmake --install build --prefix deploy
  ) || return 1
  "$PY" tests/conan/test_package/tiny_model.py make "$dir/model" --target rpi4 || return 1
  "$PY" tests/conan/check_deploy.py "$dir/deploy" --app hello_tvm_ncnn --model "$dir/model" \
      --sysroot /usr/aarch64-linux-gnu --emulator "qemu-aarch64 -cpu cortex-a72"
}

run "conan create (host)" "$OUT/create-host.log" create host
run "conan create (host, static: shared=False)" "$OUT/create-host-static.log" \
    create host -o "tvm_ncnn/*:shared=False"

if [ "${TVM_NCNN_CONAN_ARMV8:-1}" != 0 ]; then
  if command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    run "conan create (armv8, run under qemu-aarch64)" "$OUT/create-armv8.log" create armv8
    run "Pi deploy folder (runtime_deploy + cmake --install), run moved, bare sysroot, qemu" \
        "$OUT/pi-deploy.log" pi_deploy
  else
    say "skip armv8: needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)"
  fi
fi

plain_cmake() {  # plain_cmake BUILD_DIR TARGET [cmake args]: the README example against `cmake --install`
  local from=$1 target=$2 name
  shift 2
  name=$(basename "$from")
  local prefix=$ROOT/$OUT/install-$name build=$OUT/plain-$name model=$OUT/plain-$name/model
  rm -rf "$prefix"
  cmake --install "$from" --prefix "$prefix"
  local find=(-DCMAKE_PREFIX_PATH="$prefix")
  [ "$target" = host ] || find=(-Dtvm_ncnn_DIR="$prefix/lib/cmake/tvm_ncnn")
  cmake -S tests/conan/test_package -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" "${find[@]}"
  cmake --build "$build"
  local export_args=()
  [ "$target" = host ] && export_args=(--runtime-lib "$prefix/lib/libtvm_ncnn_runtime.so")
  "$PY" tests/conan/test_package/tiny_model.py make "$model" --target "$target" "${export_args[@]}"
  local app=("$build/hello_tvm_ncnn")
  [ "$target" = host ] || app=(qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 "${app[@]}")  # a Pi 4: fp32, as the host
  "${app[@]}" "$model/model.so" "$model/input.npy" "$model/output.npy"
  "$PY" tests/conan/test_package/tiny_model.py check "$model/output.npy" "$model/expected.npy"
}
if [ -f build/host/cmake_install.cmake ]; then
  run "plain CMake: find_package(tvm_ncnn) on cmake --install build/host" "$OUT/plain-host.log" \
      plain_cmake build/host host
else
  say "skip the plain CMake check: no build/host (cmake/bootstrap.sh makes it)"
fi
# build/aarch64 (cmake/build_aarch64.sh). With its toolchain file CMake looks for packages only under the
# aarch64 sysroot, so the install is named with tvm_ncnn_DIR (CMAKE_PREFIX_PATH would not be searched).
if [ "${TVM_NCNN_CONAN_ARMV8:-1}" != 0 ] && [ -f build/aarch64/cmake_install.cmake ] \
   && command -v qemu-aarch64 >/dev/null 2>&1; then
  run "plain CMake: find_package(tvm_ncnn) on cmake --install build/aarch64 (qemu)" "$OUT/plain-aarch64.log" \
      plain_cmake build/aarch64 aarch64 -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.toolchain.cmake"
fi

# Keep the cache small: only the newest recipe revision, no build folders.
"$CONAN" remove "tvm_ncnn/*#!latest" -c >/dev/null 2>&1 || true
"$CONAN" cache clean "tvm_ncnn/*" --build --temp >/dev/null 2>&1 || true

say "$passed passed, $failed failed"
[ "$failed" = 0 ]
