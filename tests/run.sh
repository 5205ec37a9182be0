#!/usr/bin/env bash
# Run every test: set-up if needed (cmake/bootstrap.sh is idempotent), the C++ tests (ctest), the
# aarch64 build and the Conan package when their scripts exist, then the Python suite and the reliability
# suite (pytest; tests/reliability/sanitize.sh, the sanitizer build, is run separately).
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/bootstrap.sh
ctest --test-dir build/host --output-on-failure
if [ -f cmake/build_aarch64.sh ]; then bash cmake/build_aarch64.sh; fi
if [ -f tests/conan/run.sh ]; then bash tests/conan/run.sh; fi
.venv/bin/python -m pytest tests/python tests/reliability -q "$@"
