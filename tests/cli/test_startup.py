"""What needs no model answers without loading one: `stemdesk --help`, `--version`, `models` and a command's help
import neither torch nor numpy, soundfile or pedalboard (together 1.5 s of a 0.1-s answer: benchmarks/startup.py
times it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "soundfile", "pedalboard", "PySide6")
PROBE = (
    "import sys\nfrom stemdesk.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as done:\n    code = done.code\n"
    f"print('loaded:', *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--help"], "separate songs into stems"),
        (["--version"], "stemdesk 0."),
        (["models"], "stemdesk-4stem (default)"),
        (["separate", "--help"], "--overwrite"),
        (["models", "install", "--help"], "htdemucs"),
    ],
)
def test_answers_that_need_no_model_load_no_heavy_library(argv, says):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert says in done.stdout
    assert done.stderr.splitlines()[-1] == "loaded:", done.stderr
