#!/usr/bin/env bash
# Install StemDesk with its test tools (first run only), check the layer contracts, run the tests.
# Arguments go to pytest, e.g. ./run-tests.sh -k chunker
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --test
export QT_QPA_PLATFORM=offscreen
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q --durations=20 "$@"
