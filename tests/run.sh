#!/usr/bin/env bash
# Run every test: set-up if needed (cmake/bootstrap.sh is idempotent), the C++ tests (ctest) and the
# Python suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/bootstrap.sh
ctest --test-dir build/host --output-on-failure
.venv/bin/python -m pytest tests/python -q "$@"
