"""The lab's tests run with the product tests' isolation: tests/conftest.py, loaded here under a name of its own, gives
each test its own home, XDG folders and temporary folder (and the private PulseAudio server, the memory report and
the shared fixtures), exactly as it does for tests/; tests/helpers.py is importable as ``helpers``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
for folder in (REPO_ROOT, REPO_ROOT / "tests"):  # the lab package, then helpers.py beside the product conftest
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

_spec = importlib.util.spec_from_file_location("stemdesk_tests_conftest", REPO_ROOT / "tests" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_product = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _product
_spec.loader.exec_module(_product)

# Every fixture and hook of the product conftest, and its constants (REPO, DATA, needs_data …), as this conftest's own.
globals().update({name: value for name, value in vars(_product).items() if not name.startswith("__")})
