#!/usr/bin/env bash
# Install StemDesk with its test tools (first run only), lint, type-check, check the layer contracts, run the tests.
# Arguments go to pytest, e.g. ./run-tests.sh -k chunker   or   ./run-tests.sh -m "not slow"  (the inner loop)
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --test
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q --durations=20 "$@"
