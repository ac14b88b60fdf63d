#!/usr/bin/env bash
# The lab's tests (lab/tests), with the same private home, XDG folders and temporary folder as ./run-tests.sh gives
# the product's tests (removed afterwards; tests/conftest.py, which lab/tests/conftest.py reuses, gives each test its
# own inside it). Arguments go to pytest, e.g. lab/run-tests.sh -m "not slow". Run ./run-tests.sh first: it installs
# the test tools and lints the whole repository, the lab included.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen

source scripts/private-home.sh

.venv/bin/python -m pytest -q --durations=10 lab/tests "$@"
