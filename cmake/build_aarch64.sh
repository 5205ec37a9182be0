#!/usr/bin/env bash
# Cross-build the runtime and deploy_app for 64-bit ARM (Raspberry Pi 4 / 5) and make the deploy bundle.
#
#   bash cmake/build_aarch64.sh            # -> build/aarch64/tvm-ncnn-aarch64/ and tvm-ncnn-aarch64.tar.gz
#
# 1. The aarch64 apache-tvm / apache-tvm-ffi wheels of exactly the versions the SDK exports with (the ones
#    installed in .venv, else the pins in sdk_python/requirements-dev.txt): cmake/tvm_wheels.py downloads them
#    once with pip into build/_downloads/ and unpacks the few files the device needs there (libtvm_runtime.so,
#    libtvm_ffi.so, the tvm-ffi headers, versions and licenses).
# 2. build/aarch64 is configured with cmake/aarch64-linux-gnu.toolchain.cmake and built (ncnn, the runtime,
#    deploy_app; ccache is used as in the host build). Binaries carry their install RPATH ($ORIGIN).
# 3. The bundle: deploy_app and every library it needs beyond the base system, stripped, in one folder with
#    README.txt and licenses; its dependencies and glibc floor are checked with objdump.
# Idempotent: when nothing changed it only asks ninja and returns in about a second.
#
# Environment: JOBS=<n> parallel compile jobs (default: ninja's), TVM_NCNN_AARCH64_BUILD_DIR (build/aarch64),
# TVM_NCNN_PYTHON (the Python whose pip downloads the wheels; default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD=${TVM_NCNN_AARCH64_BUILD_DIR:-build/aarch64}
DOWNLOADS=build/_downloads
TOOLCHAIN=$ROOT/cmake/aarch64-linux-gnu.toolchain.cmake
PREFIX=aarch64-linux-gnu-
SYSROOT=/usr/aarch64-linux-gnu
BUNDLE_NAME=tvm-ncnn-aarch64
# The newest glibc the bundle may need: Raspberry Pi OS 12 "Bookworm" (the first release for the Pi 5) has
# 2.36. A dependency above this fails the build instead of failing on the device.
GLIBC_MAX=2.36
# What any aarch64 glibc system has; every other library the bundle needs must be in the bundle.
BASE_LIBS="libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-aarch64.so.1 libgcc_s.so.1 libstdc++.so.6"

say() { printf 'build_aarch64: %s\n' "$*"; }
die() { printf 'build_aarch64: error: %s\n' "$*" >&2; exit 1; }

