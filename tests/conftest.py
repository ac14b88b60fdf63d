from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf
import torch

from helpers import song

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Point platformdirs' user folders at a temporary home so tests never touch the real one."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("STEMDESK_MODELS_PATH", raising=False)


@pytest.fixture
def song_file(tmp_path):
    def make(name="song.wav", seconds=3.0, rate=44100, channels=2, subtype="PCM_16", seed=0) -> Path:
        path = tmp_path / name
        sf.write(str(path), song(seconds, rate, channels, seed), rate, subtype=subtype)
        return path

    return make


def needs_data():
    return pytest.mark.skipif(not (DATA / "cc0-efree").is_dir(), reason="../shared/data is not present")
