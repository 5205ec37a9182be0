#!/usr/bin/env bash
# Sanitizer and leak checks of the runtime and deploy_app (issue #7, part 4). Not part of tests/run.sh: a cold
# ASan build compiles ncnn once more (~5 min on 2 cores); run it before a release or after runtime changes.
#
#   bash tests/reliability/sanitize.sh              # ASan+UBSan build, then the checks below, then valgrind
#   bash tests/reliability/sanitize.sh --no-valgrind
#
# 1. build/asan: the runtime, deploy_app and the C++ tests with -fsanitize=address,undefined (TVM_NCNN_SANITIZE;
#    ncnn and the TVM wheel libraries are not instrumented). Every report is fatal (-fno-sanitize-recover, and
#    the exit codes below), leaks included (LeakSanitizer at exit).
# 2. ctest in build/asan (test_concurrency needs models: it runs in step 3).
# 3. The reliability suite with that deploy_app: every model, error case, fuzz case and thread test of
#    tests/reliability runs under the sanitizers; a report makes its process exit 86 (ASan) or 87 (UBSan),
#    which no test accepts.
# 4. valgrind --leak-check=full on `deploy_app --repeat 1000` of a small model (host build): no definite leak,
#    no invalid access.
set -euo pipefail
cd "$(dirname "$0")/../.."

valgrind=1
for arg in "$@"; do
  case "$arg" in
    --no-valgrind) valgrind=0 ;;
    *) echo "usage: tests/reliability/sanitize.sh [--no-valgrind]" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s\n' "$*"; }

step "build/asan: runtime + deploy_app + C++ tests with -fsanitize=address,undefined"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTVM_NCNN_SANITIZE=address,undefined \
  -DTVM_NCNN_INSTALL=OFF -DPython3_EXECUTABLE="$PWD/.venv/bin/python" >/dev/null
cmake --build build/asan -j2

export ASAN_OPTIONS="exitcode=86:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:exitcode=87:print_stacktrace=1"

step "ctest under the sanitizers"
ctest --test-dir build/asan --output-on-failure

step "tests/reliability with the sanitized deploy_app and test_concurrency"
# (Not the RSS-growth test: ASan's quarantine holds freed memory on purpose; LeakSanitizer and valgrind see leaks.)
TVM_NCNN_DEPLOY_APP="$PWD/build/asan/deploy_app" TVM_NCNN_BUILD_DIR="$PWD/build/asan" \
  .venv/bin/python -m pytest tests/reliability -q -p no:cacheprovider \
  -k "not test_deploy_app_memory_is_flat_over_many_runs"

if [ "$valgrind" = 1 ]; then
  step "valgrind: deploy_app --repeat 1000 (host build)"
  if ! command -v valgrind >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  .venv/bin/python tests/reliability/tiny_models.py "$work" >/dev/null
  # "definite" leaks only: TVM's and libgomp's thread pools and registries live until exit by design
  # (still reachable / possibly lost), and would be reported the same for one run or a thousand.
  TVM_NCNN_WAIT_POLICY=inherit valgrind --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=3 --num-callers=30 \
    build/host/deploy_app "$work/two_regions.so" "$work/x.npy" --repeat 1000 --threads 2 \
    >"$work/valgrind.out" 2>&1 || { tail -60 "$work/valgrind.out"; echo "valgrind found errors" >&2; exit 1; }
  grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|timing" "$work/valgrind.out"
fi

step "sanitizers and valgrind: clean"
