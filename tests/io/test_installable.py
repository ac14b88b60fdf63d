"""The list of installable models is facts only (it loads no other module of stemdesk.io, so the model store can
word its errors with it); each model on it has an installer, and HTDemucs's card says what the list says."""

from __future__ import annotations

import subprocess
import sys

from stemdesk.io import htdemucs, installers
from stemdesk.io.installable import HTDEMUCS_DISK_MB, HTDEMUCS_PACKAGE, HTDEMUCS_SPEED, HTDEMUCS_TIME, INSTALLABLE


def test_the_list_loads_nothing_else_of_stemdesk_io():
    code = (
        "import sys, stemdesk.io.installable; "
        "sys.exit(sorted(m for m in sys.modules if m.startswith('stemdesk.io.')) != ['stemdesk.io.installable'])"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_installable_model_has_an_installer_and_each_gets_its_package(tmp_path, monkeypatch):
    assert set(installers.INSTALLERS) == set(INSTALLABLE)
    calls = []
    monkeypatch.setattr(htdemucs, "install_htdemucs", lambda **kwargs: calls.append(kwargs) or "card")
    package, progress = tmp_path / htdemucs.TARBALL, lambda what, fraction: None
    assert installers.install("htdemucs", progress, package) == "card"
    assert calls == [{"tarball": package, "progress": progress}]


def test_the_htdemucs_card_says_what_the_list_says():
    item = INSTALLABLE["htdemucs"]
    assert HTDEMUCS_PACKAGE in item.download and HTDEMUCS_PACKAGE in htdemucs.CARD["licenses"]["weights"]
    assert htdemucs.CARD["source"]["package"] == htdemucs.PACKAGE == HTDEMUCS_PACKAGE
    assert htdemucs.CARD["speed"] == HTDEMUCS_SPEED and htdemucs.CARD["license_note"] == item.licence_note
    assert HTDEMUCS_TIME in item.summary and HTDEMUCS_TIME in htdemucs.CARD["summary"]
    assert f"{HTDEMUCS_DISK_MB} MB" in htdemucs.CARD["summary"] and item.licence in htdemucs.CARD["summary"]
    assert "a 3-minute song in 2 to 6 minutes on one CPU thread" in item.summary  # docs/htdemucs.md, docs/quality.md
