"""The lab stays outside the product: nothing in stemdesk/ imports it (pyproject.toml's import-linter contract says
the same), and each lab test runs in its own home and temporary folder, as the product's tests do."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_package_never_imports_the_lab():
    pattern = re.compile(r"^\s*(from\s+lab(\.|\s)|import\s+lab\b)", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "stemdesk").rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_each_lab_test_has_a_home_and_temporary_folder_of_its_own(tmp_path):
    home = Path(os.environ["HOME"])
    assert home.parent == tmp_path.parent and home.name.startswith("home")  # pytest's folder for this run
    assert Path(os.environ["TMPDIR"]) == home / "tmp" == Path(tempfile.gettempdir())
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        assert Path(os.environ[name]).parent == home
    assert os.environ["STEMDESK_SHOW_TEST_MODELS"] == "1"