# --- 0. tools --------------------------------------------------------------------------------------------
missing=()
command -v ${PREFIX}g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
command -v ${PREFIX}objdump >/dev/null 2>&1 || missing+=(binutils-aarch64-linux-gnu)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
if [ ${#missing[@]} -gt 0 ]; then
  die "missing ${missing[*]}: install with 'apt-get install ${missing[*]}' (cmake/bootstrap.sh does)"
fi
PY=${TVM_NCNN_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

# --- 1. the aarch64 TVM runtime libraries, same versions as the SDK ---------------------------------------
# cmake/tvm_wheels.py fetches them once into build/_downloads/ (the versions installed in .venv, else the pins)
# and checks them; it prints TVM_ROOT, TVM_VERSION and FFI_VERSION.
wheels=$("$PY" cmake/tvm_wheels.py fetch --arch aarch64 --dest "$DOWNLOADS" --shell) \
  || die "cannot get the aarch64 apache-tvm / apache-tvm-ffi wheels (see above)"
eval "$wheels"

# --- 2. configure and build -------------------------------------------------------------------------------
cache_has() { grep -qxF "$1" "$BUILD/CMakeCache.txt" 2>/dev/null; }
if [ ! -f "$BUILD/build.ninja" ] || ! cache_has "TVM_NCNN_TVM_ROOT:PATH=$TVM_ROOT" \
   || ! cache_has "CMAKE_TOOLCHAIN_FILE:FILEPATH=$TOOLCHAIN"; then
  if [ -f "$BUILD/CMakeCache.txt" ] && ! cache_has "CMAKE_TOOLCHAIN_FILE:FILEPATH=$TOOLCHAIN"; then
    rm -f "$BUILD/CMakeCache.txt"   # a toolchain cannot change in an existing build directory
  fi
  say "configuring $BUILD"
  cmake -S . -B "$BUILD" -G Ninja -Wno-dev \
    -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
    -DTVM_NCNN_TVM_ROOT="$TVM_ROOT" \
    -DTVM_NCNN_BUILD_TESTS=OFF -DTVM_NCNN_BUILD_BENCHMARKS=OFF \
    -DPython3_EXECUTABLE="$(command -v "$PY" || echo "$PY")" >"$BUILD.configure.log" 2>&1 \
    || { tail -n 30 "$BUILD.configure.log" >&2; die "configure failed (log: $BUILD.configure.log)"; }
fi
start=$(date +%s)
# Every target, not only deploy_app: `cmake --install` of this tree (tests/conan/run.sh does it) installs every
# library the runtime defines.
cmake --build "$BUILD" ${JOBS:+-j "$JOBS"} || die "build failed ($BUILD)"
built_in=$(( $(date +%s) - start ))

# --- 3. the deploy bundle ---------------------------------------------------------------------------------
OUT=$BUILD/$BUNDLE_NAME
TARBALL=$BUILD/$BUNDLE_NAME.tar.gz
GOMP=$(${PREFIX}g++ -print-file-name=libgomp.so.1)
[ -f "$GOMP" ] || die "libgomp.so.1 of the cross toolchain not found"
NCNN_LICENSE=$BUILD/_deps/ncnn-src/LICENSE.txt
MONOCYPHER_LICENSE=$BUILD/_deps/monocypher-src/LICENSE.txt  # cmake/monocypher.cmake: compiled into the runtime
INPUTS=("$BUILD/deploy_app" "$BUILD/tvm_ncnn_rpc_server" "$BUILD/lib/libtvm_ncnn_runtime.so" "$TVM_ROOT/tvm/lib/libtvm_runtime.so"
        "$TVM_ROOT/tvm_ffi/lib/libtvm_ffi.so" "$GOMP" "$NCNN_LICENSE" "$MONOCYPHER_LICENSE" "$ROOT/cmake/build_aarch64.sh"
        "$ROOT/sdk_python/pyproject.toml")

up_to_date=1
[ -f "$TARBALL" ] && [ -d "$OUT" ] || up_to_date=0
if [ "$up_to_date" = 1 ]; then
  for f in "${INPUTS[@]}"; do [ "$f" -nt "$TARBALL" ] && up_to_date=0; done
fi
if [ "$up_to_date" = 1 ]; then
  say "up to date: $OUT ($(du -sh "$OUT" | cut -f1)), $TARBALL (compile step ${built_in}s)"
  exit 0
fi

say "making the bundle $OUT"
stage=$BUILD/.bundle-stage
rm -rf "$stage"
mkdir -p "$stage/licenses"
${PREFIX}strip --strip-all -o "$stage/deploy_app" "$BUILD/deploy_app"
${PREFIX}strip --strip-all -o "$stage/tvm_ncnn_rpc_server" "$BUILD/tvm_ncnn_rpc_server"  # joins an RPC tracker
for lib in "$BUILD/lib/libtvm_ncnn_runtime.so" "$TVM_ROOT/tvm/lib/libtvm_runtime.so" \
           "$TVM_ROOT/tvm_ffi/lib/libtvm_ffi.so"; do
  ${PREFIX}strip --strip-unneeded -o "$stage/$(basename "$lib")" "$lib"
done
${PREFIX}strip --strip-unneeded -o "$stage/libgomp.so.1" "$(readlink -f "$GOMP")"
chmod 755 "$stage"/deploy_app "$stage"/tvm_ncnn_rpc_server "$stage"/*.so*

# Licenses of what is in the bundle.
cp "$NCNN_LICENSE" "$stage/licenses/ncnn-LICENSE.txt"
cp "$MONOCYPHER_LICENSE" "$stage/licenses/monocypher-LICENSE.txt"
for dist in apache_tvm apache_tvm_ffi; do
  for f in "$TVM_ROOT/$dist"-*.dist-info/licenses/*; do
    [ -f "$f" ] && cp "$f" "$stage/licenses/${dist//_/-}-$(basename "$f")"
  done
done
for f in /usr/share/doc/libgomp1-arm64-cross/copyright /usr/share/doc/gcc-12-aarch64-linux-gnu-base/copyright; do
  if [ -f "$f" ]; then cp "$f" "$stage/licenses/libgomp-copyright.txt"; break; fi
done

# Every NEEDED library is in the bundle or in the base system; every RUNPATH is $ORIGIN-relative.
for f in "$stage"/deploy_app "$stage"/tvm_ncnn_rpc_server "$stage"/*.so*; do
  dyn=$(${PREFIX}objdump -p "$f")
  for need in $(awk '$1 == "NEEDED" {print $2}' <<<"$dyn"); do
    if [ ! -e "$stage/$need" ] && [[ " $BASE_LIBS " != *" $need "* ]]; then
      die "$(basename "$f") needs $need, which is neither in the bundle nor in the base system"
    fi
  done
  while read -r _ path; do
    for p in ${path//:/ }; do
      [[ "$p" == '$ORIGIN'* ]] || die "$(basename "$f") has RUNPATH $path (not relative to \$ORIGIN)"
    done
  done < <(awk '$1 == "RUNPATH" || $1 == "RPATH"' <<<"$dyn")
done

# The glibc / libstdc++ floor: the newest symbol version anything in the bundle asks for.
floor() {  # floor PREFIX -> newest version of PREFIX_x.y.z needed by the bundle
  for f in "$stage"/deploy_app "$stage"/*.so*; do ${PREFIX}objdump -T "$f"; done \
    | grep -oE "\\b$1_[0-9]+(\\.[0-9]+)*\\b" | sed "s/^$1_//" | sort -uV | tail -n 1
}
GLIBC_FLOOR=$(floor GLIBC)
GLIBCXX_FLOOR=$(floor GLIBCXX)
CXXABI_FLOOR=$(floor CXXABI)
if [ "$(printf '%s\n%s\n' "$GLIBC_FLOOR" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
  die "the bundle needs glibc $GLIBC_FLOOR, newer than $GLIBC_MAX (Raspberry Pi OS Bookworm)"
fi
per_file=$(for f in "$stage"/deploy_app "$stage"/*.so*; do
  v=$(${PREFIX}objdump -T "$f" | grep -oE '\bGLIBC_[0-9.]+\b' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  printf '    %-24s glibc %s\n' "$(basename "$f")" "${v:-(none)}"
done)

# Which common systems meet the floor: per family, the oldest release whose glibc is new enough.
SYSTEMS='pios|Raspberry Pi OS 11 "Bullseye" (64-bit)|2.31
pios|Raspberry Pi OS 12 "Bookworm" (64-bit)|2.36
debian|Debian 11|2.31
debian|Debian 12|2.36
ubuntu|Ubuntu 20.04|2.31
ubuntu|Ubuntu 22.04|2.35
ubuntu|Ubuntu 24.04|2.39'
systems=$(awk -F'|' -v floor="$GLIBC_FLOOR" '
  function ge(a, b,   x, y) { split(a, x, "."); split(b, y, ".");
    return x[1] + 0 != y[1] + 0 ? x[1] + 0 > y[1] + 0 : x[2] + 0 >= y[2] + 0 }
  !($1 in done) && ge($3, floor) { done[$1] = 1; out = out (out ? ", " : "") $2 }
  END { print out }' <<<"$SYSTEMS")

# The versions from where they are written: the SDK's in pyproject.toml, ncnn's pin in cmake/ncnn_sdist.cmake.
SDK_VERSION=$(sed -n 's/^version *= *"\([0-9.]*\)".*/\1/p' sdk_python/pyproject.toml)
NCNN_VERSION=$(sed -n 's/^set(TVM_NCNN_NCNN_VERSION "\(.*\)")/\1/p' cmake/ncnn_sdist.cmake)
cat >"$stage/README.txt" <<EOF
tvm-ncnn $SDK_VERSION deploy bundle for 64-bit ARM Linux (Raspberry Pi 4 / 5 with a 64-bit OS, other aarch64 boards)

Run:  ./deploy_app model.so photo.jpg      (model.so exported with: tvm-ncnn export MODEL -o model.so --target rpi4|rpi5|aarch64)
      ./deploy_app --help                  (--threads N, --repeat N, --output out.npy, --json, --fp16)
      ./tvm_ncnn_rpc_server --tracker HOST:PORT --key rpi4   (tvm-ncnn tune / bench then measure on this board)
Copy this folder anywhere and run deploy_app from it: the libraries are found next to it (RUNPATH \$ORIGIN);
nothing needs installing. Threads default to the big cores of the board; fp16 is off unless --fp16.

Needs: aarch64 Linux with glibc >= $GLIBC_FLOOR and libstdc++ >= GLIBCXX_$GLIBCXX_FLOOR (CXXABI_$CXXABI_FLOOR), e.g.
$systems or newer.
Checked with objdump -T; per file, the newest glibc symbol version it uses:
$per_file

Contents: deploy_app; libtvm_ncnn_runtime.so (tvm-ncnn runtime with ncnn $NCNN_VERSION built in);
libtvm_runtime.so and libtvm_ffi.so (apache-tvm $TVM_VERSION, apache-tvm-ffi $FFI_VERSION, from the aarch64
wheels); libgomp.so.1 (GCC's OpenMP runtime, used by ncnn; minimal images do not always have libgomp1).
A model.so runs only with the TVM version that exported it (apache-tvm $TVM_VERSION); deploy_app says so
otherwise. Licenses: licenses/.
EOF

rm -rf "$OUT"
mv "$stage" "$OUT"
# Reproducible tarball: sorted names, fixed owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@0" \
    -C "$BUILD" -czf "$TARBALL.tmp" "$BUNDLE_NAME"
mv "$TARBALL.tmp" "$TARBALL"

size_kb() { du -sk --apparent-size "$1" | cut -f1; }
say "bundle $OUT: $(size_kb "$OUT") KB ($(ls "$OUT" | tr '\n' ' ')), tarball $(size_kb "$TARBALL") KB"
say "floor: glibc $GLIBC_FLOOR, GLIBCXX $GLIBCXX_FLOOR (compile step ${built_in}s)"
